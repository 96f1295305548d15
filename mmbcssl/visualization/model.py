"""Build the network a visualisation looks at from a config and weights."""
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config

from mmbcssl.apis.inference import (CheckpointMismatchError,
                                    build_from_config, first_shape_mismatch,
                                    init_backbone, load_model_config,
                                    read_state_dict, sub_state)


class VisModel(nn.Module):
    """``backbone`` (+ ``neck``) (+ ``head``): images to class scores, or to
    pooled features when there is no head.

    pytorch-grad-cam calls the model on an image batch and needs a
    ``[N, K]`` output; Eigen-CAM and the feature PCA only read activations,
    so a backbone without a head serves them.

    Args:
        backbone (nn.Module): The backbone.
        neck (nn.Module, optional): Its neck (e.g. global pooling).
        head (nn.Module, optional): An mmpretrain classification head (a
            linear probe's ``LinearClsHead``).
    """

    def __init__(self,
                 backbone: nn.Module,
                 neck: Optional[nn.Module] = None,
                 head: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and not x.requires_grad:
            # A linear probe's config freezes the backbone (frozen_stages:
            # no parameter requires grad, again after every .eval()); a
            # graph from the input still gives the target layer gradients.
            x = x.detach().requires_grad_(True)
        feats = self.backbone(x)
        if self.neck is not None:
            feats = self.neck(feats)
        if self.head is not None:
            return self.head(feats)  # [N, num_classes]
        f = feats[-1] if isinstance(feats, (tuple, list)) else feats
        if isinstance(f, (tuple, list)):  # e.g. ViT's (patch, cls) output
            f = f[-1]
        if f.dim() == 4:
            f = f.mean(dim=(2, 3))  # [N, C, H, W] -> [N, C]
        elif f.dim() == 3:
            f = f.mean(dim=1)  # [N, L, C] -> [N, C]
        return f


def load_head_weights(head: nn.Module, checkpoint: str) -> None:
    """Load ``head.*`` weights of a classifier checkpoint into ``head``.

    Raises:
        CheckpointMismatchError: no ``head.*`` keys, or ones of another
            shape (a head for another number of classes).
    """
    state = read_state_dict(checkpoint)
    sub = sub_state(state, 'head.')
    if not sub:
        roots = sorted({k.split('.')[0] for k in state})
        raise CheckpointMismatchError(
            f'{checkpoint} has no head.* weights (top-level keys: '
            f'{roots[:10]}); Grad-CAM needs a linear-probe (classifier) '
            'checkpoint, or use --method eigencam')
    mismatch = first_shape_mismatch(head, sub)
    if mismatch:
        k, theirs, ours = mismatch
        raise CheckpointMismatchError(
            f'{checkpoint}: head.{k} has shape {theirs}, the '
            f"config's head expects {ours} (another number of classes?)")
    missing, _ = head.load_state_dict(sub, strict=False)
    if missing:
        raise CheckpointMismatchError(
            f'{checkpoint}: head weights missing: {", ".join(missing)}')


def build_vis_model(config: Union[str, Config],
                    checkpoint: Optional[str] = None,
                    seed: int = 0,
                    device: Union[str, torch.device] = 'cpu',
                    with_head: bool = False,
                    allow_partial: bool = False) -> VisModel:
    """A :class:`VisModel` in eval mode.

    Args:
        config (str | Config): Any config with ``model.backbone``; with
            ``with_head``, a classifier config (a linear probe's).
        checkpoint (str, optional): Weights, loaded as
            :func:`mmbcssl.apis.load_backbone_weights` does; None keeps the
            random initialisation of ``seed``.
        seed (int): Seed of the random initialisation. Defaults to 0.
        device (str | torch.device): Defaults to 'cpu'.
        with_head (bool): Also build ``model.head`` and load its ``head.*``
            weights from ``checkpoint``. Defaults to False.
        allow_partial (bool): Skip backbone weights of ``checkpoint`` that
            the config does not build, instead of refusing the checkpoint
            (:func:`mmbcssl.apis.load_backbone_weights`). Defaults to False.

    Raises:
        CheckpointMismatchError: the checkpoint does not fit the config
            (:class:`~mmbcssl.apis.inference.UnexpectedWeightsError` when
            it holds weights the config does not build).
    """
    cfg = load_model_config(config)
    parts = init_backbone(cfg, checkpoint, seed, device,
                          allow_partial=allow_partial)
    head = None
    if with_head:
        head_cfg = cfg.model.get('head')
        if head_cfg is None or 'ClsHead' not in str(head_cfg.get('type')):
            raise CheckpointMismatchError(
                f'the config has no classification head (model.head: '
                f'{head_cfg and head_cfg.get("type")}); Grad-CAM needs a '
                'linear-probe config and checkpoint, or use --method '
                'eigencam')
        if checkpoint is None:
            raise CheckpointMismatchError(
                'Grad-CAM needs a trained classification head: give a '
                'linear-probe checkpoint, or use --method eigencam')
        head = build_from_config(cfg, head_cfg)
        load_head_weights(head, checkpoint)
    model = VisModel(parts['backbone'], parts['neck'] if 'neck' in parts
                     else None, head)
    return model.to(device).eval()
