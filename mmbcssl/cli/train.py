"""``tools/train.py``: train any mmpretrain, mmdet or mmseg config.

The config's ``default_scope`` decides which OpenMMLab registries are used,
so one entry point serves pre-training, linear probes, detection and
segmentation. Follows the OpenMMLab ``tools/train.py`` conventions
(``--work-dir``, ``--resume``, ``--amp``, ``--cfg-options``, ``--launcher``).
"""
import argparse
import sys
from typing import List, Optional

from mmengine.config import Config
from mmengine.logging import print_log

from mmbcssl.utils.config_checks import (check_config_values,
                                         check_safe_training_parts)
from mmbcssl.utils.data_checks import check_data, check_labels
from mmbcssl.utils.free_space import check_checkpoint_space
from mmbcssl.utils.launch import (UserError, add_common_args, apply_common,
                                  build_runner, load_config, parse_cli,
                                  require_file, run_cli)
from mmbcssl.utils.pretrained_checks import check_load_from, check_pretrained


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or, with no value, from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='skip validation during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual batch over `auto_scale_lr`\'s base')
    add_common_args(parser)
    return parse_cli(parser, argv)


# Optim wrappers and their mixed-precision variants.
AMP_VARIANTS = {
    'OptimWrapper': 'AmpOptimWrapper',
    'GuardedOptimWrapper': 'GuardedAmpOptimWrapper',
    'DINOOptimWrapper': 'DINOAmpOptimWrapper',
}


def enable_amp(cfg: Config) -> None:
    wrapper = cfg.optim_wrapper
    kind = wrapper.get('type', 'OptimWrapper')
    if kind in AMP_VARIANTS.values():
        print_log('AMP is already enabled in the config', logger='current')
    elif kind in AMP_VARIANTS:
        wrapper.type = AMP_VARIANTS[kind]
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        raise UserError(f'--amp: optim_wrapper type {kind!r} has no AMP '
                        'variant; enable AMP in the config instead')


def setup_cfg(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config, args.cfg_options)
    apply_common(cfg, args)
    # the config names its checkpoint hook and optim wrapper constructor:
    # trained here or by Runner.from_cfg, it is the same run
    check_safe_training_parts(cfg)
    if args.amp:
        enable_amp(cfg)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise UserError('--auto-scale-lr: the config has no '
                            '`auto_scale_lr = dict(base_batch_size=...)`')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        require_file(args.resume, '--resume: checkpoint')
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, check the data and train. Returns the exit code."""

    def _train() -> None:
        args = parse_args(argv)
        cfg = setup_cfg(args)
        check_config_values(cfg)
        phases = ('train', ) if args.no_validate else ('train', 'val')
        check_data(cfg, phases=phases)
        check_labels(cfg, phases=phases)
        if not cfg.get('load_from'):
            # loading a whole model (or resuming) overrides init_cfg
            check_pretrained(cfg)
        elif not cfg.get('resume'):
            check_load_from(cfg)
        runner = build_runner(cfg)
        # a full disk would otherwise show only at the first save
        check_checkpoint_space(runner)
        runner.train()

    return run_cli(_train, argv)


if __name__ == '__main__':
    sys.exit(main())
