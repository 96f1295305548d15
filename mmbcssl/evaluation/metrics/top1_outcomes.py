"""Which test images an accuracy metric got right at top-1.

mmpretrain's ``Accuracy`` (and :class:`SubsetAccuracy`) keeps one result
per image, its scores and label, until ``compute_metrics``, which mmengine
calls on the main process with every process's results gathered and put
back in the data set's order (``BaseMetric.evaluate``, through
``collect_results``). :class:`Top1Outcomes` adds each image's
``sample_idx`` and ``img_path`` to those results and, when the metric is
computed, keeps each image's top-1 hit as ``Accuracy.calculate`` decides
it: the class of the highest score is the label and that score is above
the metric's threshold. The mean of the hits, times 100, is the metric's
``top1``; the outcomes cost no second pass over the data.
"""
from typing import List, Optional, Tuple

import numpy as np
import torch
from mmpretrain.evaluation.metrics import Accuracy

from mmbcssl.evaluation.outcomes import image_key


class Top1Outcomes:
    """Keep the per-image top-1 hits of one accuracy metric.

    Args:
        metric (Accuracy): An mmpretrain ``Accuracy`` (or subclass) whose
            ``topk`` holds 1 and that has one threshold (its metric key is
            ``<prefix>/top1``). Its ``process`` and ``compute_metrics`` are
            wrapped: each result also holds the image's ``sample_idx`` and
            ``img_path``, and each computation leaves the hits in
            :attr:`last`.
    """

    def __init__(self, metric: Accuracy) -> None:
        self.metric = metric
        self.key = f'{metric.prefix}/top1'
        #: (image paths, hits) of the last computation, in data set order
        self.last: Optional[Tuple[List[str], np.ndarray]] = None
        process, compute = metric.process, metric.compute_metrics

        def process_with_images(data_batch, data_samples) -> None:
            start = len(metric.results)
            process(data_batch, data_samples)
            added = metric.results[start:]
            if len(added) != len(data_samples):
                raise RuntimeError(
                    f'{type(metric).__name__} kept {len(added)} results for '
                    f'{len(data_samples)} images: per-image outcomes need '
                    'one each')
            for result, sample in zip(added, data_samples):
                result['sample_idx'] = int(sample['sample_idx'])
                result['img_path'] = str(sample['img_path'])

        def compute_and_keep(results: List[dict]) -> dict:
            self.last = self.hits(results)
            return compute(results)

        metric.process = process_with_images
        metric.compute_metrics = compute_and_keep

    @classmethod
    def attach(cls, evaluator) -> Optional['Top1Outcomes']:
        """A recorder on the one accuracy metric of an mmengine
        ``Evaluator`` that reports a plain ``top1``; None when it has no
        such metric, or several."""
        found = [m for m in evaluator.metrics if isinstance(m, Accuracy)
                 and 1 in m.topk and len(m.thrs) == 1]
        return cls(found[0]) if len(found) == 1 else None

    def hits(self, results: List[dict]) -> Tuple[List[str], np.ndarray]:
        """(image paths, top-1 hits) of gathered per-image ``results``,
        in the order of their ``sample_idx``.

        Raises:
            RuntimeError: the results are not one per image of the data
                set (their ``sample_idx`` are not 0..n-1).
        """
        order = np.argsort([r['sample_idx'] for r in results], kind='stable')
        results = [results[i] for i in order]
        idx = np.array([r['sample_idx'] for r in results])
        if not np.array_equal(idx, np.arange(len(results))):
            raise RuntimeError(
                f'{self.key}: the gathered results are not one per image '
                f'(sample_idx 0..{len(results) - 1}); per-image outcomes '
                'need an unshuffled test sampler')
        target = torch.cat([r['gt_label'] for r in results]).to(torch.int64)
        if 'pred_score' in results[0]:  # as Accuracy.calculate decides
            pred = torch.stack([r['pred_score'] for r in results]).float()
            score, label = pred.topk(max(self.metric.topk), dim=1)
            hit = label[:, 0].eq(target)
            (thr, ) = self.metric.thrs
            if thr is not None:
                hit &= score[:, 0] > thr
        else:
            pred = torch.cat([r['pred_label'] for r in results])
            hit = pred.int().eq(target)
        return [r['img_path'] for r in results], hit.numpy().astype(bool)

    def take(self, root: str) -> Tuple[List[str], np.ndarray]:
        """The image keys (paths relative to ``root``, the data set's
        ``data_root``) and hits of the last computation.

        Raises:
            RuntimeError: the metric was not computed.
        """
        if self.last is None:
            raise RuntimeError(f'{self.key} was not computed: no outcomes')
        paths, hits = self.last
        return [image_key(path, root) for path in paths], hits
