"""Per-image COCO detection outcomes, and COCO AP re-accumulated on a
resample of the images.

pycocotools computes AP in two passes: ``COCOeval.evaluate()`` matches each
image's detections to its ground truth, category by category
(``evalImgs``), and ``COCOeval.accumulate()`` pools those matches over the
images into precision/recall curves. Only the second pass depends on which
images are evaluated, so keeping what it reads of the first, image by image,
lets AP be recomputed on any multiset of images with no second pass over the
data (cocodataset/cocoapi, PythonAPI/pycocotools/cocoeval.py).

What :func:`coco_eval_outcomes` keeps, for each IoU type (``bbox``,
``segm``), of the area range ``'all'`` (the one AP and AP50 read), one row
per image in pycocotools' image order:

- ``<type>_score``: each detection's score (ragged);
- ``<type>_category``: its category, an index into ``meta['categories']``
  (ragged; an image's detections are grouped by category, each group in
  pycocotools' order, best score first);
- ``<type>_matched``: bit ``t`` set when it matched a ground truth at the
  ``t``-th IoU threshold (ragged);
- ``<type>_ignored``: bit ``t`` set when pycocotools ignores it at that
  threshold (matched to a crowd or ignored ground truth) (ragged);
- ``<type>_num_gt``: ``(images, categories)``, the ground truths that count
  (not crowd, not ignored);

and ``img_id``, the COCO image ids. :func:`coco_ap` re-accumulates AP from
them exactly as ``accumulate()`` and ``summarize()`` do.
"""
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from mmbcssl.evaluation.outcomes import Outcomes
from mmbcssl.evaluation.statistics import register_statistic

IOU_TYPES = ('bbox', 'segm')
_RAGGED = ('score', 'category', 'matched', 'ignored')


def _bit_dtype(num_bits: int) -> type:
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if num_bits <= np.iinfo(dtype).bits:
            return dtype
    raise ValueError(f'{num_bits} IoU thresholds: at most 64 can be kept '
                     'as per-detection bits')


def _pack_bits(flags: np.ndarray, dtype: type) -> np.ndarray:
    """``(T, D)`` booleans -> ``(D, )`` integers, bit ``t`` = row ``t``."""
    weights = (np.ones(1, dtype) << np.arange(len(flags), dtype=dtype))
    return (flags.astype(dtype) * weights[:, None]).sum(0, dtype=dtype)


def _exact_scores(scores: np.ndarray) -> np.ndarray:
    """float32 when that keeps every score exactly (a model's float32
    scores), float64 otherwise."""
    single = scores.astype(np.float32)
    return single if np.array_equal(single, scores) else scores


def evaluated_image_arrays(coco_eval, iou_type: str) -> Dict[str, np.ndarray]:
    """The arrays of one IoU type from a ``COCOeval`` after
    ``evaluate()``, one row per image of ``coco_eval.params.imgIds``.

    Args:
        coco_eval (pycocotools.cocoeval.COCOeval): Evaluated, with
            ``useCats`` (the default).
        iou_type (str): The prefix of the arrays' names.
    """
    p = coco_eval.params
    if not p.useCats:
        raise ValueError('per-image COCO outcomes need per-category '
                         'evaluation (params.useCats=1)')
    num_images, num_areas = len(p.imgIds), len(p.areaRng)
    area = p.areaRngLbl.index('all')
    num_thrs = len(p.iouThrs)
    bits = _bit_dtype(num_thrs)
    num_gt = np.zeros((num_images, len(p.catIds)), np.int64)
    rows = [[] for _ in range(num_images)]  # per image: per category
    for k in range(len(p.catIds)):
        for i in range(num_images):
            # evalImgs is ordered (category, area range, image)
            e = coco_eval.evalImgs[(k * num_areas + area) * num_images + i]
            if e is None:
                continue
            num_gt[i, k] = np.count_nonzero(np.asarray(e['gtIgnore']) == 0)
            n = len(e['dtScores'])
            if n:
                matched = np.asarray(e['dtMatches']).reshape(num_thrs, n)
                ignored = np.asarray(e['dtIgnore']).reshape(num_thrs, n)
                rows[i].append((np.asarray(e['dtScores'], np.float64),
                                np.full(n, k),
                                _pack_bits(matched != 0, bits),
                                _pack_bits(ignored != 0, bits)))
    counts = [sum(len(d[0]) for d in r) for r in rows]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    category = np.uint16 if len(p.catIds) <= 1 << 16 else np.int64
    arrays = {}
    for j, (name, dtype) in enumerate(zip(
            _RAGGED, (np.float64, category, bits, bits))):
        parts = [d[j] for r in rows for d in r]
        values = np.concatenate(parts) if parts else np.zeros(0)
        arrays[f'{iou_type}_{name}.values'] = values.astype(dtype)
        arrays[f'{iou_type}_{name}.offsets'] = offsets
    arrays[f'{iou_type}_score.values'] = _exact_scores(
        arrays[f'{iou_type}_score.values'])
    arrays[f'{iou_type}_num_gt'] = num_gt.astype(
        np.uint16 if num_gt.max(initial=0) < 1 << 16 else np.int64)
    return arrays


