"""mmdet's COCO metric that also keeps each image's detection matches."""
import os.path as osp
import tempfile
from typing import Dict, Optional, Sequence

from mmdet.datasets.api_wrappers import COCOeval
from mmdet.evaluation.metrics import CocoMetric
from mmengine.fileio import load
from mmpretrain.registry import METRICS

from mmbcssl.evaluation.coco_outcomes import IOU_TYPES, coco_eval_outcomes
from mmbcssl.evaluation.outcomes import Outcomes


@METRICS.register_module()
class CocoOutcomeMetric(CocoMetric):
    """mmdet's ``CocoMetric``, whose numbers it returns unchanged, keeping
    after each evaluation the per-image outcomes of its bbox and segm AP
    and AP50 in :attr:`outcomes`
    (:func:`mmbcssl.evaluation.coco_outcomes.coco_eval_outcomes`), from
    which :func:`~mmbcssl.evaluation.coco_outcomes.coco_ap` recomputes them
    on a resample of the images.

    Args:
        **kwargs: Passed to ``CocoMetric``.

    Note:
        ``CocoMetric`` does not hand out its ``COCOeval``: the per-image
        matching (``COCOeval.evaluate()``) runs a second time on the same
        predictions and settings, which lengthens the evaluation by about
        its own time.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.outcomes: Optional[Outcomes] = None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        start = len(self.results)
        super().process(data_batch, data_samples)
        # the image's path: the outcomes' key for it
        for (gt, _), sample in zip(self.results[start:], data_samples):
            gt['img_path'] = sample.get('img_path')

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        self.outcomes = None
        keys = {}
        for iou_type in IOU_TYPES:
            for item, what in (('mAP', 'AP'), ('mAP_50', 'AP50')):
                if f'{iou_type}_{item}' in metrics:
                    key = f'{iou_type}_{item}'
                    if self.prefix:
                        key = f'{self.prefix}/{key}'
                    keys[key] = f'{iou_type}/{what}'
        if keys:
            self.outcomes = self._outcomes(results, keys)
        return metrics

    def _outcomes(self, results: list, keys: Dict[str, str]) -> Outcomes:
        gts, preds = zip(*results)
        iou_types = sorted({what.split('/')[0] for what in keys.values()})
        evals = {}
        with tempfile.TemporaryDirectory() as tmp:
            files = self.results2json(preds, osp.join(tmp, 'results'))
            for iou_type in iou_types:
                # the predictions and settings of CocoMetric.compute_metrics
                predictions = load(files[iou_type])
                if iou_type == 'segm':
                    for x in predictions:
                        x.pop('bbox')
                coco_eval = COCOeval(self._coco_api,
                                     self._coco_api.loadRes(predictions),
                                     iou_type)
                coco_eval.params.catIds = self.cat_ids
                coco_eval.params.imgIds = self.img_ids
                coco_eval.params.maxDets = list(self.proposal_nums)
                coco_eval.params.iouThrs = self.iou_thrs
                coco_eval.evaluate()
                evals[iou_type] = coco_eval
        paths = {gt['img_id']: gt.get('img_path') for gt in gts}
        images = []
        for img_id in next(iter(evals.values())).params.imgIds:
            # an image of the annotation file the test set left out keeps
            # the file's name for it
            images.append(paths.get(img_id) or
                          self._coco_api.imgs[img_id]['file_name'])
        return coco_eval_outcomes(evals, images, keys, decimals=3)
