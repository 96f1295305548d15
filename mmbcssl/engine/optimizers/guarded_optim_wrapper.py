"""Optimizer wrappers that stop training, or skip the step, when the loss is
NaN/Inf, naming the iteration and the loss terms.

mmengine's ``OptimWrapper`` steps on whatever loss it gets: a NaN loss
turns every weight into NaN, training goes on logging ``loss: nan``, exits
0 and saves NaN checkpoints. Every training path of this project uses
these wrappers (through :class:`GuardedOptimWrapperConstructor`, which the
DINO and layer-decay constructors extend).
"""
import contextlib
from typing import Iterator, Optional

import torch
import torch.nn as nn
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmpretrain.registry import OPTIM_WRAPPERS

from mmbcssl.utils.loss_terms import (LOSS_TERMS_KEY, TrainingDivergedError,
                                      nonfinite_loss_terms,
                                      record_loss_terms)


def _record_loss_output(module: nn.Module, args: tuple, kwargs: dict,
                        output) -> None:
    """Forward hook: the dict a model returns in ``mode='loss'`` holds the
    terms that ``parse_losses`` sums into the one loss the wrapper sees."""
    if kwargs.get('mode') == 'loss' and isinstance(output, dict):
        record_loss_terms(output)


class NonFiniteLossGuard:
    """What the guarded wrappers add: a check of the loss before backward.

    Mixed in before an mmengine wrapper, whose arguments pass through
    ``**kwargs``.

    Args:
        nonfinite_loss (str): ``'raise'``: stop before the bad step touches
            the weights, naming the iteration (the last checkpoint on disk
            stays the last good one); ``'skip'``: drop this step, count it
            and go on. Defaults to 'raise'.
        max_consecutive_skips (int): With ``'skip'``, stop after this many
            bad steps in a row. Defaults to 100.

    ``taken_steps`` and ``skipped_steps`` count the calls of
    :meth:`update_params` with a finite and a skipped loss;
    :class:`~mmbcssl.engine.hooks.SafeCheckpointHook` stops training after
    an epoch with none taken.
    """

    def __init__(self,
                 nonfinite_loss: str = 'raise',
                 max_consecutive_skips: int = 100,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if nonfinite_loss not in ('raise', 'skip'):
            raise ValueError("nonfinite_loss must be 'raise' or 'skip', got "
                             f'{nonfinite_loss!r}')
        self.nonfinite_loss = nonfinite_loss
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped_steps = 0
        self.taken_steps = 0  # finite losses, stepped (or accumulated)
        self._consecutive_skips = 0
        self._watched: Optional[nn.Module] = None
        self._hook_handle = None

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """mmengine's context, plus recording the model's loss terms.

        ``BaseModel.train_step`` (and the DDP wrapper's) runs the forward
        inside this context: a forward hook on ``model`` sees the terms
        before ``parse_losses`` sums them, for every model, without
        touching its code.
        """
        if self._watched is not model:
            if self._hook_handle is not None:
                self._hook_handle.remove()
            self._hook_handle = model.register_forward_hook(
                _record_loss_output, with_kwargs=True)
            self._watched = model
        with super().optim_context(model):
            yield

    def update_params(self, loss: torch.Tensor, *args, **kwargs) -> None:
        """Backward and step, unless the loss is NaN/Inf (see the class
        docstring for the policy)."""
        hub = MessageHub.get_current_instance()
        if torch.isfinite(loss).all():
            self._consecutive_skips = 0
            super().update_params(loss, *args, **kwargs)
            self.taken_steps += 1
            hub.update_info(LOSS_TERMS_KEY, {}, resumed=False)
            return
        where = (f"iteration {hub.get_info('iter', 0)} (epoch "
                 f"{hub.get_info('epoch', 0)})")
        bad = nonfinite_loss_terms()
        if bad:
            where += f"; non-finite loss terms: {', '.join(bad)}"
        self._consecutive_skips += 1
        if self.nonfinite_loss == 'raise' or (
                self._consecutive_skips > self.max_consecutive_skips):
            raise TrainingDivergedError(
                f'the loss is {loss.item()} at {where}; training '
                'stopped before this step changed the weights, and the last '
                'checkpoint in the work dir is intact. Resume from it with a '
                'lower lr, or set optim_wrapper.nonfinite_loss=\'skip\' to '
                'drop such steps.')
        self.skipped_steps += 1
        self.zero_grad()
        hub.update_info(LOSS_TERMS_KEY, {}, resumed=False)
        print_log(f'skipped the step at {where}: the loss is {loss.item()} '
                  f'({self.skipped_steps} skipped so far)', logger='current',
                  level=30)


@OPTIM_WRAPPERS.register_module()
class GuardedOptimWrapper(NonFiniteLossGuard, OptimWrapper):
    """mmengine's ``OptimWrapper`` with :class:`NonFiniteLossGuard`.

    Args:
        nonfinite_loss (str): ``'raise'`` or ``'skip'``. Defaults to
            'raise'.
        max_consecutive_skips (int): Defaults to 100.
        **kwargs: Passed to ``OptimWrapper``.
    """


@OPTIM_WRAPPERS.register_module()
class GuardedAmpOptimWrapper(NonFiniteLossGuard, AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` with :class:`NonFiniteLossGuard`.

    Args:
        nonfinite_loss (str): ``'raise'`` or ``'skip'``. Defaults to
            'raise'.
        max_consecutive_skips (int): Defaults to 100.
        **kwargs: Passed to ``AmpOptimWrapper``.
    """
