"""Top-k accuracy on a data set whose classes are a subset of the model's
(ImageNet-A/R, partial ImageNet-C copies, the demo's A/R-style sets)."""
from typing import List, Optional, Sequence

import torch

from mmpretrain.evaluation.metrics import Accuracy
from mmpretrain.registry import METRICS

from mmbcssl.evaluation.robustness import restrict_logits


@METRICS.register_module()
class SubsetAccuracy(Accuracy):
    """mmpretrain's ``Accuracy`` after keeping only the subset's logits.

    The model scores all its classes (e.g. 1000); the data set's
    ``metainfo['class_indices']`` (set by
    :class:`mmbcssl.datasets.ImageNetSubset`) names, for each subset class,
    its column. Scores are restricted to those columns before the top-k, as
    the official ImageNet-A/R evaluation does (Hendrycks et al.,
    hendrycks/natural-adv-examples and hendrycks/imagenet-r, eval code:
    ``output[:, indices_in_1k]``).

    Args:
        topk (int | Sequence[int]): Defaults to (1, 5).
        class_indices (Sequence[int], optional): The columns, when the data
            set does not provide them. Defaults to None.
        restrict_to_subset (bool): Keep only the subset's columns (the
            official protocol). False scores the full argmax instead, each
            label mapped to its column: a prediction of a class outside the
            subset counts as wrong. Defaults to True.
        **kwargs: Passed to ``Accuracy``.

    Note:
        ``restrict_to_subset=False`` is the variant of the BC-SSL authors'
        evaluation script (their DINO fork leaves the 200-class mask out);
        its ImageNet-A/R numbers are not comparable with the official ones.
    """

    def __init__(self,
                 topk: Sequence[int] = (1, 5),
                 class_indices: Optional[Sequence[int]] = None,
                 restrict_to_subset: bool = True,
                 **kwargs) -> None:
        super().__init__(topk=topk, **kwargs)
        self._class_indices = class_indices
        self.restrict_to_subset = restrict_to_subset

    @property
    def class_indices(self) -> Sequence[int]:
        indices = self._class_indices
        if indices is None and self.dataset_meta:
            indices = self.dataset_meta.get('class_indices')
        if indices is None:
            raise ValueError(
                'SubsetAccuracy needs the subset\'s class_indices: use an '
                'ImageNetSubset/ImageNetC data set or pass class_indices')
        return indices

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        indices = self.class_indices
        for sample in data_samples:
            if 'pred_score' not in sample:
                raise ValueError('SubsetAccuracy needs pred_score (the '
                                 'full class scores), not only pred_label')
            score = sample['pred_score'].cpu()[None]  # [1, C_full]
            label = sample['gt_label'].cpu()  # index into the subset
            if self.restrict_to_subset:
                score = restrict_logits(score, indices)  # [1, C_subset]
            else:
                label = torch.as_tensor(indices)[label]  # its full column
            self.results.append(dict(pred_score=score[0], gt_label=label))

    def compute_metrics(self, results: List[dict]) -> dict:
        metrics = super().compute_metrics(results)
        top1 = next(v for k, v in metrics.items() if k.startswith('top1'))
        metrics['error'] = 100.0 - float(top1)
        return metrics
