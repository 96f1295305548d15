"""Frozen-backbone features on disk, shared by every evaluation that needs
them and resumable inside an extraction.

A cache entry is keyed by what makes features the same: the checkpoint's
SHA-256, the data set (its root, split and the list of its images and
labels), the transform and the feature spec (backbone, features, pooling).
Features are stored as the backbone gives them (float32, not normalised),
so that a k-NN (which L2-normalises them) and a linear transfer (which does
not) share one entry; each caller converts them shard by shard as it reads
them, with the same arithmetic as without the cache. The features of one
entry are written in
shards of ``shard_size`` images, each written atomically once extracted, so
an interrupted extraction continues from its last finished shard, and a
k-NN and a transfer evaluation of the same weights on the same images
extract them once. Next to each shard ``shard_K.pt`` its SHA-256 is
written (``shard_K.pt.sha256``, in ``sha256sum`` format); a shard that
cannot be read back, or whose bytes no longer match that checksum (a fault
of the disk or a copy, not of the writer: writes are atomic), or without
one, is extracted again, with a warning naming the file.
"""
import hashlib
import io
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine import dist
from mmengine.logging import print_log

from mmbcssl.fileio import atomic_write, safe_torch_load
from .features import FeatureTransform, extract_features


def dataset_identity(dataset, root: str, split: str) -> Dict[str, Any]:
    """Root, split, size and a hash of the (image, label) list."""
    h = hashlib.sha256()
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        h.update(f'{osp.relpath(info["img_path"], root)}\t'
                 f'{int(info["gt_label"])}\n'.encode())
    return dict(root=osp.abspath(root), split=split, images=len(dataset),
                list_sha256=h.hexdigest())


