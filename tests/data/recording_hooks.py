"""A hook for the resumption and fault tests: record every iteration's
loss, and stop after a given iteration, with an exception (in-process
tests) or a real SIGKILL (subprocess tests, which import this module as
``recording_hooks`` with this folder on PYTHONPATH)."""
import json
import os
import os.path as osp
import signal

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


class Interrupted(Exception):
    """Raised by :class:`RecordLossAndKillHook` with ``raise_after``."""


@HOOKS.register_module(force=True)
class RecordLossAndKillHook(Hook):
    """Appends ``[iteration, loss]`` to ``<work_dir>/losses.json`` (rank 0;
    ``losses_rank<r>.json`` for the others) after each iteration; with
    ``kill_after`` >= 0, SIGKILLs its own process (only process ``rank``
    when it is >= 0) after that iteration (0-based), before any later hook
    runs; with ``raise_after`` >= 0, raises :class:`Interrupted` there
    instead."""
    priority = 'NORMAL'

    def __init__(self, kill_after: int = -1, rank: int = -1,
                 raise_after: int = -1) -> None:
        self.kill_after = kill_after
        self.rank = rank  # -1: every process
        self.raise_after = raise_after

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        from mmengine.dist import get_rank
        rank = get_rank()
        # One file per process: two ranks rewriting one file race, and a
        # rank that reads the other's half-written file dies of a JSON
        # error before the intended SIGKILL happens.
        name = 'losses.json' if rank == 0 else f'losses_rank{rank}.json'
        path = osp.join(runner.work_dir, name)
        losses = json.load(open(path)) if osp.exists(path) else []
        losses.append([runner.iter, float(outputs['loss'])])
        with open(path + '.tmp', 'w') as f:
            json.dump(losses, f)
        os.replace(path + '.tmp', path)
        if runner.iter == self.kill_after and self.rank in (-1, rank):
            os.kill(os.getpid(), signal.SIGKILL)
        if runner.iter == self.raise_after:
            raise Interrupted(f'stopped after iteration {runner.iter}')
