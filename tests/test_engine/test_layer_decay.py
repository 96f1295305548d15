"""Layer-wise LR decay: the lr scale of named parameters equals the formula of
the ConvNeXt recipe, and the groups agree with mmdet's own constructor where
that one works (ConvNeXt)."""
import re

import pytest
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import mmbcssl  # noqa: F401
from mmbcssl.engine.optimizers import LayerDecayOptimWrapperConstructor
from mmbcssl.models.backbones import BCSSL
from mmpretrain.models import ConvNeXt, SwinTransformer

RATE, BASE_LR, WD = 0.95, 1e-4, 0.05


class Detector(nn.Module):
    """What the constructor sees of a detector: a backbone and more."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.neck = nn.Conv2d(8, 8, 1)


def convnext_layer_id(name: str, num_layers: int) -> int:
    """ConvNeXt's layer ids (facebookresearch/ConvNeXt, object_detection/
    mmcv_custom/layer_decay_optimizer_constructor.py), written out
    independently of the code."""
    m = re.match(r'backbone\.(downsample_layers|stages)\.(\d+)\.(\d+)?', name)
    if not m:
        return num_layers + 1  # final norms, neck, heads
    kind, stage = m.group(1), int(m.group(2))
    if kind == 'downsample_layers':
        return {0: 0, 1: 2, 2: 3}.get(stage, num_layers)
    block = int(m.group(3))
    return {0: 1, 1: 2, 2: 3 + block // 3}.get(stage, num_layers)


def swin_layer_id(name: str, depths) -> int:
    """Swin: patch_embed 0, block j of stage i -> sum(depths[:i]) + j + 1,
    a stage's patch merging -> sum(depths[:i + 1]), rest on top."""
    if name.startswith('backbone.patch_embed'):
        return 0
    m = re.match(r'backbone\.stages\.(\d+)\.(blocks\.(\d+)|downsample)', name)
    if not m:
        return sum(depths) + 1
    i = int(m.group(1))
    if m.group(3) is None:
        return sum(depths[:i + 1])
    return sum(depths[:i]) + int(m.group(3)) + 1


def no_decay(name: str, param) -> bool:
    return (param.ndim <= 1 or name.endswith('.bias')
            or 'relative_position_bias_table' in name)


def groups_by_name(model, **paramwise):
    ctor = LayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=WD)),
        dict(layer_decay_rate=RATE, **paramwise))
    return {n: g for g in ctor.param_groups(model) for n in g['param_names']}


@pytest.mark.parametrize('arch,num_layers', [('tiny', 6), ('small', 12)])
def test_bcssl_scales_follow_the_formula(arch, num_layers):
    model = Detector(
        BCSSL(
            arch=arch,
            kernel_size=3,
            out_indices=(0, 1, 2, 3),
            gap_before_final_norm=False))
    groups = groups_by_name(model, num_layers=num_layers)
    params = dict(model.named_parameters())
    assert set(groups) == set(params)
    for name, g in groups.items():
        layer = convnext_layer_id(name, num_layers)
        assert g['layer_id'] == layer, name
        scale = RATE**(num_layers + 1 - layer)
        assert g['lr'] == pytest.approx(BASE_LR * scale), name
        assert g['weight_decay'] == (0. if no_decay(name, params[name]) else
                                     WD), name
    # spot checks a reader can verify by hand (T: stem 0.95^7, head 1)
    if arch == 'tiny':
        stem = groups['backbone.downsample_layers.0.0.weight']
        assert stem['lr_scale'] == pytest.approx(RATE**7)
        assert groups['backbone.stages.2.8.dw_norm.weight']['layer_id'] == 5
        assert groups['backbone.stages.1.0.gamma']['weight_decay'] == 0.
        assert groups['neck.weight']['lr_scale'] == 1.0
    else:
        assert groups['backbone.stages.2.26.pointwise_conv1.weight'][
            'layer_id'] == 11


def test_swin_scales_follow_the_formula():
    model = Detector(SwinTransformer(arch='tiny', out_indices=(0, 1, 2, 3)))
    groups = groups_by_name(model, num_layers=12)
    params = dict(model.named_parameters())
    for name, g in groups.items():
        layer = swin_layer_id(name, (2, 2, 6, 2))
        assert g['layer_id'] == layer, name
        assert g['lr_scale'] == pytest.approx(RATE**(13 - layer)), name
        assert g['weight_decay'] == (0. if no_decay(name, params[name]) else
                                     WD), name
    assert groups['backbone.patch_embed.projection.weight'][
        'lr_scale'] == pytest.approx(RATE**13)


