"""DINO's optimizer mechanics against their formulas."""
import math

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import CosineAnnealingParamScheduler

import mmbcssl  # noqa: F401
from mmbcssl.engine.optimizers import clip_per_tensor
from mmbcssl.utils.loss_terms import LOSS_TERMS_KEY
from mmpretrain.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS


def test_per_tensor_clipping_formula():
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(3))
    a.grad = torch.tensor([3.0, 4.0])  # norm 5 > 3: scaled to ~3
    b.grad = torch.tensor([1.0, 0.0, 0.0])  # norm 1: untouched
    clip_per_tensor([a, b], 3.0)
    torch.testing.assert_close(a.grad, torch.tensor([3.0, 4.0]) * 3 /
                               (5 + 1e-6))
    torch.testing.assert_close(b.grad, torch.tensor([1.0, 0.0, 0.0]))
    # Global-norm clipping would have scaled b too.


def _model():
    model = MODELS.build(dict(
        type='DINO',
        backbone=dict(type='BCSSL', arch=dict(depths=[1, 1, 1, 1],
                                              channels=[8, 8, 8, 8]),
                      kernel_size=3),
        head=dict(type='DINOHead', in_channels=8, out_channels=16,
                  hidden_channels=8, bottleneck_channels=4,
                  norm_last_layer=False),
        loss=dict(type='DINOLoss', out_channels=16)))
    model.init_weights()
    return model


def _wrapper(model, **kw):
    cfg = dict(type='DINOOptimWrapper',
               optimizer=dict(type='AdamW', lr=0.01, weight_decay=0.04), **kw)
    return OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type='DINOOptimWrapperConstructor', optim_wrapper_cfg=cfg))(
            model)


def test_param_groups_and_last_layer():
    model = _model()
    wrapper = _wrapper(model)
    decay, no_decay = wrapper.optimizer.param_groups
    assert decay['weight_decay'] == 0.04 and no_decay['weight_decay'] == 0.
    names = {id(p): n for n, p in model.named_parameters()}
    for p in decay['params']:
        assert p.ndim > 1 and not names[id(p)].endswith('.bias')
    for p in no_decay['params']:
        assert p.ndim <= 1 or names[id(p)].endswith('.bias')
    in_groups = {id(p) for g in wrapper.optimizer.param_groups
                 for p in g['params']}
    assert not any(id(p) in in_groups for p in model.teacher.parameters())
    assert {names[id(p)] for p in wrapper.last_layer_params} == {
        'head.last_layer.weight_v', 'head.last_layer.weight_g'}


@pytest.mark.parametrize('epoch, frozen', [(0, True), (1, False)])
def test_last_layer_frozen_in_epoch_zero_only(epoch, frozen):
    model = _model()
    wrapper = _wrapper(model, freeze_last_layer_epochs=1)
    MessageHub.get_current_instance().update_info('epoch', epoch)
    try:
        last = model.head.last_layer.weight_v.detach().clone()
        mlp = model.head.mlp[0].weight.detach().clone()
        views = [torch.randn(2, 3, 64, 64) for _ in range(2)] + \
            [torch.randn(2, 3, 32, 32)]
        wrapper.update_params(model.loss(views, None)['loss'])
        moved = not torch.equal(model.head.last_layer.weight_v, last)
        assert moved != frozen
        assert not torch.equal(model.head.mlp[0].weight, mlp)
    finally:
        MessageHub.get_current_instance().update_info('epoch', 0)


def test_weight_decay_cosine_keeps_no_decay_group_at_zero():
    """0.04 -> 0.4 cosine per iteration on the decayed group only, with
    mmengine's scheduler and eta_min_ratio (a ratio of each group's own
    value; an absolute eta_min would raise the no-decay group to 0.4)."""
    model = _model()
    wrapper = _wrapper(model)
    total = 20
    sched = CosineAnnealingParamScheduler(
        wrapper, param_name='weight_decay', eta_min_ratio=10.0, begin=0,
        end=total, by_epoch=False)
    for it in range(total):
        decay, no_decay = wrapper.optimizer.param_groups
        expected = 0.4 + (0.04 - 0.4) * (1 + math.cos(math.pi * it /
                                                      total)) / 2
        assert decay['weight_decay'] == pytest.approx(expected)
        assert no_decay['weight_decay'] == 0.0
        sched.step()


def _views():
    return [torch.randn(2, 3, 64, 64) for _ in range(2)] + \
        [torch.randn(2, 3, 32, 32)]


def test_nonfinite_loss_raises_before_touching_weights():
    model = _model()
    wrapper = _wrapper(model)
    MessageHub.get_current_instance().update_info('iter', 41)
    # Parameters, not buffers: BN statistics move in the forward itself.
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    loss = model.loss(_views(), None)['loss'] * float('nan')
    with pytest.raises(FloatingPointError) as info:
        wrapper.update_params(loss)
    assert 'iteration 41' in str(info.value) and 'nan' in str(info.value)
    for k, v in model.named_parameters():
        assert torch.equal(v, before[k]), k
    MessageHub.get_current_instance().update_info('iter', 0)


class _EsViTLike(torch.nn.Module):
    """DINO's loss as the view term of EsViT-like terms, with a NaN region
    term."""

    def __init__(self, dino):
        super().__init__()
        self.dino = dino

    def forward(self, views, mode='loss'):
        view = self.dino.loss(views, None)['loss']
        region = view * float('nan')
        return dict(loss=0.5 * (view + region), view=view.detach(),
                    region=region.detach())


def test_nonfinite_message_names_the_term():
    """The path of mmengine's train_step (and of its DDP wrapper): the
    forward in mode 'loss' inside the wrapper's optim_context, parse_losses,
    then update_params. The region term is NaN, the view term finite."""
    model = _model()
    wrapper = _wrapper(model)
    esvit = _EsViTLike(model)
    with wrapper.optim_context(esvit):
        terms = esvit(_views(), mode='loss')
    loss, _ = model.parse_losses(terms)
    with pytest.raises(FloatingPointError) as info:
        wrapper.update_params(loss)
    assert 'non-finite loss terms: loss, region' in str(info.value)
    # the terms are not saved in checkpoints (tensors, per iteration)
    hub = MessageHub.get_current_instance()
    assert LOSS_TERMS_KEY in hub.runtime_info
    assert LOSS_TERMS_KEY not in hub.state_dict()['runtime_info']


def test_nonfinite_loss_skip_policy():
    model = _model()
    wrapper = _wrapper(model, nonfinite_loss='skip', max_consecutive_skips=2)
    before = model.head.mlp[0].weight.detach().clone()
    for _ in range(2):
        wrapper.update_params(model.loss(_views(), None)['loss'] *
                              float('inf'))
        model.momentum_update(0.996)  # what DINOTeacherHook does each step
        assert torch.equal(model.head.mlp[0].weight, before)
    assert wrapper.skipped_steps == 2
    with pytest.raises(FloatingPointError):  # a third in a row
        wrapper.update_params(model.loss(_views(), None)['loss'] *
                              float('nan'))
    model.momentum_update(0.996)
    wrapper.update_params(model.loss(_views(), None)['loss'])  # finite: steps
    assert not torch.equal(model.head.mlp[0].weight, before)


def test_bad_nonfinite_policy():
    with pytest.raises(ValueError, match='nonfinite_loss'):
        _wrapper(_model(), nonfinite_loss='ignore')
