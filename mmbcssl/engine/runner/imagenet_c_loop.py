"""A test loop over every corruption and severity of an ImageNet-C tree.

``tools/test.py configs/robustness/imagenet-c.py <ckpt>`` evaluates 15 (+4)
corruptions x 5 severities in one run: the test dataloader config is the
template, its data set's ``corruption``/``severity`` are set per pass, and
the per-pass top-1 errors go into :func:`corruption_errors` (mCE, relative
mCE, mean error; the extra corruptions are reported separately).

Which images each pass got right is kept too (:attr:`ImageNetCTestLoop.
outcomes`, written by ``tools/test.py`` beside its result): one boolean
array per pass, ``<corruption>/<severity>``, over the one image list that
every pass holds, from which the per-pass errors, and so mCE, relative mCE
and the mean error, are computed again.
"""
import copy
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.runner import TestLoop
from mmpretrain.registry import LOOPS

from mmbcssl.datasets.imagenet_c import scan_tree
from mmbcssl.engine.runner.pass_batches import all_passes_loader
from mmbcssl.evaluation.metrics.top1_outcomes import Top1Outcomes
from mmbcssl.evaluation.outcomes import (Outcomes, OutcomesError,
                                         read_outcomes, write_outcomes)
from mmbcssl.evaluation.robustness import (BENCHMARK_CORRUPTIONS,
                                           EXTRA_CORRUPTIONS, SEVERITIES,
                                           corruption_errors)
from mmbcssl.fileio import atomic_write
from mmbcssl.utils.data_checks import DataLayoutError


def pass_loader_cfg(template: Dict, corruption: str, severity: int) -> Dict:
    """The loader config of one pass: the test dataloader config
    ``template`` with its data set's corruption and severity set."""
    cfg = copy.deepcopy(dict(template))
    cfg['dataset'] = dict(cfg['dataset'], corruption=corruption,
                          severity=severity)
    # One loader per pass: workers that outlive their pass would only
    # hold memory while the next pass's workers run.
    cfg['persistent_workers'] = False
    return cfg


