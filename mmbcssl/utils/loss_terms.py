"""The loss terms of the current iteration, shared through mmengine's
message hub between a model (which computes them) and an optimizer wrapper
(which only sees their sum and names the non-finite ones)."""
from typing import Dict, List

import torch
from mmengine.logging import MessageHub

# message-hub key under which a model leaves its loss terms
LOSS_TERMS_KEY = 'loss_terms'


def record_loss_terms(losses: Dict[str, torch.Tensor]) -> None:
    """Leave this iteration's terms in the hub. No host sync;
    ``resumed=False`` keeps the tensors out of checkpoints."""
    MessageHub.get_current_instance().update_info(
        LOSS_TERMS_KEY, {k: v.detach() for k, v in losses.items()},
        resumed=False)


def nonfinite_loss_terms() -> List[str]:
    """Names of the recorded terms that hold a NaN or Inf."""
    terms = MessageHub.get_current_instance().get_info(LOSS_TERMS_KEY) or {}
    return [name for name, value in terms.items()
            if not torch.isfinite(torch.as_tensor(value)).all()]
