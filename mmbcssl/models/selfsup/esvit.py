"""EsViT: DINO with a region-level task (Li et al. 2021, "Efficient
Self-supervised Vision Transformers for Representation Learning";
microsoft/esvit ``main_esvit.py``).

Everything of :class:`DINO` holds (teacher = EMA copy without gradients,
updated by ``DINOTeacherHook``; only the global views go through it; views
batched by resolution). In addition the backbone's last-stage map is read
as region features (for Swin-T: 7 x 7 = 49 tokens at 224 px, 3 x 3 = 9 at
96 px), a second DINO head of the same shape is applied to every region,
and :class:`EsViTLoss` adds the region-matching loss to the view loss.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from .dino import DINO


def _regions(feats) -> torch.Tensor:
    """The backbone's last output as (B, T, C) region features."""
    x = feats[-1] if isinstance(feats, (tuple, list)) else feats
    if x.dim() == 4:
        return x.flatten(2).transpose(1, 2)  # [B, C, H, W] -> [B, H*W, C]
    if x.dim() == 3:
        return x  # already tokens [B, T, C]
    raise ValueError(
        'EsViT needs region features: the backbone must return its last '
        f'stage as a map (B, C, H, W) or tokens (B, T, C), got shape '
        f'{tuple(x.shape)} (e.g. Swin with out_indices=(3, ) and no '
        'pooling neck)')


class _RegionNetwork(nn.Module):
    """backbone -> (pooled -> head, regions -> region head), one module (the
    teacher's layout; the student is the same modules of the model)."""

    def __init__(self, backbone, head, region_head) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        self.region_head = region_head

    def forward(self, x: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = _regions(self.backbone(x))  # [B, T, C]
        b, t, c = feats.shape
        view = self.head(feats.mean(dim=1))  # [B, K], EsViT's avgpool
        region = self.region_head(feats.reshape(b * t, c))  # [B*T, K]
        return view, region.view(b, t, -1), feats  # ..., [B, T, K], [B, T, C]


@MODELS.register_module()
class EsViT(DINO):
    """EsViT self-supervised pre-training.

    Args:
        backbone (dict): Backbone config; its last output must be a map or
            tokens (e.g. ``OriginalSwinTransformer``, EsViT's Swin, with
            ``out_indices=(3, )``).
        head (dict): ``DINOHead`` config for the pooled feature.
        region_head (dict): ``DINOHead`` config for the region features.
        loss (dict): ``EsViTLoss`` config.
        neck (dict, optional): Must be None (a pooling neck would remove
            the regions). Defaults to None.
        num_global_views (int): Defaults to 2.
        data_preprocessor (dict, optional): Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 region_head: dict,
                 loss: dict,
                 neck: Optional[dict] = None,
                 num_global_views: int = 2,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if neck is not None:
            raise ValueError(
                'EsViT pools the region features itself; set neck=None '
                f'(got {neck})')
        super().__init__(
            backbone=backbone,
            head=head,
            loss=loss,
            neck=None,  # the pooling is part of the algorithm
            num_global_views=num_global_views,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.region_head = MODELS.build(region_head)
        # DINO made a teacher of backbone + head; EsViT's has both heads.
        self.teacher = self._copy_for_teacher(self.student)

    @property
    def student(self) -> nn.Module:
        return _RegionNetwork(self.backbone, self.head, self.region_head)

    def loss(self, inputs: List[torch.Tensor],
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        self._check_teacher_moves()
        epoch = MessageHub.get_current_instance().get_info('epoch', 0)
        n = self.num_global_views
        # only the global views pass through the teacher
        with torch.no_grad():
            t_view, t_region, t_feats = (
                o.chunk(n) for o in self.teacher(torch.cat(inputs[:n])))
        s_view, s_region, s_feats = zip(*self._student_forward(inputs))
        return self.loss_module(s_view, t_view, s_region, t_region, s_feats,
                                t_feats, epoch)