def coco_eval_outcomes(coco_evals: Mapping[str, object],
                       images: Sequence[str],
                       metric_keys: Mapping[str, str],
                       decimals: Optional[int] = None) -> Outcomes:
    """The outcomes of COCO evaluations of the same images.

    Args:
        coco_evals (Mapping[str, COCOeval]): IoU type -> its ``COCOeval``
            after ``evaluate()``, all with the same ``params`` but
            ``iouType``.
        images (Sequence[str]): The image keys, in the order of
            ``params.imgIds`` (pycocotools sorts them).
        metric_keys (Mapping[str, str]): The result's metric keys the
            outcomes reproduce -> ``'<iou type>/AP'`` or
            ``'<iou type>/AP50'``, e.g. ``{'coco/bbox_mAP': 'bbox/AP'}``.
        decimals (int, optional): The decimals the result rounds to
            (mmdet's CocoMetric: 3). Defaults to None (no rounding).
    """
    p = next(iter(coco_evals.values())).params
    if len(images) != len(p.imgIds):
        raise ValueError(f'{len(images)} image keys for the '
                         f'{len(p.imgIds)} evaluated images')
    arrays = dict(img_id=np.asarray(p.imgIds, np.int64))
    for iou_type, coco_eval in coco_evals.items():
        if list(coco_eval.params.imgIds) != list(p.imgIds):
            raise ValueError(f'the {iou_type} evaluation has other images')
        arrays.update(evaluated_image_arrays(coco_eval, iou_type))
    metrics = {}
    for key, what in metric_keys.items():
        iou_type, ap = what.split('/')
        # pycocotools' summarize(): AP at maxDets=100, AP50 at maxDets[2]
        metrics[key] = dict(
            statistic='coco_ap', iou_type=iou_type,
            iou_thr=0.5 if ap == 'AP50' else None,
            max_dets=100 if ap == 'AP' else int(p.maxDets[2]),
            decimals=decimals)
    meta = dict(categories=[int(c) for c in p.catIds],
                iou_thrs=[float(t) for t in p.iouThrs],
                max_dets=[int(m) for m in p.maxDets],
                iou_types=list(coco_evals), metrics=metrics)
    return Outcomes(list(images), arrays, 'coco', meta)


def _rec_thrs() -> np.ndarray:
    # pycocotools' Params: 101 recall points 0, 0.01, ..., 1
    return np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1,
                       endpoint=True)


def _ranked_detections(outcomes: Outcomes, iou_type: str) -> Dict:
    """Each detection's image row, rank within its (image, category) and
    the order accumulate() pools them in: by category, then by score
    (best first; ties in image order, then in the image's own order)."""
    # kept on the object: a bootstrap calls the statistic once per resample
    cache = outcomes.__dict__.setdefault('_coco_ranked', {})
    if iou_type not in cache:
        offsets = outcomes.arrays[f'{iou_type}_score.offsets']
        score = outcomes.arrays[f'{iou_type}_score.values'].astype(
            np.float64)
        category = outcomes.arrays[f'{iou_type}_category.values'].astype(
            np.int64)
        row = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        # a group is one (image, category): its detections are contiguous
        start = np.ones(len(score), bool)
        start[1:] = (row[1:] != row[:-1]) | (category[1:] != category[:-1])
        first = np.maximum.accumulate(np.where(start, np.arange(len(score)),
                                               0))
        rank = np.arange(len(score)) - first
        # np.lexsort is stable: equal scores keep the storage order (image
        # order, then the image's own order), as pycocotools' mergesort of
        # the per-image lists concatenated in image order does
        order = np.lexsort((-score, category))
        cache[iou_type] = dict(
            order=order, row=row[order], rank=rank[order],
            category=category[order],
            matched=outcomes.arrays[f'{iou_type}_matched.values'][order],
            ignored=outcomes.arrays[f'{iou_type}_ignored.values'][order])
    return cache[iou_type]


