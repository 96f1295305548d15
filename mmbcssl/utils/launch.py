"""Pieces shared by the train and test entry points."""
import argparse
import os
import os.path as osp
import sys
from typing import Callable, Optional

from mmengine.config import Config, DictAction

from mmbcssl.compat import TRUST_ENV, UnsafeCheckpointError
from .data_checks import DataLayoutError
from .distributed import cpu_only, init_cpu_process_group
from .pretrained_checks import PretrainedMismatchError


class UserError(ValueError):
    """Bad command-line input; reported in one line, without a traceback."""


# Errors that mean "the input is wrong", not "the code is wrong": the CLI
# prints them as one line and exits with status 2.
USER_ERRORS = (UserError, DataLayoutError, UnsafeCheckpointError,
               PretrainedMismatchError)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. '
        'train_dataloader.batch_size=32 model.backbone.kernel_size=7')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher; tools/dist_*.sh use pytorch (torchrun)')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='allow checkpoints that pickle arbitrary objects (only for '
        'files from a source you trust)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument(
        '--local-rank',
        '--local_rank',
        type=int,
        default=None,
        help=argparse.SUPPRESS)


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    if not osp.isfile(path):
        raise UserError(f'config file {path!r} not found (configs live under '
                        'configs/, e.g. configs/dino/bcssl-t_9x9_100e.py)')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def default_work_dir(config_path: str) -> str:
    """``./work_dirs/<config name>``, OpenMMLab's default; config names
    are unique across ``configs/`` (a test holds that), so two configs
    never share a work dir."""
    name = osp.splitext(osp.basename(config_path))[0]
    return osp.join('./work_dirs', name)


def apply_common(cfg: Config, args: argparse.Namespace) -> None:
    """Work dir, launcher, distributed backend and checkpoint trust."""
    if args.local_rank is not None:
        os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.trust_checkpoint:
        # An env var, so dataloader workers and subprocesses inherit it.
        os.environ[TRUST_ENV] = '1'
    if getattr(args, 'work_dir', None):
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(cfg.filename)
    cfg.launcher = args.launcher
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader and loader.get('num_workers', 1) == 0:
            # torch refuses persistent workers without workers; a
            # `--cfg-options ...num_workers=0` debugging run should not
            # have to know that
            loader['persistent_workers'] = False
    if args.launcher == 'pytorch' and cpu_only():
        # NCCL, the configs' default, needs GPUs; gloo runs on CPU, and
        # mmengine's own launcher and DDP wrapping assume a GPU per process.
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
        cfg.env_cfg.dist_cfg.backend = 'gloo'
        cfg.setdefault('model_wrapper_cfg',
                       dict(type='CPUDistributedDataParallel'))
        init_cpu_process_group('gloo')


def build_runner(cfg: Config):
    """Build the runner the config asks for (``runner_type``) or mmengine's."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def run_cli(fn: Callable[[], None]) -> int:
    """Run ``fn``; report input errors in one line and return 2."""
    try:
        fn()
    except USER_ERRORS as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        # Raised by dataset constructors and checkpoint loaders for a path
        # the user gave; the message names it.
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0
