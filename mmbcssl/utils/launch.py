"""Pieces shared by the train and test entry points."""
import argparse
import logging
import os
import os.path as osp
import re
import sys
import time
from typing import Callable, List, Optional

from mmengine.config import Config, DictAction

from mmbcssl.apis.inference import CheckpointMismatchError
from mmbcssl.datasets.transforms.load_image_safe import CorruptImageError
from mmbcssl.fileio import (TRUST_ENV, CorruptCheckpointError, DiskFullError,
                            NonFiniteError, UnsafeCheckpointError,
                            missing_file_message)
from .config_checks import ConfigError, check_cfg_options, syntax_error
from .data_checks import DataLayoutError
from .distributed import cpu_only, init_cpu_process_group
from .loss_terms import TrainingDivergedError
from .pretrained_checks import PretrainedMismatchError


class UserError(ValueError):
    """Bad command-line input; reported in one line, without a traceback."""


def require_file(path: str, what: str = 'checkpoint',
                 expected: str = 'a .pth file') -> None:
    """Refuse a path given for a file that is not one: missing, or a
    directory (:func:`mmbcssl.fileio.missing_file_message`).

    Raises:
        UserError: naming ``what`` the path should be and, for a
            directory, ``expected`` and the checkpoints inside it.
    """
    problem = missing_file_message(path, what, expected)
    if problem:
        raise UserError(problem)


# Errors that mean "the input is wrong", not "the code is wrong": the CLI
# prints them as one line and exits with status 2.
USER_ERRORS = (UserError, DataLayoutError, UnsafeCheckpointError,
               CorruptCheckpointError, CheckpointMismatchError,
               PretrainedMismatchError, ConfigError, CorruptImageError,
               NonFiniteError, FileNotFoundError)
# Errors of a run whose message says all there is to say (what happened,
# what is kept, what to do): one line too, exit status 1.
RUN_ERRORS = (TrainingDivergedError, DiskFullError)


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
    parser.add_argument(
        '--debug',
        action='store_true',
        help='show the full traceback of an error (by default one line, '
        'and the traceback goes to the log in the work dir)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument(
        '--local-rank',
        '--local_rank',
        type=int,
        default=None,
        help=argparse.SUPPRESS)


