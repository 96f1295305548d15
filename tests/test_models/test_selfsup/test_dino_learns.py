"""DINO's mechanics learn end to end: with the two global views identical, the
student can always copy the teacher, so a working DINO (EMA teacher,
centring, sharpening, optimiser) must sharpen the teacher and lower the loss
within a few dozen steps, without collapsing onto one prototype.

This is the mechanics half of the learning check; whether the demo data's
k-NN rises after pre-training is a separate (and much slower) question, see
configs/dino/README.md.
"""
import math

import torch
from mmengine.logging import MessageHub

import mmbcssl  # noqa: F401
from mmpretrain.registry import MODELS

K = 64


def _teacher_stats(model, x):
    """Mean entropy of the teacher's centred, sharpened output and the
    number of distinct prototypes it picks over the batch."""
    with torch.no_grad():
        t = model.teacher(x)
        loss = model.loss_module  # the temperature after warm-up
        q = torch.softmax((t - loss.center) / loss.teacher_temp, dim=-1)
        entropy = -(q * q.clamp_min(1e-12).log()).sum(-1).mean().item()
        return entropy, q.argmax(-1).unique().numel()


def _run(steps, update_teacher=True):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='DINO',
        backbone=dict(type='BCSSL', arch=dict(depths=[1, 1, 1, 1],
                                              channels=[8, 16, 24, 32]),
                      kernel_size=3),
        head=dict(type='DINOHead', in_channels=32, out_channels=K,
                  hidden_channels=64, bottleneck_channels=16),
        loss=dict(type='DINOLoss', out_channels=K)))
    model.init_weights()
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3,
        weight_decay=0.04)
    x = torch.randn(16, 3, 32, 32)
    start = _teacher_stats(model, x)
    losses = []
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 1)  # temperature after warm-up
    try:
        for _ in range(steps):
            loss = model.loss([x, x], None)['loss']  # identical views
            opt.zero_grad()
            loss.backward()
            opt.step()
            if update_teacher:
                model.momentum_update(0.99)
            else:
                model._losses_since_update = 0  # silence the missing-hook
            losses.append(loss.item())
    finally:
        hub.update_info('epoch', 0)
    return losses, start, _teacher_stats(model, x)


def test_dino_sharpens_and_learns_on_identical_views():
    losses, (h0, _), (h1, picked) = _run(40)
    # the loss falls to a fraction of its start ...
    assert losses[-1] < 0.5 * losses[0], losses
    # ... because the teacher sharpens (measured: entropy 0.82 -> 0.10;
    # uniform would be ln K = 4.16) ...
    assert h1 < 0.25 * h0 < 0.25 * math.log(K), (h0, h1)
    # ... onto many prototypes (measured: 12 for 16 inputs): centring
    # prevents the collapse onto one prototype
    assert picked >= 8, picked


def test_without_the_ema_update_the_teacher_does_not_sharpen():
    """The control: a teacher that never moves keeps its initial entropy,
    so the test above really measures the EMA-driven bootstrap."""
    _, (h0, _), (h1, _) = _run(40, update_teacher=False)
    assert h1 > 0.9 * h0, (h0, h1)
