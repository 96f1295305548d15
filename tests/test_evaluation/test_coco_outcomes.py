"""COCO AP re-accumulated from per-image outcomes equals pycocotools."""
import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmbcssl.evaluation.coco_outcomes import coco_ap, coco_eval_outcomes
from mmbcssl.evaluation.statistics import statistic

SIZE = 64


def _mask(box):
    m = np.zeros((SIZE, SIZE), np.uint8)
    x, y, w, h = (int(round(v)) for v in box)
    m[y:y + h, x:x + w] = 1
    m[y:y + max(h // 3, 1), x:x + max(w // 3, 1)] = 0  # not a plain box
    return m


def _synthetic(seed=0, num_images=7, ties=True):
    """A COCO set: 4 categories (the last has no ground truth but is
    detected), an image without ground truth, crowd and ``ignore``
    annotations, and detections near (or far from) the ground truth, with
    scores that tie across images when ``ties``."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for img_id in range(1, num_images + 1):
        images.append(dict(id=img_id * 10, width=SIZE, height=SIZE,
                           file_name=f'val/{img_id:03d}.jpg'))
        num_gt = 0 if img_id == 3 else int(rng.integers(1, 6))
        for _ in range(num_gt):
            cat = int(rng.integers(1, 4))
            x, y = rng.uniform(0, 40, 2)
            w, h = rng.uniform(6, 22, 2)
            box = [float(x), float(y), float(w), float(h)]
            crowd = int(rng.random() < .15)
            rle = mask_utils.encode(np.asfortranarray(_mask(box)))
            rle['counts'] = rle['counts'].decode()
            ann = dict(id=len(anns) + 1, image_id=img_id * 10,
                       category_id=cat, bbox=box, area=w * h, iscrowd=crowd,
                       segmentation=rle)
            if rng.random() < .1:
                ann['ignore'] = 1
            anns.append(ann)
            for _ in range(int(rng.integers(0, 3))):  # near it
                dets.append((img_id * 10, cat, [
                    box[0] + rng.normal(0, 2), box[1] + rng.normal(0, 2),
                    box[2] * rng.uniform(.8, 1.2),
                    box[3] * rng.uniform(.8, 1.2)]))
        for _ in range(int(rng.integers(1, 5))):  # anywhere, any category
            x, y = rng.uniform(0, 40, 2)
            dets.append((img_id * 10, int(rng.integers(1, 5)),
                         [x, y, *rng.uniform(6, 22, 2)]))
    results = []
    for img_id, cat, box in dets:
        box = [float(np.clip(v, 0, SIZE - 1)) for v in box]
        score = rng.uniform(.05, 1)
        rle = mask_utils.encode(np.asfortranarray(_mask(box)))
        rle['counts'] = rle['counts'].decode()
        results.append(dict(
            image_id=img_id, category_id=cat, bbox=box, segmentation=rle,
            score=float(np.round(score, 1) if ties else score)))
    gt = dict(images=images, annotations=anns,
              categories=[dict(id=c, name=f'c{c}') for c in range(1, 5)])
    return gt, results


def _coco(gt):
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _evaluate(gt, results, iou_type, img_ids=None,
              max_dets=(100, 300, 1000)):
    """pycocotools with mmdet CocoMetric's settings: evaluate, accumulate,
    summarize."""
    coco = _coco(gt)
    preds = copy.deepcopy(results)
    for p in preds:
        p.pop('bbox' if iou_type == 'segm' else 'segmentation')
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(preds), iou_type)
        ev.params.imgIds = sorted(coco.getImgIds()) if img_ids is None \
            else list(img_ids)
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _outcomes(gt, results, max_dets=(100, 300, 1000)):
    evals = {t: _evaluate(gt, results, t, max_dets=max_dets)
             for t in ('bbox', 'segm')}
    images = [_coco(gt).imgs[i]['file_name']
              for i in evals['bbox'].params.imgIds]
    keys = {f'coco/{t}_{item}': f'{t}/{what}' for t in ('bbox', 'segm')
            for item, what in (('mAP', 'AP'), ('mAP_50', 'AP50'))}
    return coco_eval_outcomes(evals, images, keys), evals


def _stat(outcomes, key, idx=None):
    entry = dict(outcomes.meta['metrics'][key])
    return statistic(entry.pop('statistic'))(outcomes, idx, **entry)


@pytest.mark.parametrize('ties', [True, False])
def test_whole_sample_equals_pycocotools_stats(ties):
    gt, results = _synthetic(seed=1, ties=ties)
    outcomes, evals = _outcomes(gt, results)
    assert outcomes.kind == 'coco'
    for t in ('bbox', 'segm'):
        stats = evals[t].stats
        assert 0 < stats[0] < stats[1] < 1
        assert _stat(outcomes, f'coco/{t}_mAP') == stats[0]
        assert _stat(outcomes, f'coco/{t}_mAP_50') == stats[1]
    # the category without ground truth is detected, yet left out (-1)
    k = outcomes.meta['categories'].index(4)
    assert evals['bbox'].eval['precision'][0, 0, k, 0, 0] == -1
    assert (outcomes.arrays['bbox_category.values'] == k).any()


def test_resample_without_duplicates_equals_pycocotools_on_those_images():
    gt, results = _synthetic(seed=2)
    outcomes, _ = _outcomes(gt, results)
    ids = outcomes.arrays['img_id']
    rng = np.random.default_rng(0)
    subsets = [rng.choice(len(ids), size, replace=False)
               for size in (1, 3, 5, 6)] + [np.array([2])]  # no gt at all
    for rows in subsets:
        for t in ('bbox', 'segm'):
            ev = _evaluate(gt, results, t, img_ids=sorted(ids[rows]))
            assert coco_ap(outcomes, rows, t) == ev.stats[0], rows
            assert coco_ap(outcomes, rows, t, iou_thr=.5,
                           max_dets=1000) == ev.stats[1], rows
    assert coco_ap(outcomes, np.array([2]), 'bbox') == -1


def test_an_image_drawn_twice_counts_its_detections_and_gt_twice():
    gt, results = _synthetic(seed=3, ties=False)
    outcomes, _ = _outcomes(gt, results)
    row = 4
    img_id = int(outcomes.arrays['img_id'][row])
    # pycocotools on the set with a renamed copy of that image
    dup_gt, dup_results = copy.deepcopy(gt), copy.deepcopy(results)
    new_id = 10_000
    dup_gt['images'].append(dict(id=new_id, width=SIZE, height=SIZE,
                                 file_name='copy.jpg'))
    for ann in gt['annotations']:
        if ann['image_id'] == img_id:
            dup_gt['annotations'].append(dict(
                copy.deepcopy(ann), image_id=new_id,
                id=len(dup_gt['annotations']) + 1))
    dup_results += [dict(copy.deepcopy(r), image_id=new_id)
                    for r in results if r['image_id'] == img_id]
    rows = np.array([0, 1, 2, 3, row, row, 5, 6])
    for t in ('bbox', 'segm'):
        ev = _evaluate(dup_gt, dup_results, t)
        assert coco_ap(outcomes, rows, t) == ev.stats[0]
        assert coco_ap(outcomes, rows[::-1], t) == ev.stats[0]
        assert coco_ap(outcomes, rows, t, iou_thr=.5,
                       max_dets=1000) == ev.stats[1]
        assert coco_ap(outcomes, None, t) != ev.stats[0]


def test_max_dets_truncates_each_image_and_category_as_pycocotools():
    gt, results = _synthetic(seed=4)
    max_dets = (1, 2, 100)
    outcomes, evals = _outcomes(gt, results, max_dets=max_dets)
    for t in ('bbox', 'segm'):
        precision = evals[t].eval['precision']  # [T, R, K, A, M]
        for m, md in enumerate(max_dets):
            s = precision[:, :, :, 0, m]
            assert coco_ap(outcomes, None, t, max_dets=md) == np.mean(
                s[s > -1])
        assert coco_ap(outcomes, None, t, max_dets=1) < coco_ap(
            outcomes, None, t, max_dets=100)
        # a maxDets pycocotools did not accumulate: -1, as its summarize()
        assert coco_ap(outcomes, None, t, max_dets=50) == -1


def test_rounding_as_mmdet_and_outcomes_survive_the_file(tmp_path):
    from mmbcssl.evaluation.outcomes import read_outcomes, write_outcomes
    gt, results = _synthetic(seed=5)
    outcomes, evals = _outcomes(gt, results)
    outcomes.meta['metrics']['coco/bbox_mAP']['decimals'] = 3
    record = write_outcomes(str(tmp_path / 'r.json'), outcomes)
    back = read_outcomes(str(tmp_path / 'r.json'), record)
    assert back.arrays['bbox_score.values'].dtype == np.float64
    assert _stat(back, 'coco/bbox_mAP') == float(
        f'{round(evals["bbox"].stats[0], 3)}')
    assert _stat(back, 'coco/segm_mAP') == evals['segm'].stats[0]
