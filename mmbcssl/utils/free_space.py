"""Pre-flight check that the work dir's file system can hold a checkpoint.

On a full disk the first save fails after a whole epoch (or interval) of
training; the checkpoint hook keeps the previous checkpoint, but the work
since is lost. Checked before training starts, against an estimate of one
checkpoint's size made from the built model and the optimizer config.
"""
import errno
import os
from typing import Any, Dict, Optional

import torch

from mmbcssl.fileio import DiskFullError

# Tensors of a parameter's size that torch's optimizers keep per trainable
# parameter (``torch.optim``: SGD ``momentum_buffer`` when momentum > 0;
# Adam/AdamW ``exp_avg`` and ``exp_avg_sq``, with amsgrad also
# ``max_exp_avg_sq``; mmpretrain's LARS a momentum buffer). Other
# optimizers are counted as Adam.
STATE_PER_PARAM = {'SGD': 1, 'LARS': 1, 'Adam': 2, 'AdamW': 2}
# What a checkpoint holds besides tensors (meta, message hub, schedulers)
# and the zip records' headers: a few kB for these models.
OVERHEAD = 2**20


def _optimizer_states(optimizer: Optional[Dict[str, Any]]) -> int:
    if not optimizer:
        return 0
    kind = str(optimizer.get('type', 'SGD')).rsplit('.', 1)[-1]
    if kind == 'SGD':
        return 1 if optimizer.get('momentum', 0) else 0
    states = STATE_PER_PARAM.get(kind, 2)
    return states + 1 if optimizer.get('amsgrad') else states


def checkpoint_bytes(model: torch.nn.Module,
                     optimizer: Optional[Dict[str, Any]]) -> int:
    """An estimate of the bytes one checkpoint of ``model`` takes when it
    is trained with the optimizer config ``optimizer`` (None: no optimizer
    state saved).

    Counted: every tensor of the model's state dict (weights and buffers,
    a DINO teacher included), and the optimizer's per-parameter state
    (:data:`STATE_PER_PARAM`) for each parameter that requires a gradient.
    Not counted (see :data:`OVERHEAD`): pickled metadata and zip headers.
    """
    weights = sum(t.numel() * t.element_size()
                  for t in model.state_dict().values()
                  if isinstance(t, torch.Tensor))
    trainable = sum(p.numel() * p.element_size() for p in model.parameters()
                    if p.requires_grad)
    return weights + _optimizer_states(optimizer) * trainable


def _size(n: float) -> str:
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB':
            return f'{n:.1f} {unit}' if unit != 'B' else f'{int(n)} B'
        n /= 1024
    return f'{n:.1f} TiB'


def check_free_space(work_dir: str, needed: int) -> None:
    """Refuse to start when the file system of ``work_dir`` has less free
    space (for this user: ``f_bavail``) than ``needed`` bytes.

    Raises:
        DiskFullError: naming both numbers and the fix.
    """
    stat = os.statvfs(work_dir)
    free = stat.f_bavail * stat.f_frsize
    if free < needed:
        raise DiskFullError(
            errno.ENOSPC,
            f'not enough free space to save a checkpoint in {work_dir}: '
            f'{_size(free)} free, a checkpoint of this model and optimizer '
            f'needs about {_size(needed)} (estimated); free space or point '
            '--work-dir at a bigger disk, then run again', work_dir)


def check_checkpoint_space(runner) -> None:
    """:func:`check_free_space` for the checkpoints ``runner`` will save:
    its model and ``cfg.optim_wrapper.optimizer`` (no optimizer state when
    the checkpoint hook has ``save_optimizer=False``), plus
    :data:`OVERHEAD`. Only the main process saves, so only it checks."""
    from mmengine.dist import is_main_process
    from mmengine.model import is_model_wrapper
    cfg = runner.cfg
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if not is_main_process() or not isinstance(hook, dict):
        return
    wrapper = cfg.get('optim_wrapper') or {}
    optimizer = wrapper.get('optimizer') if hook.get('save_optimizer',
                                                     True) else None
    if optimizer is None and hook.get('save_optimizer', True) and wrapper:
        optimizer = dict(type='Adam')  # several wrappers: counted as Adam
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    check_free_space(runner.work_dir,
                     checkpoint_bytes(model, optimizer) + OVERHEAD)
