"""The loss terms of the current iteration, shared through mmengine's
message hub between the place that sees them (the model's forward in
``mode='loss'``) and an optimizer wrapper, which only sees their sum and
names the non-finite ones."""
from typing import Dict, List, Sequence, Union

import torch
from mmengine.logging import MessageHub

# message-hub key under which this iteration's loss terms are left
LOSS_TERMS_KEY = 'loss_terms'

Term = Union[torch.Tensor, Sequence[torch.Tensor], float]


class TrainingDivergedError(FloatingPointError):
    """The loss or the weights became NaN/Inf during training."""


def _detached(value: Term):
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (list, tuple)):  # mmdet: one term per level
        return tuple(_detached(v) for v in value)
    return value


def _finite(value) -> bool:
    if isinstance(value, tuple):
        return all(_finite(v) for v in value)
    try:
        return bool(torch.isfinite(torch.as_tensor(value)).all())
    except (TypeError, ValueError, RuntimeError):  # not a number
        return True


def record_loss_terms(losses: Dict[str, Term]) -> None:
    """Leave this iteration's terms in the hub. No host sync;
    ``resumed=False`` keeps the tensors out of checkpoints."""
    MessageHub.get_current_instance().update_info(
        LOSS_TERMS_KEY, {k: _detached(v)
                         for k, v in losses.items()},
        resumed=False)


def nonfinite_loss_terms() -> List[str]:
    """Names of the recorded terms that hold a NaN or Inf."""
    terms = MessageHub.get_current_instance().get_info(LOSS_TERMS_KEY) or {}
    return [name for name, value in terms.items() if not _finite(value)]
