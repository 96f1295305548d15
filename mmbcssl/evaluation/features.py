"""Frozen-backbone features of an image folder, for k-NN and transfer.

Used by :func:`mmbcssl.evaluation.knn.run_knn` (``tools/knn_eval.py`` and
:class:`KNNMonitorHook`) and by the transfer evaluation. In a distributed
run every process extracts every ``world_size``-th image and the features
are all-gathered back into data set order, so each process ends with the
whole (N, D) bank.

What the network sees is the model's own input: :class:`FeatureTransform`
takes the mean, std and channel order from the config's
``data_preprocessor`` (and resize/crop from its test pipeline), so a
backbone trained on other input statistics is fed what it was trained on.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn
from mmengine import dist


@dataclass(frozen=True)
class FeatureTransform:
    """The test-time input of a frozen backbone.

    Args:
        mean (tuple[float]): Per-channel mean (0-255 scale) in the order the
            network sees, as ``data_preprocessor.mean``.
        std (tuple[float]): Per-channel std, as ``data_preprocessor.std``.
        to_rgb (bool): Flip the loaded BGR images to RGB before
            normalising (``data_preprocessor.to_rgb``; mmdet/mmseg call it
            ``bgr_to_rgb``).
        resize (int): Short side before the centre crop (bicubic).
            Defaults to 256, DINO's ``eval_knn.py``.
        crop (int): Centre crop. Defaults to 224.
    """
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    to_rgb: bool
    resize: int = 256
    crop: int = 224

    def __post_init__(self):
        for name in ('mean', 'std'):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 3:
                raise ValueError(f'FeatureTransform: {name} needs 3 values '
                                 f'(one per channel), got {value}')
            object.__setattr__(self, name, value)
        if min(self.std) <= 0:
            raise ValueError(f'FeatureTransform: std must be positive, got '
                             f'{self.std}')
        if self.resize < 1 or self.crop < 1:
            raise ValueError('FeatureTransform: resize and crop must be '
                             f'positive, got {self.resize} and {self.crop}')

    @classmethod
    def from_config(cls, cfg, resize: Optional[int] = None,
                    crop: Optional[int] = None) -> 'FeatureTransform':
        """The input of ``cfg``'s model.

        Mean, std and channel order come from ``model.data_preprocessor``,
        else from the top-level ``data_preprocessor`` (which mmengine's
        Runner gives the model); resize and crop from the test (or val)
        pipeline's ``ResizeEdge``/``CenterCrop`` when the config has one,
        else the class defaults; ``resize``/``crop`` given here win.

        Raises:
            ValueError: the config states no mean/std. Evaluating with
                guessed statistics would be wrong without a word.
        """
        pre = dict((cfg.get('model') or {}).get('data_preprocessor') or
                   cfg.get('data_preprocessor') or {})
        if pre.get('mean') is None or pre.get('std') is None:
            raise ValueError(
                'the config states no input mean/std: add model.'
                'data_preprocessor=dict(mean=[...], std=[...], to_rgb=...) '
                '(ImageNet: mean=[123.675, 116.28, 103.53], std=[58.395, '
                '57.12, 57.375], to_rgb=True)')
        # mmpretrain's preprocessors default to_rgb to False
        to_rgb = bool(pre.get('to_rgb', pre.get('bgr_to_rgb', False)))
        sizes = _pipeline_sizes(cfg)
        return cls(pre['mean'], pre['std'], to_rgb,
                   resize or sizes.get('resize', cls.resize),
                   crop or sizes.get('crop', cls.crop))

    def pipeline(self) -> List[dict]:
        """Load, resize the short side, centre-crop, pack."""
        return knn_dataset_cfg('', '', self.crop, self.resize)['pipeline']

    def dataset(self, root: str, split: str):
        """``<root>/<split>/<class>/<image>`` through :meth:`pipeline`."""
        return knn_dataset(root, split, self.crop, self.resize)

    def input_record(self) -> Dict[str, Any]:
        """Mean, std and channel order, for a fingerprint."""
        return dict(mean=list(self.mean), std=list(self.std),
                    to_rgb=self.to_rgb)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Loaded BGR uint8 images [b, 3, H, W] as the network's input,
        the arithmetic of mmpretrain's data preprocessors."""
        x = images.float()
        if self.to_rgb:
            x = x.flip(1)  # BGR -> RGB
        mean = x.new_tensor(self.mean).view(1, 3, 1, 1)
        std = x.new_tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std  # [b, 3, H, W]


