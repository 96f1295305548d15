"""One corruption at one severity of an ImageNet-C tree.

Layouts accepted (Hendrycks & Dietterich 2019; both are in circulation):

* flat: ``<root>/<corruption>/<severity>/<wnid>/*.JPEG``
* by category: ``<root>/<category>/<corruption>/<severity>/<wnid>/...``
  with categories ``noise``, ``blur``, ``weather``, ``digital``, ``extra``.
"""
import os
import os.path as osp
import pickle
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from mmpretrain.registry import DATASETS

from mmbcssl.utils.data_checks import DataLayoutError
from .imagenet_subset import IMAGENET_1K, ImageNetSubset

CATEGORIES = ('noise', 'blur', 'weather', 'digital', 'extra')


def find_corruption_dir(root: str, corruption: str,
                        severity: int) -> Optional[str]:
    """The folder of ``corruption`` at ``severity`` under ``root``, in
    either layout, or None."""
    candidates = [osp.join(root, corruption, str(severity))]
    candidates += [
        osp.join(root, cat, corruption, str(severity)) for cat in CATEGORIES
    ]
    for path in candidates:
        if osp.isdir(path):
            return path
    return None


def scan_tree(root: str, corruptions: Iterable[str],
              severities: Iterable[int]) -> Tuple[Dict, List[str]]:
    """Map each (corruption, severity) to its folder; list what is missing.

    Returns:
        tuple: ``({(c, s): folder}, ['c/s', ...])``.
    """
    found, missing = {}, []
    for c in corruptions:
        for s in severities:
            path = find_corruption_dir(root, c, s)
            if path is None:
                missing.append(f'{c}/{s}')
            else:
                found[(c, s)] = path
    return found, missing


@DATASETS.register_module()
class ImageNetC(ImageNetSubset):
    """ImageNet-C images of one corruption and severity.

    Labels follow :class:`ImageNetSubset`, so a partial copy (fewer wnid
    folders) is evaluated against the right logit columns.

    Args:
        data_root (str): Root of the ImageNet-C tree.
        corruption (str): e.g. ``'gaussian_noise'``.
        severity (int): 1 to 5.
        base_classes (str | Sequence[str]): See :class:`ImageNetSubset`.
            Defaults to 'imagenet-1k'.
        **kwargs: Passed on (pipeline, ...).
    """

    def __init__(self,
                 data_root: str,
                 corruption: str,
                 severity: int,
                 base_classes=IMAGENET_1K,
                 **kwargs) -> None:
        if int(severity) not in range(1, 6):
            raise ValueError(f'severity must be 1..5, got {severity}')
        if not osp.isdir(data_root):
            raise DataLayoutError(
                f'ImageNet-C root {data_root!r} does not exist; expected '
                '<root>/<corruption>/<severity 1-5>/<wnid>/*.JPEG')
        folder = find_corruption_dir(data_root, corruption, int(severity))
        if folder is None:
            present = sorted(e.name for e in os.scandir(data_root)
                             if e.is_dir())
            raise DataLayoutError(
                f'{data_root!r} has no {corruption}/{severity} folder '
                f'(found: {", ".join(present[:20])}); expected '
                '<root>/<corruption>/<severity>/<wnid>/ or '
                '<root>/<category>/<corruption>/<severity>/<wnid>/')
        self.corruption = corruption
        self.severity = int(severity)
        super().__init__(
            data_root=folder, base_classes=base_classes, **kwargs)

    def _serialize_data(self) -> Tuple[np.ndarray, np.ndarray]:
        """mmengine's serialisation of the data list (one pickled entry per
        image in one shared byte array, so that data workers do not copy
        it), without its closing ``gc.collect()``.

        Why: that full collection costs 0.4 s per data set in a process
        holding a model (measured on the demo tree), 30 s for the 75 passes
        of one ImageNet-C run, and frees nothing the regular collector
        would not: the list it empties holds no reference cycles.
        """
        entries = [
            np.frombuffer(pickle.dumps(x, protocol=4), dtype=np.uint8)
            for x in self.data_list
        ]
        address = np.cumsum(np.asarray([len(x) for x in entries],
                                       dtype=np.int64))
        data_bytes = np.concatenate(entries) if entries else np.zeros(
            0, dtype=np.uint8)
        self.data_list.clear()
        return data_bytes, address
