"""DINO: the teacher, the loss formula, batching by resolution, schedules."""
import math

import pytest
import torch
from mmengine.logging import MessageHub

import mmbcssl  # noqa: F401
from mmbcssl.engine.hooks import DINOTeacherHook
from mmbcssl.models.losses import DINOLoss, teacher_temperature
from mmpretrain.registry import MODELS

TINY_BACKBONE = dict(type='BCSSL', arch=dict(depths=[1, 1, 1, 1],
                                             channels=[8, 16, 24, 32]),
                     kernel_size=3)


def _dino(**kw):
    cfg = dict(
        type='DINO',
        backbone=TINY_BACKBONE,
        head=dict(type='DINOHead', in_channels=32, out_channels=64,
                  hidden_channels=32, bottleneck_channels=16),
        loss=dict(type='DINOLoss', out_channels=64))
    cfg.update(kw)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _views(b=2, n_local=2):
    return [torch.randn(b, 3, 64, 64) for _ in range(2)] + \
        [torch.randn(b, 3, 32, 32) for _ in range(n_local)]


def test_teacher_starts_equal_and_moves_by_one_minus_m():
    model = _dino()
    for s, t in zip(model.student.parameters(), model.teacher.parameters()):
        assert torch.equal(s, t)
        s.data.add_(torch.randn_like(s))  # the student moves
    before = [t.clone() for t in model.teacher.parameters()]
    m = 0.9
    model.momentum_update(m)
    for s, t, t0 in zip(model.student.parameters(),
                        model.teacher.parameters(), before):
        torch.testing.assert_close(t, m * t0 + (1 - m) * s)


def test_teacher_gets_no_gradients():
    model = _dino()
    model.train()
    loss = model.loss(_views(), None)['loss']
    loss.backward()
    assert all(not p.requires_grad for p in model.teacher.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())
    grads = [p.grad for p in model.backbone.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_missing_teacher_hook_fails_loudly():
    model = _dino()
    model.loss(_views(), None)
    model.loss(_views(), None)
    with pytest.raises(RuntimeError, match='DINOTeacherHook'):
        model.loss(_views(), None)
    model.momentum_update(0.99)
    model.loss(_views(), None)  # fine again once the hook runs


def test_batching_by_resolution_equals_per_view_forwards():
    model = _dino(backbone=dict(TINY_BACKBONE, dw_norm_cfg=None))
    model.eval()  # no batch statistics: outputs are per sample
    views = _views(b=3, n_local=3)
    batched = model._student_forward(views)
    for v, out in zip(views, batched):
        torch.testing.assert_close(out, model.student(v), rtol=1e-5,
                                   atol=1e-6)


def _hand_loss(student, teacher, center, t_s, t_t):
    total, pairs = 0., 0
    for i, t in enumerate(teacher):
        q = torch.softmax((t - center) / t_t, dim=-1)
        for v, s in enumerate(student):
            if v == i:
                continue
            logp = torch.log_softmax(s / t_s, dim=-1)
            total += -(q * logp).sum(-1).mean()
            pairs += 1
    return total / pairs


def test_loss_equals_formula_with_centring_and_centre_update():
    torch.manual_seed(3)
    loss_fn = DINOLoss(out_channels=5, student_temp=0.1, teacher_temp=0.07,
                       warmup_teacher_temp=0.04,
                       warmup_teacher_temp_epochs=3, center_momentum=0.9)
    loss_fn.center.copy_(torch.randn(1, 5))
    center0 = loss_fn.center.clone()
    student = [torch.randn(4, 5) for _ in range(4)]
    teacher = [torch.randn(4, 5) for _ in range(2)]
    out = loss_fn(student, teacher, epoch=1)
    # epoch 1 of a 3-epoch warm-up 0.04 -> 0.07: 0.055
    expected = _hand_loss(student, teacher, center0, 0.1, 0.055)
    torch.testing.assert_close(out, expected)
    # 2 teacher views x 3 other views each = 6 pairs; centre after the loss
    batch_mean = torch.cat(teacher).mean(0, keepdim=True)
    torch.testing.assert_close(loss_fn.center,
                               0.9 * center0 + 0.1 * batch_mean)


@pytest.mark.parametrize('epoch, expected', [(0, 0.04), (15, 0.055),
                                             (29, 0.07), (30, 0.07),
                                             (99, 0.07)])
def test_teacher_temperature_schedule(epoch, expected):
    # np.linspace(0.04, 0.07, 30)[epoch], then constant (reference).
    assert teacher_temperature(epoch, 0.07, 0.04, 30) == pytest.approx(
        0.04 + 0.03 * min(epoch, 29) / 29)
    if epoch in (0, 29, 30, 99):
        assert teacher_temperature(epoch, 0.07, 0.04, 30) == \
            pytest.approx(expected)


def test_loss_epoch_comes_from_the_message_hub():
    model = _dino(loss=dict(type='DINOLoss', out_channels=64,
                            teacher_temp=0.07, warmup_teacher_temp=0.04,
                            warmup_teacher_temp_epochs=2))
    hub = MessageHub.get_current_instance()
    views = _views()
    seen = []
    original = model.loss_module.forward
    model.loss_module.forward = lambda s, t, epoch: seen.append(epoch) or \
        original(s, t, epoch)
    hub.update_info('epoch', 5)
    model.loss(views, None)
    hub.update_info('epoch', 0)
    assert seen == [5]


@pytest.mark.parametrize('it, total', [(0, 100), (50, 100), (99, 100),
                                       (100, 100)])
def test_momentum_schedule_is_the_reference_cosine(it, total):
    hook = DINOTeacherHook(0.996, 1.0)
    expected = 1 - (1 - 0.996) * (math.cos(math.pi * it / total) + 1) / 2
    assert hook.momentum(it, total) == pytest.approx(expected)
    assert hook.momentum(0, total) == pytest.approx(0.996)


def test_head_shapes_and_fixed_gain():
    from mmbcssl.models.heads import DINOHead
    head = DINOHead(in_channels=8, out_channels=10, hidden_channels=6,
                    bottleneck_channels=4, norm_last_layer=True)
    head.init_weights()
    out = head(torch.randn(3, 8))
    assert out.shape == (3, 10)
    assert not head.last_layer.weight_g.requires_grad
    # Unit-norm rows: every logit is a cosine, |logit| <= 1.
    assert out.abs().max() <= 1 + 1e-5
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1),
                               torch.ones(10))
    trainable = DINOHead(8, 10, 6, 4, norm_last_layer=False)
    assert trainable.last_layer.weight_g.requires_grad
    assert set(trainable.state_dict()) >= {'last_layer.weight_g',
                                           'last_layer.weight_v'}


