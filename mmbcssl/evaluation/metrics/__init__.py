from .coco_outcome_metric import CocoOutcomeMetric
from .iou_outcome_metric import IoUOutcomeMetric
from .subset_accuracy import SubsetAccuracy

__all__ = ['CocoOutcomeMetric', 'IoUOutcomeMetric', 'SubsetAccuracy']