@pytest.mark.parametrize('decay_type', ['layer_wise', 'stage_wise'])
def test_matches_mmdet_constructor_on_convnext(decay_type):
    """mmdet's constructor only accepts ConvNeXt; there both must agree."""
    init_default_scope('mmdet')
    model = Detector(
        ConvNeXt(
            arch='tiny', out_indices=(0, 1, 2, 3),
            gap_before_final_norm=False))
    theirs = build_optim_wrapper(
        model,
        dict(
            type='OptimWrapper',
            constructor='LearningRateDecayOptimizerConstructor',
            optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=WD),
            paramwise_cfg=dict(
                decay_rate=RATE, decay_type=decay_type, num_layers=6)))
    ours = build_optim_wrapper(
        model,
        dict(
            type='OptimWrapper',
            constructor='mmpretrain.LayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=WD),
            paramwise_cfg=dict(
                layer_decay_rate=RATE, decay_type=decay_type, num_layers=6)))

    def by_param(wrapper):
        return {
            id(p): (g['lr'], g['weight_decay'])
            for g in wrapper.optimizer.param_groups
            for p in g['params']
        }

    a, b = by_param(theirs), by_param(ours)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key][0] == pytest.approx(b[key][0])
        assert a[key][1] == b[key][1]


def test_frozen_parameters_are_left_out():
    model = Detector(BCSSL(arch='tiny', kernel_size=3, frozen_stages=1))
    groups = groups_by_name(model)
    assert 'backbone.stages.0.0.depthwise_conv.weight' not in groups
    assert 'backbone.stages.1.0.depthwise_conv.weight' in groups


def test_bad_settings_are_named():
    t = Detector(BCSSL(arch='tiny', kernel_size=3))
    with pytest.raises(ValueError, match='num_layers=12.*set num_layers=6'):
        groups_by_name(t, num_layers=12)
    with pytest.raises(ValueError, match='decay_type'):
        groups_by_name(t, decay_type='block_wise')
    with pytest.raises(ValueError, match='stage_wise decay needs'):
        groups_by_name(t, decay_type='stage_wise')
    from mmpretrain.models import ResNet
    with pytest.raises(
            TypeError, match='ResNet does not define `get_layer_depth'):
        groups_by_name(Detector(ResNet(depth=18)))
    with pytest.raises(TypeError, match='has no `backbone`'):
        groups_by_name(nn.Linear(2, 2))


def _groups(model, paramwise):
    ctor = LayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=WD)),
        paramwise)
    return {n: g for g in ctor.param_groups(model) for n in g['param_names']}


def test_upstream_key_names_give_the_same_decay():
    """ConvNeXt's and mmdet's constructors call the rate ``decay_rate``: a
    config written with their names decays exactly like ours."""
    model = Detector(BCSSL(arch='tiny', kernel_size=3))
    ours = _groups(model, dict(layer_decay_rate=RATE, num_layers=6,
                               decay_type='layer_wise'))
    upstream = _groups(model, dict(decay_rate=RATE, num_layers=6,
                                   decay_type='layer_wise'))
    assert {n: g['lr'] for n, g in ours.items()} == \
        {n: g['lr'] for n, g in upstream.items()}
    stem = upstream['backbone.downsample_layers.0.0.weight']
    assert stem['lr_scale'] == pytest.approx(RATE**7)  # not 1.0: it decays


def test_unknown_keys_are_refused_with_the_accepted_ones():
    model = Detector(BCSSL(arch='tiny', kernel_size=3))
    with pytest.raises(ValueError, match=r'paramwise_cfg\.layer_decay '
                       r'.*accepted: layer_decay_rate, decay_type, '
                       r'num_layers, no_decay_keys'):
        _groups(model, dict(layer_decay=RATE))
    with pytest.raises(ValueError, match='sets layer_decay_rate twice'):
        _groups(model, dict(layer_decay_rate=RATE, decay_rate=RATE))