def test_last_layer_starts_like_torch_default_linear():
    """The reference creates the last layer after its trunc-normal init, so
    v is nn.Linear's default weight; init_weights must not touch it."""
    from mmbcssl.models.heads import DINOHead
    torch.manual_seed(3)
    head = DINOHead(in_channels=8, out_channels=300, hidden_channels=6,
                    bottleneck_channels=64)
    v = head.last_layer.weight_v.detach().clone()
    head.init_weights()
    torch.testing.assert_close(head.last_layer.weight_v.detach(), v)
    # the same draw as torch's own Linear after the same MLP construction
    torch.manual_seed(3)
    torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.GELU(),
                        torch.nn.Linear(6, 6), torch.nn.GELU(),
                        torch.nn.Linear(6, 64))
    ref = torch.nn.Linear(64, 300, bias=False).weight.detach()
    torch.testing.assert_close(v, ref)
    # U(-1/8, 1/8): std 1 / sqrt(3 * 64), not trunc-normal 0.02
    assert v.abs().max() <= 1 / 8
    assert v.std().item() == pytest.approx(1 / math.sqrt(3 * 64), rel=0.05)


def test_teacher_has_no_stochastic_depth():
    model = _dino(backbone=dict(TINY_BACKBONE, drop_path_rate=0.5))
    student_rates = [m.drop_prob for m in model.backbone.modules()
                     if hasattr(m, 'drop_prob')]
    assert max(student_rates) == 0.5
    assert all(m.drop_prob == 0 for m in model.teacher.modules()
               if hasattr(m, 'drop_prob'))
    # In train mode the teacher is then deterministic (BN uses batch
    # statistics of the same batch both times).
    model.train()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.teacher(x), model.teacher(x))


def test_teacher_drop_path_option_keeps_the_students_rates_active():
    """teacher_drop_path=True: the BC-SSL authors' teacher, built with the
    student's stochastic depth and left in train mode, so two forwards of
    the same batch differ; the rates are the student's, layer by layer."""
    model = _dino(backbone=dict(TINY_BACKBONE, drop_path_rate=0.5),
                  teacher_drop_path=True)
    rates = [m.drop_prob for m in model.backbone.modules()
             if hasattr(m, 'drop_prob')]
    assert max(rates) == 0.5
    assert [m.drop_prob for m in model.teacher.backbone.modules()
            if hasattr(m, 'drop_prob')] == rates
    # still a frozen copy of the student, moved only by the EMA
    for s, t in zip(model.student.parameters(), model.teacher.parameters()):
        assert torch.equal(s, t) and not t.requires_grad
    model.train()
    x = torch.randn(4, 3, 64, 64)
    torch.manual_seed(0)
    with torch.no_grad():
        first, second = model.teacher(x), model.teacher(x)
    assert not torch.allclose(first, second)
