"""Hooks that subprocess tests import (as ``recording_hooks``, with this
folder on PYTHONPATH) through ``custom_imports``: record
every iteration's loss, and kill the process for real (SIGKILL) after a
given iteration."""
import json
import os
import os.path as osp
import signal

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module(force=True)
class RecordLossAndKillHook(Hook):
    """Appends ``[iteration, loss]`` to ``<work_dir>/losses.json`` after
    each iteration; with ``kill_after`` >= 0, SIGKILLs its own process
    (only process ``rank`` when it is >= 0) after that iteration (0-based),
    before any later hook runs."""
    priority = 'NORMAL'

    def __init__(self, kill_after: int = -1, rank: int = -1) -> None:
        self.kill_after = kill_after
        self.rank = rank  # -1: every process

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        path = osp.join(runner.work_dir, 'losses.json')
        losses = json.load(open(path)) if osp.exists(path) else []
        losses.append([runner.iter, float(outputs['loss'])])
        with open(path, 'w') as f:
            json.dump(losses, f)
        from mmengine.dist import get_rank
        if runner.iter == self.kill_after and self.rank in (-1, get_rank()):
            os.kill(os.getpid(), signal.SIGKILL)
