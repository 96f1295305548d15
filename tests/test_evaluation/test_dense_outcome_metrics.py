"""The dense metrics with per-image outcomes return mmdet's and mmseg's
numbers unchanged, and their outcomes reproduce them."""
import json

import numpy as np
import torch
from mmdet.evaluation.metrics import CocoMetric
from mmseg.evaluation.metrics import IoUMetric
from pycocotools import mask as mask_utils

from mmbcssl.evaluation.metrics import CocoOutcomeMetric, IoUOutcomeMetric
from mmbcssl.evaluation.statistics import statistic
from tests.test_evaluation.test_coco_outcomes import SIZE, _synthetic


def _stat(outcomes, key, idx=None, **override):
    entry = dict(outcomes.meta['metrics'][key], **override)
    return statistic(entry.pop('statistic'))(outcomes, idx, **entry)


def _det_samples(gt, results):
    """mmdet data samples (float32 predictions, as a model gives) from the
    synthetic set, in a shuffled image order."""
    samples = []
    for image in gt['images'][::-1]:
        mine = [r for r in results if r['image_id'] == image['id']]
        boxes = torch.tensor([[x, y, x + w, y + h]
                              for x, y, w, h in (r['bbox'] for r in mine)],
                             dtype=torch.float32).reshape(-1, 4)
        masks = torch.from_numpy(np.stack(
            [mask_utils.decode(r['segmentation']) for r in mine]
            or np.zeros((0, SIZE, SIZE), np.uint8))).bool()
        samples.append(dict(
            img_id=image['id'], ori_shape=(SIZE, SIZE),
            img_path=f'/data/coco/{image["file_name"]}',
            pred_instances=dict(
                bboxes=boxes,
                scores=torch.tensor([r['score'] for r in mine],
                                    dtype=torch.float32),
                labels=torch.tensor([r['category_id'] - 1 for r in mine],
                                    dtype=torch.long),
                masks=masks)))
    return samples


def _evaluate(metric, samples, batch=3):
    for i in range(0, len(samples), batch):
        metric.process({}, samples[i:i + batch])
    return metric.evaluate(len(samples))


def test_coco_outcome_metric_keeps_mmdet_numbers_and_reproduces_them(
        tmp_path):
    gt, results = _synthetic(seed=6)
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps(gt))
    samples = _det_samples(gt, results)
    meta = dict(classes=('c1', 'c2', 'c3', 'c4'))
    reference = CocoMetric(ann_file=str(ann), metric=['bbox', 'segm'])
    metric = CocoOutcomeMetric(ann_file=str(ann), metric=['bbox', 'segm'])
    reference.dataset_meta = metric.dataset_meta = meta
    expected = _evaluate(reference, samples)
    got = _evaluate(metric, samples)
    assert got == expected
    outcomes = metric.outcomes
    assert sorted(outcomes.meta['metrics']) == [
        'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP',
        'coco/segm_mAP_50']
    for key in outcomes.meta['metrics']:
        assert 0 < expected[key] < 1
        assert _stat(outcomes, key) == expected[key]
    # rows in pycocotools' image order, keyed by the samples' paths
    assert list(outcomes.arrays['img_id']) == sorted(
        i['id'] for i in gt['images'])
    assert outcomes.images[0] == '/data/coco/val/001.jpg'
    # a model's float32 scores are kept as float32, losslessly
    assert outcomes.arrays['bbox_score.values'].dtype == np.float32


def _seg_samples(num_images=20, size=(960, 960), num_classes=5, seed=0):
    """Large label maps (the class-0 totals pass 2**24, where float32 sums
    round), class 4 never present, an ignored region."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(num_images):
        label = np.zeros(size, np.int64)
        pred = np.zeros(size, np.int64)
        for c in range(1, 4):
            y, x = rng.integers(0, size[0] - 200, 2)
            h, w = rng.integers(20, 200, 2)
            label[y:y + h, x:x + w] = c
            dy, dx = rng.integers(-30, 30, 2)
            pred[max(y + dy, 0):y + dy + h, max(x + dx, 0):x + dx + w] = c
        pred[rng.random(size) < .01] = 2
        label[:8] = 255
        samples.append(dict(
            img_path=f'/data/ade/images/validation/{i:04d}.jpg',
            pred_sem_seg=dict(data=torch.from_numpy(pred)[None]),
            gt_sem_seg=dict(data=torch.from_numpy(label)[None])))
    return samples, num_classes


def test_iou_outcome_metric_keeps_mmseg_numbers_and_reproduces_them():
    samples, num_classes = _seg_samples()
    meta = dict(classes=tuple(f'c{c}' for c in range(num_classes)))
    reference, metric = IoUMetric(), IoUOutcomeMetric()
    reference.dataset_meta = metric.dataset_meta = meta
    expected = _evaluate(reference, samples)
    got = _evaluate(metric, samples)
    assert got == expected
    outcomes = metric.outcomes
    assert outcomes.kind == 'counts'
    assert outcomes.arrays['union'].shape == (len(samples), num_classes)
    assert outcomes.arrays['union'][:, 0].sum() > 2**24
    assert _stat(outcomes, 'mIoU') == expected['mIoU']
    # unrounded: mmseg's own float32 sums and ratio
    counts = [IoUMetric.intersect_and_union(
        s['pred_sem_seg']['data'].squeeze(), s['gt_sem_seg']['data'].squeeze(),
        num_classes, 255) for s in samples]
    totals = [sum(c[j] for c in counts) for j in range(4)]
    iou = IoUMetric.total_area_to_metrics(*totals)['IoU']
    assert np.isnan(iou[4])
    assert _stat(outcomes, 'mIoU', decimals=None) == float(
        np.nanmean(iou) * 100)
    # a resample (duplicates count twice) equals mmseg on those images
    idx = np.array([3, 3, 0, 7, 12, 12, 12, 19])
    reference = IoUMetric()
    reference.dataset_meta = meta
    assert _stat(outcomes, 'mIoU', idx) == _evaluate(
        reference, [samples[i] for i in idx])['mIoU']
