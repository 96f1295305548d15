"""Frozen-backbone features of an image folder, for k-NN evaluation.

Used by ``tools/knn_eval.py`` and by :class:`KNNMonitorHook` during
pre-training. In a distributed run every process extracts every
``world_size``-th image and the features are all-gathered back into data
set order, so each process ends with the whole (N, D) bank.
"""
import os.path as osp
from typing import Tuple

import torch
import torch.nn as nn
from mmengine import dist

# ImageNet statistics (RGB, 0-255), as the configs' data preprocessors.
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


def knn_dataset(root: str, split: str, img_size: int = 224,
                resize: int = 256):
    """``<root>/<split>/<class>/<image>`` (with ``meta/<split>.txt`` when it
    exists), resized (short side, bicubic) and centre-cropped."""
    from mmpretrain.datasets import CustomDataset
    ann = osp.join('meta', f'{split}.txt')
    return CustomDataset(
        data_root=root,
        ann_file=ann if osp.isfile(osp.join(root, ann)) else '',
        data_prefix=split,
        pipeline=[
            dict(type='LoadImageFromFileSafe', on_error='raise'),
            dict(type='ResizeEdge', scale=resize, edge='short',
                 interpolation='bicubic', backend='pillow'),
            dict(type='CenterCrop', crop_size=img_size),
            dict(type='PackInputs'),
        ])


def _pool(out) -> torch.Tensor:
    f = out[-1] if isinstance(out, (tuple, list)) else out
    if f.dim() == 4:
        f = f.mean(dim=(2, 3))  # [N, C, H, W] -> [N, C]
    return f


@torch.no_grad()
def extract_features(
        model: nn.ModuleDict,
        dataset,
        batch_size: int = 64,
        num_workers: int = 0,
        normalize: bool = False,
        dtype: torch.dtype = torch.float32
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pooled features and labels of every image of ``dataset``.

    Args:
        model (nn.ModuleDict): ``backbone`` (and optionally ``neck``), in
            the mode the caller wants (eval for the protocol).
        dataset: An mmpretrain data set packing ``inputs`` (BGR uint8) and
            ``data_samples`` with ``gt_label``.
        batch_size (int): Images per forward. Defaults to 64.
        num_workers (int): Data-loader workers. Defaults to 0.
        normalize (bool): L2-normalise each feature (the k-NN protocol).
            Defaults to False.
        dtype (torch.dtype): Storage type, per batch and for the gather;
            ``torch.float16`` halves an ImageNet bank (1.97 GB instead of
            3.9 GB per process). Defaults to float32.

    Returns:
        tuple: ``(features [N, D] in dtype on CPU, labels [N])``, in data
        set order, identical on every process.
    """
    from mmengine.dataset import default_collate
    rank, world = dist.get_dist_info()
    device = next(model.parameters()).device
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    shard = torch.utils.data.Subset(dataset,
                                    range(rank, len(dataset), world))
    loader = torch.utils.data.DataLoader(
        shard, batch_size=batch_size, num_workers=num_workers,
        collate_fn=default_collate)
    feats, labels = [], []
    for batch in loader:
        x = batch['inputs'].to(device).float().flip(1)  # BGR -> RGB
        out = model['backbone']((x - mean) / std)
        if 'neck' in model:
            out = model['neck'](out)
        f = _pool(out).float()
        if normalize:
            f = torch.nn.functional.normalize(f, dim=1)
        feats.append(f.to(dtype))
        labels.append(
            torch.cat([s.gt_label for s in batch['data_samples']]).to(device))
    feats, labels = torch.cat(feats), torch.cat(labels)
    if world > 1:
        feats, labels = _gather_in_order(feats, labels, len(dataset), world)
    return feats.cpu(), labels.cpu()


def _gather_in_order(feats: torch.Tensor, labels: torch.Tensor, n: int,
                     world: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Process r holds images r, r + world, ...; pad to equal length,
    all-gather and interleave back to 0, 1, 2, ..."""
    per = -(-n // world)
    pad = per - feats.shape[0]
    feats = torch.cat([feats, feats.new_zeros(pad, feats.shape[1])])
    labels = torch.cat([labels, labels.new_zeros(pad)])
    all_f = torch.stack(dist.all_gather(feats), dim=1)  # [per, world, D]
    all_y = torch.stack(dist.all_gather(labels), dim=1)  # [per, world]
    return all_f.reshape(per * world, -1)[:n], all_y.reshape(-1)[:n]