def cache_key(fields: Dict[str, Any]) -> str:
    """A short, stable hash of the key fields."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class FeatureCache:
    """Sharded, atomically written feature files under ``root``.

    Args:
        root (str): The cache folder (created when first written).
        shard_size (int): Images per shard file. Defaults to 8192.
    """

    def __init__(self, root: str, shard_size: int = 8192) -> None:
        if shard_size < 1:
            raise ValueError(f'shard_size must be positive, got {shard_size}')
        self.root = root
        self.shard_size = shard_size
        self.hits = self.misses = self.recomputed = 0

    def size_bytes(self) -> int:
        """Bytes on disk under the cache root."""
        total = 0
        for folder, _, files in os.walk(self.root):
            total += sum(osp.getsize(osp.join(folder, f)) for f in files)
        return total

    def extract(self,
                model: nn.ModuleDict,
                dataset,
                fields: Dict[str, Any],
                batch_size: int = 64,
                num_workers: int = 0,
                normalize: bool = False,
                dtype: torch.dtype = torch.float32,
                skipped: Optional[List[str]] = None,
                progress: bool = False,
                channels_last: bool = False,
                *,
                transform: FeatureTransform,
                kept: Optional[List[int]] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The features of ``dataset``, from the cache where present.

        Args:
            model, dataset, batch_size, num_workers, skipped, progress,
            channels_last, transform, kept: As :func:`extract_features`.
            fields (dict): The key fields (checkpoint SHA-256, data set
                identity, transform, feature spec).
            normalize (bool): L2-normalise each feature as it is read.
                Defaults to False.
            dtype (torch.dtype): Type of the returned features, converted
                shard by shard (a float16 ImageNet bank never exists in
                float32 as a whole). Defaults to float32.

        Returns:
            tuple: ``(features [N, D], labels [N])`` on CPU, in data set
            order (skipped images left out), on every process.
        """
        fields = dict(fields, stored='float32, not normalised',
                      shard_size=self.shard_size, images=len(dataset))
        folder = osp.join(self.root, cache_key(fields))
        if dist.is_main_process():
            os.makedirs(folder, exist_ok=True)
            meta = osp.join(folder, 'key.json')
            if not osp.exists(meta):
                atomic_write(json.dumps(fields, indent=2, default=str),
                             meta)
        feats, labels = [], []
        n = len(dataset)
        shards = range(0, n, self.shard_size)
        for k, start in enumerate(shards):
            path = osp.join(folder, f'shard_{k:05d}.pt')
            indices = range(start, min(start + self.shard_size, n))
            part = self._load(path, len(indices))
            if part is None:
                part = self._compute(model, dataset, indices, batch_size,
                                     num_workers,
                                     progress and len(shards) == 1,
                                     channels_last, transform)
                if dist.is_main_process():
                    buf = io.BytesIO()
                    torch.save(part, buf)
                    data = buf.getvalue()
                    atomic_write(data, path)
                    atomic_write(_checksum_line(data, path),
                                 path + '.sha256')
                if progress and dist.is_main_process() and len(shards) > 1:
                    print_log(f'features: shard {k + 1}/{len(shards)} '
                              f'({indices.stop} of {n} images) written',
                              logger='current')
            else:
                self.hits += 1
            dist.barrier()
            keep = part['labels'] >= 0
            if kept is not None:  # the shard's rows are its index range
                kept.extend((start + keep.nonzero().flatten()).tolist())
            f = part['feats'][keep]  # [n, D] float32
            if normalize:
                f = torch.nn.functional.normalize(f, dim=1)
            feats.append(f.to(dtype))
            labels.append(part['labels'][keep])
            if skipped is not None:
                skipped.extend(part['skipped'])
            elif part['skipped']:
                from mmbcssl.datasets.transforms.load_image_safe import \
                    CorruptImageError
                raise CorruptImageError(part['skipped'][0])
        return torch.cat(feats), torch.cat(labels)

    def _load(self, path: str, expected: int) -> Optional[Dict]:
        if not osp.exists(path):
            return None
        try:
            with open(path, 'rb') as f:
                data = f.read()
            _verify_checksum(data, path)
            part = safe_torch_load(io.BytesIO(data), map_location='cpu',
                                   source=path)
            if not bool(torch.isfinite(part['feats']).all()):
                raise ValueError('it holds NaN/Inf features')
            if (part['feats'].shape[0] != expected
                    or part['labels'].shape != (expected, )):
                raise ValueError(f'{part["feats"].shape[0]} rows, '
                                 f'{expected} expected')
        except Exception as e:  # any unreadable file is recomputed
            self.recomputed += 1
            print_log(
                f'cached feature file {path} is unreadable or corrupt '
                f'({type(e).__name__}: {e}); extracting it again',
                logger='current', level=30)
            return None
        return part

    def _compute(self, model, dataset, indices, batch_size, num_workers,
                 progress, channels_last, transform) -> Dict:
        """One shard, every row kept (label -1 for a skipped image), so
        that a shard's rows match its index range."""
        self.misses += 1
        subset = torch.utils.data.Subset(dataset, indices)
        bad: List[str] = []
        feats, labels = extract_features(
            model, _KeepRows(subset), batch_size, num_workers,
            skipped=bad, progress=progress, channels_last=channels_last,
            transform=transform)
        return dict(feats=feats, labels=labels, skipped=bad)


def _checksum_line(data: bytes, path: str) -> str:
    """``<sha256>  <file name>``, the line ``sha256sum`` writes."""
    return f'{hashlib.sha256(data).hexdigest()}  {osp.basename(path)}\n'


def _verify_checksum(data: bytes, path: str) -> None:
    """Raise ValueError unless ``data`` (the bytes of the shard ``path``)
    matches the SHA-256 written next to it."""
    try:
        with open(path + '.sha256') as f:
            stored = f.read().split()[0]
    except (OSError, IndexError):
        raise ValueError(f'no checksum file {path}.sha256') from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != stored:
        raise ValueError(f'its SHA-256 is {actual[:16]}..., the one '
                         f'written with it {stored[:16]}...: its bytes '
                         'changed after it was written')


class _KeepRows(torch.utils.data.Dataset):
    """Marks a dataset so that :func:`extract_features` keeps a row (label
    -1, zero feature) for each unreadable image instead of dropping it."""
    keep_rows = True

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i]
