"""DINO's gradient treatment: per-tensor clipping and a frozen last layer
in the first epoch(s) (facebookresearch/dino ``utils.clip_gradients`` and
``utils.cancel_gradients_last_layer``)."""
from typing import Iterable, List, Optional

import torch
from mmengine.logging import MessageHub
from mmpretrain.registry import OPTIM_WRAPPERS

from .guarded_optim_wrapper import GuardedAmpOptimWrapper, GuardedOptimWrapper


def clip_per_tensor(params: Iterable[torch.Tensor], max_norm: float) -> None:
    """Scale each gradient whose own L2 norm exceeds ``max_norm`` down to
    it: ``g *= max_norm / (||g|| + 1e-6)`` when that factor is < 1.

    Not the global-norm clipping of ``clip_grad_norm_``: each tensor is
    clipped on its own, as the reference does.
    """
    for p in params:
        if p.grad is None:
            continue
        coef = max_norm / (p.grad.detach().norm(2) + 1e-6)
        # multiplying by min(coef, 1) instead of testing `coef < 1`: the
        # same numbers (x 1.0 is exact) without a GPU sync per tensor
        p.grad.detach().mul_(coef.clamp(max=1.0))


class _DINOGradients:
    """What both wrappers do before the optimizer step. Mixed in before the
    guarded mmengine wrapper, whose arguments (the NaN/Inf policy included)
    pass through ``**kwargs``."""

    def __init__(self,
                 per_tensor_clip: Optional[float] = 3.0,
                 freeze_last_layer_epochs: int = 1,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.per_tensor_clip = per_tensor_clip
        self.freeze_last_layer_epochs = freeze_last_layer_epochs
        # Set by DINOOptimWrapperConstructor.
        self.last_layer_params: List[torch.Tensor] = []

    def _all_params(self) -> List[torch.Tensor]:
        return [p for g in self.optimizer.param_groups for p in g['params']]

    def _treat_gradients(self) -> None:
        if self.per_tensor_clip:
            clip_per_tensor(self._all_params(), self.per_tensor_clip)
        epoch = MessageHub.get_current_instance().get_info('epoch', 0)
        if epoch < self.freeze_last_layer_epochs:
            # Dropping the gradient keeps AdamW from moving these weights
            # (no moment update either), as the reference's p.grad = None.
            for p in self.last_layer_params:
                p.grad = None


@OPTIM_WRAPPERS.register_module()
class DINOOptimWrapper(_DINOGradients, GuardedOptimWrapper):
    """``OptimWrapper`` with DINO's per-tensor clipping and last-layer
    freezing, guarded against NaN/Inf losses.

    Args:
        per_tensor_clip (float, optional): Max L2 norm of each gradient
            tensor. Defaults to 3.0.
        freeze_last_layer_epochs (int): Epochs in which the DINO head's last
            layer gets no update. Defaults to 1.
        nonfinite_loss (str): ``'raise'`` (stop, naming the iteration) or
            ``'skip'`` (drop the step) for a NaN/Inf loss (see
            :class:`NonFiniteLossGuard`). Defaults to 'raise'.
        max_consecutive_skips (int): With 'skip', stop after this many bad
            steps in a row. Defaults to 100.
        **kwargs: Passed to ``OptimWrapper``.
    """

    def step(self, **kwargs) -> None:
        self._treat_gradients()
        super().step(**kwargs)


@OPTIM_WRAPPERS.register_module()
class DINOAmpOptimWrapper(_DINOGradients, GuardedAmpOptimWrapper):
    """The AMP variant: gradients are unscaled before they are clipped."""

    def step(self, **kwargs) -> None:
        self.loss_scaler.unscale_(self.optimizer)
        self._treat_gradients()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update(self._scale_update_param)
