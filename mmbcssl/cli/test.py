"""``tools/test.py``: evaluate a checkpoint with any mmpretrain, mmdet or
mmseg config (the config's ``default_scope`` decides the registries).

With ``--out`` and an accuracy metric (mmpretrain's ``Accuracy``,
:class:`~mmbcssl.evaluation.metrics.SubsetAccuracy`), which test images
were right at top-1 goes beside the result, in ``<out>.outcomes.npz``
(:mod:`mmbcssl.evaluation.outcomes`), taken from the metric's own
per-image results (:mod:`~mmbcssl.evaluation.metrics.top1_outcomes`); the
ImageNet-C loop gives one array per corruption and severity.
"""
import argparse
import sys
from typing import List, Optional

from mmengine import dist
from mmengine.config import Config

from mmbcssl.evaluation.fingerprint import test_fingerprint
from mmbcssl.evaluation.metrics.top1_outcomes import Top1Outcomes
from mmbcssl.evaluation.outcomes import (Outcomes, image_key,
                                         write_outcomes)
from mmbcssl.utils.config_checks import (check_cfg_options,
                                         check_config_values)
from mmbcssl.utils.data_checks import check_data, check_labels
from mmbcssl.utils.launch import (UserError, add_common_args, apply_common,
                                  build_runner, enable_tta, load_config,
                                  parse_cli, require_file, run_cli,
                                  take_model_from)
from mmbcssl.utils.outputs import refuse_existing, write_json
from mmbcssl.utils.pretrained_checks import check_checkpoint_fits


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where logs and results go')
    parser.add_argument(
        '--out',
        help='write the metrics and their protocol fingerprint to this '
        'JSON file (refused if it exists, unless --overwrite)')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an existing --out/--dump file')
    parser.add_argument(
        '--dump', help='dump the raw predictions to this pickle file')
    parser.add_argument(
        '--model-from',
        metavar='CONFIG',
        help='take the model (with its default_scope and custom_imports) '
        'from this config, e.g. the linear-probe config a robustness '
        'config should evaluate; --cfg-options still apply on top')
    parser.add_argument(
        '--backbone-from',
        metavar='CHECKPOINT',
        help='the pre-trained backbone the evaluated model was trained '
        'from, named in the fingerprint (the suite passes it); defaults to '
        'the one the checkpoint\'s training config names')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation as the config defines it '
        '(`tta_model` + `tta_pipeline`; multi-scale + flip for '
        'segmentation)')
    add_common_args(parser)
    return parse_cli(parser, argv)


def setup_cfg(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    if args.model_from:
        take_model_from(cfg, args.model_from)
    if args.cfg_options:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    apply_common(cfg, args)
    require_file(args.checkpoint)
    cfg.load_from = args.checkpoint
    if cfg.get('test_dataloader') is None or cfg.get('test_cfg') is None:
        raise UserError(f'{args.config} has no test_dataloader/test_cfg to '
                        'evaluate')
    if args.tta:
        enable_tta(cfg, args.config)
    refuse_existing([args.out], args.overwrite, '--out')
    refuse_existing([args.dump], args.overwrite, '--dump')
    if args.dump:
        if not args.dump.endswith(('.pkl', '.pickle')):
            raise UserError('--dump must be a .pkl file')
        evaluators = cfg.test_evaluator
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        cfg.test_evaluator = list(evaluators) + [
            dict(type='DumpResults', out_file_path=args.dump)
        ]
    return cfg


def dense_outcomes(runner) -> Optional[Outcomes]:
    """The per-image outcomes the test evaluator's COCO or IoU metric
    kept (:class:`~mmbcssl.evaluation.metrics.CocoOutcomeMetric`,
    :class:`~mmbcssl.evaluation.metrics.IoUOutcomeMetric`), keyed by each
    image's path relative to the test set's ``data_root``; None when it
    kept none."""
    kept = [m.outcomes for m in runner.test_evaluator.metrics
            if getattr(m, 'outcomes', None) is not None]
    if not kept:
        return None
    if len(kept) > 1:
        raise UserError('the test evaluator has several metrics keeping '
                        'per-image outcomes; keep one')
    outcomes = kept[0]
    root = getattr(runner.test_dataloader.dataset, 'data_root', '') or ''
    return Outcomes([image_key(path, root) for path in outcomes.images],
                    outcomes.arrays, outcomes.kind, outcomes.meta)


def accuracy_outcomes(recorder: Top1Outcomes, dataloader) -> Outcomes:
    """Which test images the model got right at top-1 (the recorder's
    metric), keyed by their paths in the data set; ``meta['metrics']``
    says how the stored top-1 is recomputed from them."""
    dataset = dataloader.dataset
    images, hits = recorder.take(getattr(dataset, 'data_root', '') or '')
    if len(images) != len(dataset):
        raise RuntimeError(f'{recorder.key}: {len(images)} outcomes for '
                           f'{len(dataset)} test images')
    return Outcomes(images, dict(top1=hits), 'correct', meta=dict(
        metrics={recorder.key: dict(statistic='accuracy', arrays=['top1'],
                                    scale=100.0)}))


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, check the data and evaluate. Returns the exit code."""

    def _test() -> None:
        args = parse_args(argv)
        cfg = setup_cfg(args)
        check_config_values(cfg)
        check_data(cfg, phases=('test', ))
        check_labels(cfg, phases=('test', ))
        runner = build_runner(cfg)
        check_checkpoint_fits(runner.model, cfg.load_from)
        loop = runner.test_loop  # built now, so its metric can be watched
        recorder = None if hasattr(loop, 'outcomes') else \
            Top1Outcomes.attach(loop.evaluator)
        metrics = runner.test()
        if args.out and dist.is_main_process():
            fingerprint = test_fingerprint(cfg, runner, args.checkpoint,
                                           args.backbone_from)
            result = dict(metrics=metrics, fingerprint=fingerprint)
            # ImageNet-C's passes, else a top-1 accuracy, else COCO / IoU
            outcomes = getattr(loop, 'outcomes', None) or (
                recorder and accuracy_outcomes(recorder, loop.dataloader)
            ) or dense_outcomes(runner)
            if outcomes:
                result['outcomes'] = write_outcomes(args.out, outcomes)
            write_json(args.out, result)

    return run_cli(_test, argv)


if __name__ == '__main__':
    sys.exit(main())
