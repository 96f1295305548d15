"""Random-number-generator states in checkpoints, for exact resumption."""
import random
from typing import Any, Dict

import numpy as np
import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS


def get_rng_state() -> Dict[str, Any]:
    """The states of Python's, numpy's and torch's (CPU and CUDA) global
    generators."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Saves the generators' states with every checkpoint and hands them to
    a :class:`ResumableEpochBasedTrainLoop` on resume.

    mmengine stores the seed, not the state: a run resumed from a checkpoint
    re-seeds and draws other crops, flips and drop-path masks than the run
    it continues. With this hook and the resumable loop the continuation is
    the same computation (bit-exact on CPU; on GPU as deterministic as the
    kernels are). Every process's state is gathered into the checkpoint
    (only rank 0 writes it) and each process restores its own; a resume on
    another number of processes re-seeds instead, with a warning.
    """
    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = dist.all_gather_object(get_rng_state())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get('rng_state')
        loop = runner.train_loop
        if not hasattr(loop, 'resume_rng_state'):
            return  # not resuming a training loop that can use it
        if states is None or len(states) != dist.get_world_size():
            why = ('has no random state (saved without RNGStateHook)'
                   if states is None else
                   f'holds the random state of {len(states)} processes, '
                   f'this run has {dist.get_world_size()}')
            print_log(f'the checkpoint {why}: the run continues from a '
                      're-seeded state, not the exact one', logger='current',
                      level=30)
            return
        loop.resume_rng_state = states[dist.get_rank()]
