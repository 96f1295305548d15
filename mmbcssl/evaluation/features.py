"""Frozen-backbone features of an image folder, for k-NN evaluation.

Used by ``tools/knn_eval.py`` and by :class:`KNNMonitorHook` during
pre-training. In a distributed run every process extracts every
``world_size``-th image and the features are all-gathered back into data
set order, so each process ends with the whole (N, D) bank.
"""
import os.path as osp
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine import dist

# ImageNet statistics (RGB, 0-255), as the configs' data preprocessors.
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


def knn_dataset_cfg(root: str, split: str, img_size: int = 224,
                    resize: int = 256) -> dict:
    """The config of ``<root>/<split>/<class>/<image>`` (with
    ``meta/<split>.txt`` when it exists), the short side resized to
    ``resize`` (bicubic) and centre-cropped to ``img_size``: DINO's
    ``eval_knn.py`` transform (Resize(256, bicubic) + CenterCrop(224))."""
    ann = osp.join('meta', f'{split}.txt')
    return dict(
        type='CustomDataset',
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


def knn_dataset(root: str, split: str, img_size: int = 224,
                resize: int = 256):
    """The data set of :func:`knn_dataset_cfg`."""
    from mmpretrain.datasets import CustomDataset
    cfg = knn_dataset_cfg(root, split, img_size, resize)
    cfg.pop('type')
    return CustomDataset(**cfg)


def _pool(out) -> torch.Tensor:
    f = out[-1] if isinstance(out, (tuple, list)) else out
    if f.dim() == 4:
        f = f.mean(dim=(2, 3))  # [N, C, H, W] -> [N, C]
    return f


class _SkipUnreadable(torch.utils.data.Dataset):
    """``dataset[i]`` as ``(i, sample)``, or ``(i, None, path)`` when the
    image cannot be read (``CorruptImageError``), so that one bad file
    costs one sample, not the whole extraction."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        from mmbcssl.datasets.transforms.load_image_safe import \
            CorruptImageError
        index = self.indices[i]
        try:
            return i, self.dataset[index], None
        except CorruptImageError as e:
            return i, None, str(e)


def _collate(items):
    from mmengine.dataset import default_collate
    good = [(i, s) for i, s, _ in items if s is not None]
    bad = [(i, err) for i, s, err in items if s is None]
    batch = default_collate([s for _, s in good]) if good else None
    return [i for i, _ in good], batch, bad


@torch.no_grad()
def extract_features(
        model: nn.ModuleDict,
        dataset,
        batch_size: int = 64,
        num_workers: int = 0,
        normalize: bool = False,
        dtype: torch.dtype = torch.float32,
        skipped: Optional[List[str]] = None,
        progress: bool = False,
        channels_last: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
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
        skipped (list, optional): When given, an unreadable image is left
            out (its row is dropped from the result, or, for a data set
            with a true ``keep_rows`` attribute, kept as a zero feature
            with label -1) and its message appended here, on every
            process; otherwise it stops the extraction with the message.
            Defaults to None.
        progress (bool): Show a progress bar with an ETA on the main
            process. Defaults to False.
        channels_last (bool): Feed the images in the channels-last layout
            (for a model built with ``init_backbone(channels_last=True)``).
            Defaults to False.

    Returns:
        tuple: ``(features [N, D] in dtype on CPU, labels [N])``, in data
        set order, identical on every process (N leaves out skipped
        images).
    """
    from mmengine.utils import ProgressBar
    rank, world = dist.get_dist_info()
    device = next(model.parameters()).device
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    shard = _SkipUnreadable(dataset, range(rank, len(dataset), world))
    loader = torch.utils.data.DataLoader(
        shard, batch_size=batch_size, num_workers=num_workers,
        collate_fn=_collate)
    bar = ProgressBar(len(shard) * world) if progress and rank == 0 \
        else None
    rows: List[Tuple[List[int], torch.Tensor, torch.Tensor]] = []
    bad: List[Tuple[int, str]] = []
    for positions, batch, failed in loader:
        if failed and skipped is None:
            raise _corrupt(failed[0][1])
        bad += failed
        if batch is not None:
            x = batch['inputs'].to(device).float().flip(1)  # BGR -> RGB
            x = (x - mean) / std  # [b, 3, H, W]
            if channels_last:  # the layout the weights are in
                x = x.contiguous(memory_format=torch.channels_last)
            out = model['backbone'](x)
            if 'neck' in model:
                out = model['neck'](out)
            f = _pool(out).float()  # [b, D]
            if normalize:
                f = torch.nn.functional.normalize(f, dim=1)
            y = torch.cat([s.gt_label for s in batch['data_samples']])
            rows.append((positions, f.to(dtype), y.to(device)))
        if bar is not None:
            for _ in range((len(positions) + len(failed)) * world):
                bar.update()
    if not rows:
        raise ValueError(f'no readable image among the {len(shard)} of '
                         'this process\'s share of the data set')
    dim = rows[0][1].shape[1]
    feats = torch.zeros(len(shard), dim, dtype=dtype, device=device)
    labels = torch.full((len(shard), ), -1, dtype=torch.long, device=device)
    for positions, f, y in rows:
        index = torch.as_tensor(positions, device=device)
        feats[index], labels[index] = f, y.long()
    if world > 1:
        feats, labels = _gather_in_order(feats, labels, len(dataset), world)
    if skipped is not None:
        messages = [m for _, m in bad]
        if world > 1:
            messages = [m for part in dist.all_gather_object(messages)
                        for m in part]
        skipped.extend(messages)
        if not getattr(dataset, 'keep_rows', False):
            keep = labels >= 0  # [N]
            feats, labels = feats[keep], labels[keep]
    return feats.cpu(), labels.cpu()


def _corrupt(message: str) -> Exception:
    from mmbcssl.datasets.transforms.load_image_safe import \
        CorruptImageError
    return CorruptImageError(message)


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