@LOOPS.register_module()
class ImageNetCTestLoop(TestLoop):
    """Evaluate all corruptions x severities; report mCE and friends.

    Args:
        runner (Runner): The runner.
        dataloader (dict): Test dataloader config whose dataset is an
            ``ImageNetC`` (its corruption/severity are overridden).
        evaluator (dict | list): An accuracy metric (``SubsetAccuracy``).
        corruptions (Sequence[str]): Defaults to the 15 benchmark ones.
        extra_corruptions (Sequence[str]): Evaluated if present, reported
            apart, never in mCE. Defaults to the 4 ImageNet-C extras.
        severities (Sequence[int]): Defaults to (1, 2, 3, 4, 5).
        clean_error (float, optional): The model's clean top-1 error in
            [0, 1], for relative mCE. Defaults to None.
        allow_partial (bool): Evaluate what is there when benchmark
            corruptions/severities are missing, and label the result
            ``partial``; otherwise a missing one is an error listing all.
            Defaults to False.
        pass_results_dir (str, optional): Keep each finished pass's error
            and per-image outcomes here, under a key of the checkpoint,
            model, data and metric, so that an interrupted run continues at
            the first unfinished (corruption, severity) pass. Defaults to
            None (no keeping).
        fp16 (bool): Defaults to False.
    """

    def __init__(self,
                 runner,
                 dataloader: Dict,
                 evaluator: Union[Dict, List],
                 corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
                 extra_corruptions: Sequence[str] = EXTRA_CORRUPTIONS,
                 severities: Sequence[int] = SEVERITIES,
                 clean_error: Optional[float] = None,
                 allow_partial: bool = False,
                 pass_results_dir: Optional[str] = None,
                 fp16: bool = False) -> None:
        template = copy.deepcopy(dict(dataloader))
        root = template['dataset']['data_root']
        found, missing = scan_tree(root, corruptions, severities)
        if missing and not allow_partial:
            raise DataLayoutError(
                f'ImageNet-C tree {root!r} lacks {len(missing)} of '
                f'{len(corruptions) * len(severities)} benchmark '
                f'corruption/severity folders: {", ".join(missing)}. '
                'Complete the tree, or set test_cfg.allow_partial=True for '
                'a result labelled partial.')
        extras, _ = scan_tree(root, extra_corruptions, severities)
        self.plan = sorted(found) + sorted(extras)
        if not self.plan:
            raise DataLayoutError(f'ImageNet-C tree {root!r} has none of '
                                  'the corruption folders')
        self.missing = missing
        self.corruptions = tuple(corruptions)
        self.images_evaluated = 0  # over all passes, for the fingerprint
        self.clean_error = clean_error
        self.template = template
        self.pass_results_dir = pass_results_dir
        self._evaluator_cfg = evaluator
        self._first = self.plan[0]  # the pass of self.dataloader
        super().__init__(runner, self._loader_cfg(*self.plan[0]), evaluator,
                         fp16)
        self._top1 = Top1Outcomes.attach(self.evaluator)
        # (corruption, severity) -> (image keys, top-1 hits), main process
        self._hits: Dict[tuple, tuple] = {}
        #: per-image outcomes of every pass (:meth:`make_outcomes`), set
        #: by :meth:`run` on the main process; None without them
        self.outcomes: Optional[Outcomes] = None

    def _loader_cfg(self, corruption: str, severity: int) -> Dict:
        return pass_loader_cfg(self.template, corruption, severity)

    def _pass_dataset(self, corruption: str, severity: int):
        from mmpretrain.registry import DATASETS
        if (corruption, severity) == self._first:
            return self.dataloader.dataset  # built by TestLoop already
        return DATASETS.build(
            self._loader_cfg(corruption, severity)['dataset'])

    def _all_passes_loader(self, passes: List[tuple]):
        """One loader over every pass (see :mod:`.pass_batches`): the data
        workers start once for the whole run. Data sets are built in
        threads (folder scans)."""
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(4) as pool:
            datasets = list(pool.map(lambda p: self._pass_dataset(*p),
                                     passes))
        sampler, loader = all_passes_loader(datasets, self.template,
                                            self.runner.seed)
        return datasets, sampler, loader

    def _finish_pass(self, dataset) -> float:
        """Top-1 error in [0, 1] of the pass just run."""
        metrics = self.evaluator.evaluate(len(dataset))
        self.images_evaluated += len(dataset)
        top1 = next(v for k, v in metrics.items() if k.endswith('top1'))
        return 1.0 - float(top1) / 100.0

    def _pass_store(self) -> Optional[str]:
        """The folder of this evaluation's kept pass results: one per
        (checkpoint, model, data, metric), so other runs never mix in."""
        if not self.pass_results_dir:
            return None
        from mmbcssl.evaluation.fingerprint import file_sha256, protocol_id
        cfg = self.runner.cfg
        ckpt = cfg.get('load_from')
        key = protocol_id(dict(
            checkpoint=file_sha256(ckpt) if ckpt and osp.isfile(ckpt)
            else None,
            model=cfg.get('model'), data=self.template,
            metric=self._evaluator_cfg))
        return osp.join(self.pass_results_dir, key)

    def _kept(self, store: Optional[str]) -> Dict[tuple, dict]:
        """Passes finished by an earlier run of the same evaluation (with
        their per-image outcomes, when they are kept: a pass kept without
        them runs again)."""
        kept = {}
        if store and osp.isdir(store):
            for c, s in self.plan:
                path = osp.join(store, f'{c}_{s}.json')
                try:
                    with open(path) as f:
                        done = json.load(f)
                    if self._top1 is not None:
                        found = read_outcomes(path, done['outcomes'])
                        done['hits'] = (found.images, found.arrays['top1'])
                except (OSError, ValueError, KeyError, OutcomesError):
                    continue
                kept[(c, s)] = done
        return kept

    def run(self) -> dict:
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()
        errors: Dict[str, Dict[int, float]] = {}
        store = self._pass_store()
        kept = self._kept(store)
        for (c, s), done in kept.items():
            errors.setdefault(c, {})[s] = done['error']
            self.images_evaluated += done['images']
            if 'hits' in done:
                self._hits[(c, s)] = done['hits']
        if kept:
            print_log(f'ImageNet-C: {len(kept)} of {len(self.plan)} passes '
                      f'finished by an earlier run ({store}); continuing '
                      'with the rest', logger='current')
        todo = [p for p in self.plan if p not in kept]
        self.plan = [p for p in self.plan if p in kept] + todo
        if todo:
            self._run_passes(todo, errors, store, first=len(kept))
        metrics = self._summarise(errors)
        if is_main_process():
            self.outcomes = self.make_outcomes()
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    def _run_passes(self, todo: List[tuple], errors: Dict, store,
                    first: int) -> None:
        datasets, sampler, loader = self._all_passes_loader(todo)
        current, idx = 0, 0
        for b, data_batch in enumerate(loader):
            k = sampler.pass_of_batch[b]  # batches never cross a pass
            while current < k:
                self._end_pass(todo, current, datasets, errors, store, first)
                current, idx = current + 1, 0
            if idx == 0:
                self.evaluator.dataset_meta = datasets[k].metainfo
            self.run_iter(idx, data_batch)
            idx += 1
        while current < len(todo):
            self._end_pass(todo, current, datasets, errors, store, first)
            current += 1

    def _end_pass(self, todo, k, datasets, errors, store, first) -> None:
        corruption, severity = todo[k]
        err = self._finish_pass(datasets[k])
        errors.setdefault(corruption, {})[severity] = err
        if is_main_process():
            self._keep_pass(corruption, severity, err, datasets[k], store)
        print_log(
            f'ImageNet-C {corruption}/{severity}: top-1 error '
            f'{100 * err:.2f}% ({first + k + 1}/{len(self.plan)})',
            logger='current')

    def _keep_pass(self, corruption: str, severity: int, err: float,
                   dataset, store: Optional[str]) -> None:
        """Keep a finished pass's per-image hits, and with a pass store
        its error and hits on disk (main process)."""
        kept = dict(error=err, images=len(dataset))
        if self._top1 is not None:
            keys, hits = self._top1.take(dataset.data_root)
            self._hits[(corruption, severity)] = (keys, hits)
        if store:
            path = osp.join(store, f'{corruption}_{severity}.json')
            if self._top1 is not None:
                kept['outcomes'] = write_outcomes(
                    path, Outcomes(keys, dict(top1=hits)))
            atomic_write(json.dumps(kept), path)

    def make_outcomes(self) -> Optional[Outcomes]:
        """The per-image outcomes of every pass, one boolean array each
        (``<corruption>/<severity>``) over the passes' common image list
        (paths relative to the pass's folder), with ``meta['metrics']``:
        how ``imagenet-c/mCE``, ``relative_mCE`` and ``mean_error`` are
        computed from them (statistic ``imagenet_c``: ``which``, the 75
        benchmark ``passes`` corruption-major with severities 1..5, and
        ``clean``, the clean pass's array: None here, the clean error being
        the fixed ``clean_error`` the loop was given) and
        ``meta['images_per_pass']``. None when the metric keeps no
        outcomes or the passes hold different images (logged)."""
        if self._top1 is None or len(self._hits) != len(self.plan):
            return None
        keys = self._hits[self.plan[0]][0]
        for (c, s), (other, _) in self._hits.items():
            if other != keys:
                print_log(
                    f'ImageNet-C {c}/{s} holds other images than '
                    f'{"/".join(map(str, self.plan[0]))}: no per-image '
                    'outcomes are kept (every pass of a complete tree '
                    'holds the same images)', logger='current', level=30)
                return None
        arrays = {f'{c}/{s}': self._hits[(c, s)][1] for c, s in self.plan}
        meta = dict(images_per_pass={name: len(keys) for name in arrays},
                    metrics={})
        if not self.missing:
            passes = [f'{c}/{s}' for c in BENCHMARK_CORRUPTIONS
                      for s in SEVERITIES]
            for which in ('mCE', 'relative_mCE', 'mean_error'):
                if which == 'relative_mCE' and self.clean_error is None:
                    continue
                entry = dict(statistic='imagenet_c', which=which,
                             passes=passes, clean=None)
                if which == 'relative_mCE':
                    entry['clean_error'] = float(self.clean_error)
                meta['metrics'][f'imagenet-c/{which}'] = entry
        return Outcomes(keys, arrays, 'correct', meta)

    def _summarise(self, errors: Dict[str, Dict[int, float]]) -> dict:
        if not self.missing:
            out = corruption_errors(errors, self.clean_error)
            return {f'imagenet-c/{k}': v for k, v in out.items()}
        # Partial: per-corruption and per-severity errors of what exists;
        # no mCE, since the AlexNet normalisation needs every severity.
        out = {'imagenet-c/partial': 1.0,
               'imagenet-c/num_missing': float(len(self.missing))}
        for c, by_s in errors.items():
            out[f'imagenet-c/partial_error/{c}'] = 100 * sum(
                by_s.values()) / len(by_s)
        print_log(
            'ImageNet-C result is PARTIAL: missing '
            f'{", ".join(self.missing)}; mCE is not reported.',
            logger='current', level=30)
        return out
