"""Per-image segmentation outcomes, and mIoU recomputed on a resample of
the images.

mmseg's ``IoUMetric`` counts, for each image and class, the pixels of the
intersection and of the union of prediction and label (and the label's
pixels), sums them over the images and averages the classes' IoU
(mmsegmentation, mmseg/evaluation/metrics/iou_metric.py). Kept per image
(``intersect``, ``union``, ``label``: ``(images, classes)`` integer
arrays), the sums can be taken over any multiset of images.
"""
import warnings
from typing import Optional, Sequence

import numpy as np

from mmbcssl.evaluation.outcomes import Outcomes
from mmbcssl.evaluation.statistics import register_statistic


def iou_outcomes(images: Sequence[str], intersect: np.ndarray,
                 union: np.ndarray, label: np.ndarray, metric_key: str,
                 decimals: Optional[int] = 2,
                 nan_to_num: Optional[float] = None) -> Outcomes:
    """The per-image counts of a segmentation evaluation.

    Args:
        images (Sequence[str]): Image keys, one per row.
        intersect, union, label (np.ndarray): ``(images, classes)`` pixel
            counts.
        metric_key (str): The result's mIoU key (mmseg: ``'mIoU'``).
        decimals (int, optional): The result's rounding (mmseg: 2, of the
            percentage). Defaults to 2.
        nan_to_num (float, optional): ``IoUMetric``'s ``nan_to_num``.
            Defaults to None.
    """
    arrays = {}
    for name, counts in (('intersect', intersect), ('union', union),
                         ('label', label)):
        counts = np.asarray(counts)
        if not np.array_equal(counts, np.round(counts)) or counts.min(
                initial=0) < 0:
            raise ValueError(f'{name}: pixel counts must be non-negative '
                             'integers')
        dtype = np.int32 if counts.max(initial=0) < 2**31 else np.int64
        arrays[name] = counts.astype(dtype)
    metrics = {metric_key: dict(statistic='miou', decimals=decimals,
                                nan_to_num=nan_to_num)}
    return Outcomes(list(images), arrays, 'counts',
                    dict(num_classes=int(arrays['union'].shape[1]),
                         metrics=metrics))


@register_statistic('miou')
def miou(outcomes: Outcomes, idx: Optional[np.ndarray],
         decimals: Optional[int] = 2,
         nan_to_num: Optional[float] = None) -> float:
    """mIoU (percent) of the images ``idx`` (rows; duplicates count as
    often as drawn; None: every image) as mmseg's ``IoUMetric``: the
    intersections and unions summed over the images, per class, in float32
    and in row order (as it sums its per-image float32 counts), their
    ratio averaged over the classes whose union is not empty (``nanmean``),
    times 100, rounded to ``decimals``."""
    rows = np.arange(len(outcomes.images)) if idx is None else np.asarray(
        idx)
    totals = []
    for name in ('intersect', 'union'):
        counts = outcomes.arrays[name][rows].astype(np.float32)
        # a running float32 sum: IoUMetric adds the images' torch.float32
        # counts one after another
        totals.append(np.cumsum(counts, axis=0, dtype=np.float32)[-1]
                      if len(rows) else np.zeros(counts.shape[1],
                                                 np.float32))
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = totals[0] / totals[1]
    if nan_to_num is not None:
        iou = np.nan_to_num(iou, nan=nan_to_num)
    with warnings.catch_warnings():  # no class with pixels: nan, as mmseg
        warnings.simplefilter('ignore', RuntimeWarning)
        value = np.nanmean(iou) * 100
    if decimals is not None:
        value = np.round(value, decimals)
    return float(value)
