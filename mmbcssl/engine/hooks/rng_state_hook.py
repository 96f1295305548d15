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

    The gathering is a collective operation, so it cannot happen in
    ``before_save_checkpoint``, which mmengine calls on rank 0 only: it
    happens in :meth:`collect_for_checkpoint`, which
    :class:`~mmbcssl.engine.hooks.SafeCheckpointHook` calls on every rank
    just before each save. With another checkpoint hook, a distributed run
    saves no generator states (a warning says so); a single-process run
    saves its state either way.
    """
    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._states = None
        self._warned = False

    def collect_for_checkpoint(self, runner) -> None:
        """Gather every process's generator states (call on all ranks)."""
        self._states = dist.all_gather_object(get_rng_state())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        states, self._states = self._states, None
        if states is None and dist.get_world_size() == 1:
            states = [get_rng_state()]
        if states is None:
            if not self._warned:
                print_log(
                    'RNGStateHook: the checkpoints of this distributed run '
                    'hold no generator states, so a resume re-seeds; use '
                    "default_hooks.checkpoint.type='mmpretrain."
                    "SafeCheckpointHook' to save them", logger='current',
                    level=30)
                self._warned = True
            return
        checkpoint['rng_state'] = states

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
