"""Schedules as plain functions of the global iteration (the DINO way)."""
import math


def cosine_schedule(base: float, final: float, it: int, total: int) -> float:
    """``final + (base - final) * (1 + cos(pi * it / total)) / 2``.

    facebookresearch/dino ``utils.cosine_scheduler`` without warm-up: the
    value at 0-based iteration ``it`` of ``total``.
    """
    if total <= 0:
        return base
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * it / total))
