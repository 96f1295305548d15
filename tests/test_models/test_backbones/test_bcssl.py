"""BCSSL: shapes, freezing, deploy folding, re-parameterisation, layer ids,
equality with mmpretrain's ConvNeXt, bad input."""
import copy

import pytest
import torch
import torch.nn as nn
from mmpretrain.models.backbones import ConvNeXt

import mmbcssl  # noqa: F401
from mmbcssl.models.backbones import BCSSL

TINY = dict(depths=[1, 1, 2, 1], channels=[8, 16, 24, 32])


def _randomise_bn(model, seed=0):
    """Non-identity BN statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.2)
            m.weight.data.copy_(torch.randn(c, generator=g))
            m.bias.data.copy_(torch.randn(c, generator=g))
    return model


@pytest.mark.parametrize('out_indices', [-1, (0, 1, 2, 3), (1, -2)])
@pytest.mark.parametrize('gap', [True, False])
def test_output_shapes(out_indices, gap):
    m = BCSSL(arch=TINY, kernel_size=5, out_indices=out_indices,
              gap_before_final_norm=gap).eval()
    outs = m(torch.randn(2, 3, 64, 64))
    idx = [out_indices] if isinstance(out_indices, int) else out_indices
    idx = [i % 4 for i in idx]
    assert len(outs) == len(idx)
    for o, i in zip(outs, idx):
        c, side = TINY['channels'][i], 64 // 4 // 2**i
        assert o.shape == ((2, c) if gap else (2, c, side, side))


@pytest.mark.parametrize('arch, params', [('tiny', 28.05), ('small', 49.7),
                                          ('base', 88.0)])
def test_named_archs_and_sizes(arch, params):
    m = BCSSL(arch=arch, kernel_size=9)
    n = sum(p.numel() for p in m.parameters()) / 1e6
    assert n == pytest.approx(params, rel=0.02)
    assert m.kernel_sizes == [9, 9, 9, 9]
    block = m.stages[2][0]
    assert block.depthwise_conv.kernel_size == (9, 9)
    assert isinstance(block.dw_norm, nn.BatchNorm2d)


def test_kernel_per_stage():
    m = BCSSL(arch=TINY, kernel_size=[3, 5, 7, 9])
    ks = [m.stages[i][0].depthwise_conv.kernel_size[0] for i in range(4)]
    assert ks == [3, 5, 7, 9]


def test_no_norm_equals_mmpretrain_convnext():
    ours = BCSSL(arch=TINY, kernel_size=7, dw_norm_cfg=None,
                 out_indices=(0, 1, 2, 3)).eval()
    ref = ConvNeXt(arch=TINY, out_indices=[0, 1, 2, 3])
    ref.eval()  # mmpretrain's ConvNeXt.train() returns None: no chaining
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    for a, b in zip(ours(x), ref(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_vanilla_convnext_checkpoint_loads_and_matches():
    ref = ConvNeXt(arch=TINY, out_indices=[3])
    ref.eval()
    ours = BCSSL(arch=TINY, kernel_size=7, out_indices=3).eval()
    result = ours.load_state_dict(ref.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(
        '.dw_norm.' in k for k in result.missing_keys)
    x = torch.randn(2, 3, 64, 64)
    # A fresh BN scales by 1 / sqrt(1 + 1e-5) in eval mode.
    torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('small_kernel', [None, 3])
def test_deploy_folding_is_equivalent(small_kernel):
    m = BCSSL(arch=TINY, kernel_size=9, small_kernel=small_kernel,
              out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
    _randomise_bn(m).eval()
    x = torch.randn(2, 3, 64, 64)
    before = m(x)
    n_before = sum(p.numel() for p in m.parameters())
    m.switch_to_deploy()
    after = m(x)
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in m.modules())
    assert sum(p.numel() for p in m.parameters()) < n_before
    for a, b in zip(before, after):
        rel = (a - b).abs().max() / a.abs().max()
        assert rel < 1e-5


def test_deployed_state_dict_loads_into_deploy_model():
    m = _randomise_bn(BCSSL(arch=TINY, kernel_size=9)).eval()
    x = torch.randn(1, 3, 64, 64)
    m.switch_to_deploy()
    fresh = BCSSL(arch=TINY, kernel_size=9, deploy=True).eval()
    fresh.load_state_dict(m.state_dict(), strict=True)
    torch.testing.assert_close(fresh(x)[0], m(x)[0])
    # ... and the folded network is exactly a vanilla ConvNeXt (9x9).
    assert set(fresh.state_dict()) == set(
        BCSSL(arch=TINY, kernel_size=9, dw_norm_cfg=None).state_dict())


def test_small_kernel_branch_is_used_in_training():
    m = BCSSL(arch=TINY, kernel_size=9, small_kernel=5)
    block = m.stages[0][0]
    assert block.small_conv.kernel_size == (5, 5)
    m(torch.randn(2, 3, 64, 64))[0].sum().backward()
    assert block.small_conv.weight.grad.abs().sum() > 0


def test_frozen_stages_and_norm_eval_really_freeze():
    m = BCSSL(arch=TINY, kernel_size=3, frozen_stages=2, norm_eval=True,
              out_indices=(0, 1, 2, 3))
    m.train()
    frozen = list(m.downsample_layers[:2].parameters()) + list(
        m.stages[:2].parameters())
    assert all(not p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in m.stages[2].parameters())
    before = copy.deepcopy(m.state_dict())
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad],
                          lr=0.1)
    sum(o.sum() for o in m(torch.randn(4, 3, 64, 64))).backward()
    opt.step()
    after = m.state_dict()
    for k in before:
        if k.startswith(('stages.0', 'stages.1', 'downsample_layers.0',
                         'downsample_layers.1')) or 'running' in k:
            # Frozen weights, and (norm_eval) every BN's statistics.
            torch.testing.assert_close(after[k], before[k], rtol=0, atol=0)
    # The trainable stage moved (its layer scale gamma gets an unscaled
    # gradient; the conv weights' is scaled by gamma = 1e-6).
    assert not torch.equal(after['stages.2.0.gamma'],
                           before['stages.2.0.gamma'])
    bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert bns and all(not bn.training for bn in bns)


def test_bn_statistics_update_without_norm_eval():
    m = BCSSL(arch=TINY, kernel_size=3).train()
    before = m.stages[3][0].dw_norm.running_mean.clone()
    m(torch.randn(4, 3, 64, 64))
    assert not torch.equal(m.stages[3][0].dw_norm.running_mean, before)


def test_channels_last():
    m = _randomise_bn(BCSSL(arch=TINY, kernel_size=9)).eval()
    x = torch.randn(2, 3, 64, 64)
    ref = m(x)[0]
    m = m.to(memory_format=torch.channels_last)
    out = m(x.to(memory_format=torch.channels_last))[0]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_channels_last_layout_survives_the_norms():
    """The stem/downsampling/output norms keep channels_last maps as
    channels_last (mmpretrain's LayerNorm2d returns NCHW), NCHW stays
    NCHW, and the values are the same either way."""
    m = BCSSL(arch=TINY, kernel_size=3, out_indices=(0, 1, 2, 3),
              gap_before_final_norm=False).eval()
    seen = []
    for norm in [m.downsample_layers[0][1], m.downsample_layers[2][0]]:
        norm.register_forward_hook(lambda mod, i, o: seen.append(o))
    x = torch.randn(2, 3, 64, 64)
    ref = m(x)
    assert all(t.is_contiguous() for t in list(ref) + seen)
    seen.clear()
    m = m.to(memory_format=torch.channels_last)
    out = m(x.to(memory_format=torch.channels_last))
    for t in list(out) + seen:
        assert t.is_contiguous(memory_format=torch.channels_last)
        assert not t.is_contiguous()
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_cpu_channels_last_pointwise_path_trains_the_same():
    """On CPU, channels_last maps run the pointwise Linears as 1x1 convs
    (same parameters); outputs and every gradient match the NCHW path."""
    torch.manual_seed(0)
    nchw = _randomise_bn(BCSSL(arch=TINY, kernel_size=5,
                               layer_scale_init_value=1.0)).train()
    cl = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    calls = []
    for m in cl.modules():
        if isinstance(m, nn.Linear):
            m.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(4, 3, 64, 64)
    out = cl(x.to(memory_format=torch.channels_last))[0]
    assert not calls  # the Linears' weights were used as 1x1 kernels
    cl_nchw = copy.deepcopy(cl).to(memory_format=torch.contiguous_format)
    cl_nchw(x)
    assert len(calls) == 2 * sum(TINY['depths'])  # NCHW: the Linears
    out_ref = nchw(x)[0]
    torch.testing.assert_close(out, out_ref, rtol=1e-4, atol=1e-5)
    (out_ref ** 2).sum().backward()
    (out ** 2).sum().backward()
    grads = dict(cl.named_parameters())
    for name, p in nchw.named_parameters():
        torch.testing.assert_close(grads[name].grad, p.grad, rtol=1e-3,
                                   atol=1e-5, msg=name)
    for name, buf in nchw.named_buffers():  # BN statistics
        torch.testing.assert_close(dict(cl.named_buffers())[name], buf,
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('channels_last', [True, False])
def test_keep_layout_norm_matches_mmpretrain(channels_last):
    from mmpretrain.models.utils import LayerNorm2d
    from mmpretrain.registry import MODELS

    from mmbcssl.models.backbones.bcssl import LayerNorm2dKeepLayout
    # found by its class name and by the short name
    for name in ('LayerNorm2dKeepLayout', 'LN2dKeepLayout'):
        assert MODELS.get(name) is LayerNorm2dKeepLayout
    assert isinstance(BCSSL(arch=TINY).downsample_layers[0][1],
                      LayerNorm2dKeepLayout)
    ref = LayerNorm2d(16, eps=1e-6)
    ref.weight.data.normal_()
    ref.bias.data.normal_()
    ours = LayerNorm2dKeepLayout(16, eps=1e-6)
    ours.load_state_dict(ref.state_dict())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 16, 5, 7).to(memory_format=fmt)
    out = ours(x)
    torch.testing.assert_close(out, ref(x), rtol=0, atol=0)
    assert out.is_contiguous(memory_format=fmt)
    # The channel_last entry (used inside the blocks) is untouched.
    y = torch.randn(2, 5, 7, 16)
    torch.testing.assert_close(ours(y, data_format='channel_last'),
                               ref(y, data_format='channel_last'),
                               rtol=0, atol=0)


def _mmdet_layer_id(name, max_layer_id):
    from mmdet.engine.optimizers.layer_decay_optimizer_constructor import \
        get_layer_id_for_convnext
    return get_layer_id_for_convnext(name, max_layer_id)


def _formula(name, num_layers):
    """ConvNeXt's layer ids (facebookresearch/ConvNeXt, object_detection/
    mmcv_custom/layer_decay_optimizer_constructor.py), spelled out."""
    parts = name.split('.')
    if parts[0] == 'downsample_layers':
        return {0: 0, 1: 2, 2: 3, 3: num_layers}[int(parts[1])]
    if parts[0] == 'stages':
        stage, block = int(parts[1]), int(parts[2])
        return {0: 1, 1: 2, 2: 3 + block // 3, 3: num_layers}[stage]
    return num_layers + 1


@pytest.mark.parametrize('arch, num_layers', [('tiny', 6), ('small', 12)])
def test_layer_depth_ids(arch, num_layers):
    m = BCSSL(arch=arch, kernel_size=9)
    names = [n for n, _ in m.named_parameters()]
    assert any('.dw_norm.' in n for n in names)
    for name in names:
        layer_id, total = m.get_layer_depth(name)
        assert total == num_layers + 2
        assert layer_id == _formula(name, num_layers), name
        assert layer_id == _mmdet_layer_id('backbone.' + name, num_layers)
    # With a prefix, as the optimizer constructors call it.
    assert m.get_layer_depth('backbone.stages.2.7.dw_norm.weight',
                             'backbone.')[0] == 3 + 7 // 3


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='huge'), 'arch'),
    (dict(kernel_size=8), 'kernel_size'),
    (dict(kernel_size=[3, 5, 7]), 'kernel_size'),
    (dict(out_indices=4), 'out_indices'),
    (dict(out_indices=(0, -5)), 'out_indices'),
    (dict(kernel_size=9, small_kernel=9), 'small_kernel'),
    (dict(kernel_size=9, small_kernel=4), 'small_kernel'),
    (dict(frozen_stages=5), 'frozen_stages'),
])
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BCSSL(**kwargs)