def parse_cli(parser: argparse.ArgumentParser,
              argv: Optional[List[str]] = None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, with mmengine's ``--cfg-options``
    parser's failure on values it cannot read (a list of dicts makes it
    recurse without end) turned into a one-line error."""
    try:
        return parser.parse_args(argv)
    except (RecursionError, AssertionError) as e:
        raise UserError(
            '--cfg-options: a value could not be parsed (mmengine reads '
            'key=value, lists and tuples of plain values; put lists of '
            f'dicts in a config file instead) ({type(e).__name__})'
        ) from None


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    if not osp.isfile(path):
        raise UserError(f'config file {path!r} not found (configs live under '
                        'configs/, e.g. configs/dino/bcssl-t_9x9_100e.py)')
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as e:
        raise syntax_error(path, e) from None
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    return cfg


def take_model_from(cfg: Config, path: str) -> None:
    """Replace ``cfg.model`` by the model of the config at ``path``.

    The evaluation configs (``configs/robustness``) carry a default model;
    this evaluates any other one on the same data and metrics without a
    config per (model, data set) pair.
    """
    other = load_config(path)
    if 'model' not in other:
        raise UserError(f'--model-from {path}: the config has no model')
    cfg.model = other.model
    for key in ('default_scope', 'custom_imports'):
        if key in other:
            cfg[key] = other[key]


def enable_tta(cfg: Config, path: str) -> None:
    """Wrap the model in the config's TTA model and use its pipeline, as
    mmseg's and mmdet's own ``tools/test.py --tta`` do."""
    if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        raise UserError(f'--tta: {path} defines no tta_model/tta_pipeline')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


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


def run_name(cfg: Config) -> str:
    """The name mmengine's Runner gives a run of ``cfg`` started now:
    ``<experiment_name or config name>_<%Y%m%d_%H%M%S>``, as in
    ``Runner.__init__`` and ``Runner.setup_env`` (mmengine 0.10)."""
    stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime())
    stem = cfg.get('experiment_name') or (osp.splitext(
        osp.basename(cfg.filename))[0] if cfg.filename else None)
    return f'{stem}_{stamp}' if stem else stamp


def wait_for_a_new_run_name(cfg: Config) -> None:
    """Wait, at most a second, until the name the next Runner of ``cfg``
    takes is new in this process.

    mmengine gets the run's logger, message hub and default scope by that
    name, and hands back the existing instance for a name it has seen: a
    second run of one config started in the same second by the same
    process (the tools' Python entry points, the tests) would log into the
    first run's file and carry on its message hub.
    """
    from mmengine.logging import MMLogger
    while MMLogger.check_instance_created(run_name(cfg)):
        time.sleep(0.02)


def build_runner(cfg: Config):
    """Build the runner the config asks for (``runner_type``) or mmengine's,
    under a run name of its own (:func:`wait_for_a_new_run_name`)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    wait_for_a_new_run_name(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def one_line(error: BaseException) -> str:
    """The message of ``error`` as one line.

    An exception raised in a DataLoader worker reaches the main process
    re-created by torch with the worker's whole traceback as its message;
    the original message is its last line.
    """
    text = str(error)
    if isinstance(error, OSError) and error.errno and error.strerror:
        text = error.strerror  # not "[Errno 28] ...: 'path'"
        if error.filename and str(error.filename) not in text:
            text += f': {error.filename}'
    if text.startswith('Caught ') and 'Original Traceback' in text:
        name = re.escape(type(error).__name__)
        found = re.findall(rf'^[\w.]*{name}: (.*)$', text, re.MULTILINE)
        where = re.match(r'Caught \w+ (in [^.]+)', text)
        if found:
            text = found[-1] + (f' ({where.group(1)})' if where else '')
    return ' '.join(text.split())


def _traceback_to_log(error: BaseException) -> None:
    """Write the traceback into the log files of the current run, if a
    runner has opened any (the console shows the one-line message)."""
    from mmengine.logging import MMLogger
    if not MMLogger._instance_dict:
        return
    logger = MMLogger.get_current_instance()
    files = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
    if not files:
        return
    record = logger.makeRecord(
        logger.name, logging.ERROR, __file__, 0,
        f'stopped: {one_line(error)}', None,
        (type(error), error, error.__traceback__))
    for handler in files:
        handler.handle(record)


def run_cli(fn: Callable[[], None], argv: Optional[List[str]] = None) -> int:
    """Run ``fn``; report input errors (:data:`USER_ERRORS`, status 2) and
    self-explaining run errors (:data:`RUN_ERRORS`, status 1) in one line.

    With ``--debug`` in ``argv`` (default ``sys.argv``) they are raised
    with their traceback instead.
    """
    from mmengine.dist import is_distributed
    debug = '--debug' in (sys.argv[1:] if argv is None else argv)
    joined_before = is_distributed()
    try:
        fn()
    except USER_ERRORS + RUN_ERRORS as e:
        if debug:
            raise
        _traceback_to_log(e)
        print(f'error: {one_line(e)}', file=sys.stderr)
        return 1 if isinstance(e, RUN_ERRORS) else 2
    if not joined_before and is_distributed():
        # Close the process group this run opened. A process that exits
        # with its gloo group open can abort in the interpreter's teardown
        # ("terminate called without an active exception", SIGABRT) after
        # its work is done, and torchrun then fails the whole run
        # (pytorch/pytorch#190489; torch's distributed docs, "Shutdown":
        # destroy the group near the end of main). Only after a run that
        # succeeded: a failed rank may leave others inside a collective,
        # where closing the group can hang them (pytorch/torchtitan#1342),
        # and its exit is an error either way.
        import torch.distributed as dist
        dist.destroy_process_group()
    return 0