def _pipeline_sizes(cfg) -> Dict[str, int]:
    """``resize``/``crop`` of the config's test (else val) pipeline."""
    for name in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(name) or {}
        pipeline = (loader.get('dataset') or {}).get('pipeline') or []
        sizes = {}
        for step in pipeline:
            step = dict(step) if isinstance(step, Mapping) else {}
            if step.get('type') == 'ResizeEdge' and \
                    step.get('edge', 'short') == 'short':
                sizes['resize'] = int(step['scale'])
            elif step.get('type') == 'CenterCrop':
                size = step['crop_size']
                sizes['crop'] = int(size if isinstance(size, int) else
                                    size[0])
        if sizes:
            return sizes
    return {}


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


def _feature_vector(out) -> torch.Tensor:
    """The last output of the backbone (or neck) as an [N, D] feature.

    A [N, C, H, W] map is refused, not averaged: how a map becomes a vector
    is the model's to say (a ``GlobalAveragePooling`` neck, a backbone that
    pools), as the pre-training algorithms themselves require.
    """
    f = out[-1] if isinstance(out, (tuple, list)) else out
    if f.dim() != 2:
        raise ValueError(
            f'the model outputs a {list(f.shape)} tensor, not [N, D] '
            'features: give the config a pooling neck (neck=dict(type='
            '"GlobalAveragePooling")) or a backbone that pools '
            '(gap_before_final_norm=True)')
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
        channels_last: bool = False,
        *,
        transform: FeatureTransform,
        kept: Optional[List[int]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of every image of ``dataset``.

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
        transform (FeatureTransform): The model's input normalisation
            (:meth:`FeatureTransform.from_config`).
        kept (list, optional): When given, the data-set index of each
            returned row is appended here (every index but the skipped
            images'): what ties a row to its image. Defaults to None.

    Returns:
        tuple: ``(features [N, D] in dtype on CPU, labels [N])``, in data
        set order, identical on every process (N leaves out skipped
        images).

    Raises:
        NonFiniteError: a feature holds NaN or Inf (naming how many rows
            and the first image).
    """
    from mmengine.utils import ProgressBar
    rank, world = dist.get_dist_info()
    device = next(model.parameters()).device
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
            x = transform.normalize(batch['inputs'].to(device))
            if channels_last:  # the layout the weights are in
                x = x.contiguous(memory_format=torch.channels_last)
            out = model['backbone'](x)
            if 'neck' in model:
                out = model['neck'](out)
            f = _feature_vector(out).float()  # [b, D]
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
    _refuse_nonfinite(feats, dataset)  # the same on every process
    rows = torch.arange(len(labels))  # [N] data-set indices
    if skipped is not None:
        messages = [m for _, m in bad]
        if world > 1:
            messages = [m for part in dist.all_gather_object(messages)
                        for m in part]
        skipped.extend(messages)
        if not getattr(dataset, 'keep_rows', False):
            keep = labels >= 0  # [N]
            feats, labels = feats[keep], labels[keep]
            rows = rows[keep.cpu()]
    if kept is not None:
        kept.extend(rows.tolist())
    return feats.cpu(), labels.cpu()


def _refuse_nonfinite(feats: torch.Tensor, dataset) -> None:
    """Raise :class:`~mmbcssl.fileio.NonFiniteError` when a row of
    ``feats`` [N, D] holds NaN or Inf, naming how many rows and the first
    image, so that nothing is computed (and written) from them."""
    from mmbcssl.fileio import NonFiniteError
    bad = (~torch.isfinite(feats)).any(dim=1)  # [N]
    if not bool(bad.any()):
        return
    first = int(bad.nonzero()[0])
    try:
        name = dataset.get_data_info(first)['img_path']
    except Exception:  # a data set without get_data_info
        name = f'row {first}'
    raise NonFiniteError(
        f'{int(bad.sum())} of {feats.shape[0]} feature rows hold NaN/Inf '
        f'(the first: image {name}); the model gives non-finite outputs '
        '(weights that are NaN or a diverged training?), so no result is '
        'computed from them. Check the checkpoint, or use one from '
        'before the training diverged')


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
