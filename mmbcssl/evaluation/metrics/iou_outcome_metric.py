"""mmseg's IoU metric that also keeps each image's pixel counts."""
from typing import Dict, Optional, Sequence

import numpy as np
from mmpretrain.registry import METRICS
from mmseg.evaluation.metrics import IoUMetric

from mmbcssl.evaluation.outcomes import Outcomes
from mmbcssl.evaluation.segmentation_outcomes import iou_outcomes


@METRICS.register_module()
class IoUOutcomeMetric(IoUMetric):
    """mmseg's ``IoUMetric``, whose numbers it returns unchanged, keeping
    after each evaluation every image's intersection, union and label
    pixel counts per class in :attr:`outcomes`
    (:func:`mmbcssl.evaluation.segmentation_outcomes.iou_outcomes`), from
    which :func:`~mmbcssl.evaluation.segmentation_outcomes.miou` recomputes
    mIoU on a resample of the images.

    Args:
        **kwargs: Passed to ``IoUMetric``.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.outcomes: Optional[Outcomes] = None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        start = len(self.results)
        super().process(data_batch, data_samples)
        # each image's counts with its path: the outcomes' key for it
        self.results[start:] = [
            (*counts, sample['img_path'])
            for counts, sample in zip(self.results[start:], data_samples)
        ]

    def compute_metrics(self, results: list) -> Dict[str, float]:
        counts = [r[:4] for r in results]
        metrics = super().compute_metrics(counts)
        self.outcomes = None
        if 'mIoU' in metrics:
            key = f'{self.prefix}/mIoU' if self.prefix else 'mIoU'
            # (area_intersect, area_union, area_pred_label, area_label)
            stacked = [np.stack([r[j].numpy() for r in counts])
                       for j in (0, 1, 3)]
            self.outcomes = iou_outcomes([r[4] for r in results], *stacked,
                                         metric_key=key,
                                         nan_to_num=self.nan_to_num)
        return metrics