def _category_precision(matched: np.ndarray, ignored: np.ndarray,
                        num_gt: int, thrs: np.ndarray,
                        rec_thrs: np.ndarray) -> np.ndarray:
    """``(T, R)`` interpolated precision of one category's pooled
    detections (sorted by score), as pycocotools' accumulate(), at the IoU
    thresholds ``thrs`` (indices, T of them)."""
    num_thrs = len(thrs)
    t = thrs.astype(matched.dtype)[:, None]
    dtm = ((matched[None, :] >> t) & 1).astype(bool)  # [T, D]
    dt_ig = ((ignored[None, :] >> t) & 1).astype(bool)  # [T, D]
    tps = np.logical_and(dtm, np.logical_not(dt_ig))
    fps = np.logical_and(np.logical_not(dtm), np.logical_not(dt_ig))
    tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
    fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
    nd = tp_sum.shape[1]
    q = np.zeros((num_thrs, len(rec_thrs)))
    if nd == 0:
        return q
    rc = tp_sum / num_gt
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    # the precision envelope: the best precision at any higher recall
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    for i in range(num_thrs):
        inds = np.searchsorted(rc[i], rec_thrs, side='left')
        # recall points beyond the last detection's recall stay 0
        hit = inds < nd
        q[i, hit] = pr[i, inds[hit]]
    return q


@register_statistic('coco_ap')
def coco_ap(outcomes: Outcomes, idx: Optional[np.ndarray], iou_type: str,
            iou_thr: Optional[float] = None, max_dets: int = 100,
            decimals: Optional[int] = None) -> float:
    """COCO AP of the images ``idx`` (rows of ``outcomes``; duplicates
    count their detections and ground truths as often as they are drawn;
    None: every image), as pycocotools' ``accumulate()`` and
    ``summarize()``: 101-point interpolated precision under its envelope,
    averaged over IoU thresholds (only ``iou_thr`` when given) and over the
    categories with ground truth among those images; -1 when none has.

    Args:
        outcomes (Outcomes): Of :func:`coco_eval_outcomes`.
        idx (np.ndarray, optional): Row indices.
        iou_type (str): ``'bbox'`` or ``'segm'``.
        iou_thr (float, optional): One IoU threshold (AP50: 0.5). Defaults
            to None (all: mAP@[.5:.95]).
        max_dets (int): Detections per image and category. Defaults to 100.
        decimals (int, optional): Round as mmdet's CocoMetric does
            (``round(value, 3)``). Defaults to None.

    Note:
        A resample that draws an image several times repeats each of its
        detections in place (copies adjacent in the pooled ranking); for
        detections whose scores tie with another image's this order can
        differ from pycocotools run on a data set holding a renamed copy.
    """
    meta = outcomes.meta
    iou_thrs = np.asarray(meta['iou_thrs'])
    thrs = np.arange(len(iou_thrs)) if iou_thr is None else \
        np.where(iou_thr == iou_thrs)[0]
    num_images = len(outcomes.images)
    mult = np.ones(num_images, np.int64) if idx is None else np.bincount(
        np.asarray(idx, np.int64), minlength=num_images)
    num_gt = mult @ outcomes.arrays[f'{iou_type}_num_gt'].astype(np.int64)
    rec_thrs = _rec_thrs()
    precision = -np.ones((len(iou_thrs), len(rec_thrs), len(num_gt)))
    if max_dets in meta['max_dets'] and len(thrs):
        dets = _ranked_detections(outcomes, iou_type)
        weight = mult[dets['row']] * (dets['rank'] < max_dets)
        bounds = np.searchsorted(dets['category'],
                                 np.arange(len(num_gt) + 1))
        for k in np.flatnonzero(num_gt):
            s = slice(bounds[k], bounds[k + 1])
            w = weight[s]
            # only the thresholds the value reads
            precision[thrs, :, k] = _category_precision(
                np.repeat(dets['matched'][s], w),
                np.repeat(dets['ignored'][s], w), int(num_gt[k]), thrs,
                rec_thrs)
    s = precision[thrs]  # [T, R, K], as summarize() slices it
    value = np.float64(-1) if len(s[s > -1]) == 0 else np.mean(s[s > -1])
    if decimals is not None:
        # mmdet's CocoMetric: float(f'{round(val, 3)}') on a numpy float
        value = float(f'{round(value, decimals)}')
    return float(value)
