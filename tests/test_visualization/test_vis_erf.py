"""Effective receptive fields (RepLKNet's measure): the area ratio's
definition, zero contribution outside the theoretical receptive field, and
a larger field for 9x9 than for 3x3 kernels in BC-SSL-T."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from PIL import Image

import mmbcssl  # noqa: F401
from mmbcssl.cli import vis_erf
from mmbcssl.visualization.erf import area_ratios, erf_map, scale_erf
from tests.test_visualization.tiny_models import dino_checkpoint, tiny_config


def _brute_force_side(data, t):
    """Smallest odd side of a centred square (clipped) holding >= t."""
    h, w = data.shape
    total = data.sum()
    for half in range(max(h, w)):
        sq = data[max(h // 2 - half, 0):h // 2 + half + 1,
                  max(w // 2 - half, 0):w // 2 + half + 1]
        if sq.sum() >= t * total - 1e-12:
            return 2 * half + 1, sq.size / (h * w)


def test_area_ratio_definition():
    # uniform 11 x 11: a side-s square holds s^2 / 121 of the total
    ratios = area_ratios(np.ones((11, 11)), scaled=True)
    assert ratios[0.2]['side'] == 5  # 25 / 121 >= 0.2 > 9 / 121
    assert ratios[0.5]['side'] == 9  # 81 / 121 >= 0.5 > 49 / 121
    assert ratios[0.99]['ratio'] == 1.0
    assert ratios[0.2]['ratio'] == pytest.approx(25 / 121)
    # a point at the centre: the 1 x 1 square holds everything
    delta = np.zeros((8, 8))
    delta[4, 4] = 3.0
    assert area_ratios(delta)[0.99] == dict(side=1, ratio=1 / 64)
    # random maps against a direct search; the log10(x + 1) scaling is
    # applied first, as in RepLKNet's analysis script
    rng = np.random.default_rng(0)
    for shape in ((9, 9), (10, 13)):
        raw = rng.exponential(5.0, size=shape)
        got = area_ratios(raw)
        for t in (0.2, 0.3, 0.5, 0.99):
            side, ratio = _brute_force_side(np.log10(raw + 1), t)
            assert got[t] == dict(side=side, ratio=pytest.approx(ratio))
    with pytest.raises(ValueError, match='zero everywhere'):
        area_ratios(np.zeros((4, 4)))


def test_scale_is_log10_plus_one_over_max():
    erf = np.array([[0., 9.], [99., 999.]])
    assert scale_erf(erf) == pytest.approx(np.array([[0, 1], [2, 3]]) / 3)


def test_zero_outside_the_receptive_field_of_a_conv_stack():
    # two 3x3 convolutions: the central output sees a 5 x 5 input window
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(),
                        nn.Conv2d(4, 4, 3, padding=1)).eval()
    x = [torch.randn(2, 3, 15, 15) for _ in range(2)]
    erf = erf_map(net, '2', x)
    inside = np.zeros((15, 15), dtype=bool)
    inside[5:10, 5:10] = True
    assert (erf[~inside] == 0).all()
    assert (erf[inside] > 0).all()
    # the 5 x 5 square holds everything: ratio 25 / 225 at t = 99%
    assert area_ratios(erf)[0.99] == dict(side=5, ratio=25 / 225)
    # 'relu' (RepLKNet's script): ReLU of the point and of the gradient
    x0 = x[0].clone().requires_grad_(True)
    out = net(x0)[:, :, 7, 7]
    (g, ) = torch.autograd.grad(torch.relu(out).sum(), x0)
    expected = torch.relu(g).sum(1).mean(0).double().numpy()
    assert erf_map(net, '2', [x[0]], grad='relu') == pytest.approx(expected)


# BC-SSL-T's first two stages (3 + 3 blocks, 96 / 192 channels): its
# stage-0 and stage-1 fields are those of the whole network, at a fraction
# of the cost
BCSSL_T_HEAD = dict(depths=[3, 3], channels=[96, 192])


def _bcssl_t(kernel_size, seed, **kwargs):
    torch.manual_seed(seed)
    net = MODELS.build(dict(type='BCSSL', arch=BCSSL_T_HEAD,
                            kernel_size=kernel_size, **kwargs))
    net.init_weights()
    return net.eval()


def test_bcssl_stage_cannot_see_the_border():
    # BC-SSL-T 3x3, stage 0: stem 4 px + 3 blocks x 2 x 4 px = 28 px around
    # the central output point (8, 8) of a 64 px input, i.e. input rows and
    # columns 20..47; the border is out of reach
    net = _bcssl_t(3, seed=0)
    erf = erf_map(net, 'stages.0', [torch.randn(1, 3, 64, 64)])
    ys, xs = np.nonzero(erf)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (20, 47, 20, 47)


def test_erf_grows_with_the_kernel_at_initialisation():
    """t = 50% area ratio of BC-SSL-T's stage 2 (index 1), 9x9 > 3x3,
    averaged over 3 seeds, at 72 px (9 x 9 output, centred)."""
    # Note: at mmpretrain's layer-scale init (1e-6) every residual branch
    # is ~1e-6 of the shortcut and the field is the stem and downsampling
    # patch (8 x 8 px here) for any kernel: both ratios are 0.95%. The
    # branches are given full weight (layer scale off) so that the kernel
    # shows at initialisation (measured: 4.3% for 3x3, 42.6% for 9x9).
    x = [torch.randn(2, 3, 72, 72)]
    ratio = {}
    for k in (3, 9):
        ratio[k] = np.mean([
            area_ratios(erf_map(
                _bcssl_t(k, seed, layer_scale_init_value=0.),
                'stages.1', x))[0.5]['ratio'] for seed in range(3)])
    assert ratio[9] > 2 * ratio[3]
    # at the default init the kernel does not matter yet
    default = [area_ratios(erf_map(_bcssl_t(k, 0), 'stages.1', x))[0.5]
               for k in (3, 9)]
    assert default[0] == default[1] == dict(side=7, ratio=49 / 72**2)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp('tiny_erf')
    cfg3, cfg9 = tiny_config(folder, 3), tiny_config(folder, 9)
    return dict(cfg3=cfg3, cfg9=cfg9,
                ckpt9=dino_checkpoint(folder / 'dino9.pth', cfg9))


def test_tool_writes_png_and_json(demo_data, tiny, tmp_path, capsys):
    val = osp.join(demo_data, 'imagenet', 'val')
    out, js = str(tmp_path / 'erf.png'), str(tmp_path / 'erf.json')
    args = [val, '--model', tiny['cfg3'], '--model', tiny['cfg9'],
            tiny['ckpt9'], '--labels', '3x3 init', '9x9 demo',
            '--num-images', '3', '--img-size', '64', '--stage', '1',
            '--out', out, '--json', js]
    assert vis_erf.main(args) == 0
    # 2 panels of 240 px + gaps and colour bar; title, labels, ratios
    assert Image.open(out).size == (2 * (240 + 16) + 64, 50 + 240 + 36)
    with open(js) as f:
        report = json.load(f)
    assert [m['label'] for m in report['models']] == ['3x3 init',
                                                      '9x9 demo']
    assert report['img_size'] == 64 and report['cfg_options'] is None
    first, second = report['models']
    assert first['layer'] == 'stages.1' and first['num_images'] == 3
    assert first['checkpoint'] is None and first['seed'] == 0
    assert second['checkpoint'] == tiny['ckpt9']
    assert first['input_size'] == [64, 64]
    assert set(first['area_ratio']) == {'0.2', '0.3', '0.5', '0.99'}
    assert 0 < first['area_ratio']['0.2'] <= first['area_ratio']['0.99'] <= 1
    # outputs are not replaced without --overwrite
    assert vis_erf.main(args) == 2
    assert 'exists; pass --overwrite' in capsys.readouterr().err
    assert vis_erf.main(args + ['--overwrite']) == 0


def test_tool_bad_input_is_one_line(demo_data, tiny, tmp_path, capsys):
    val = osp.join(demo_data, 'imagenet', 'val')
    base = [val, '--num-images', '1', '--img-size', '32', '--out',
            str(tmp_path / 'e.png')]
    cases = [
        # a 9x9 checkpoint does not fit the 3x3 config
        (['--model', tiny['cfg3'], tiny['ckpt9']],
         ['depthwise_conv.weight', '(16, 1, 9, 9)', '(16, 1, 3, 3)']),
        (['--model', tiny['cfg3'], '--layer', 'stages.9'], ["'stages.9'"]),
        (['--model', tiny['cfg3'], '--stage', '4'], ['4 stages']),
    ]
    for extra, words in cases:
        assert vis_erf.main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith('error: ')
        for w in words:
            assert w in err, err


REFUSED = dict(
    # the final norm of the pooled features: its centre point does not
    # depend on the input (a traceback before)
    pooled_norm=(['--layer', 'norm3'], ['norm3', 'pooled', 'stages.3']),
    # a Linear of a ConvNeXt block: its output is channels-last ("did not
    # run" before)
    channels_last_linear=(['--layer', 'stages.1.0.pointwise_conv1'],
                          ['channels-last', 'stages.1.0,',
                           'stages.1.0.dw_norm']),
    # layer scales that the config does not build were dropped unsaid
    layer_scale_dropped=(
        ['--cfg-options', 'model.backbone.layer_scale_init_value=0'],
        ['stages.0.0.gamma', 'layer_scale_init_value',
         '--allow-partial-weights']),
)


@pytest.mark.parametrize('case', list(REFUSED))
def test_tool_refuses_in_one_line(case, demo_data, tiny, tmp_path, capsys):
    args, words = REFUSED[case]
    val = osp.join(demo_data, 'imagenet', 'val')
    assert vis_erf.main([
        val, '--num-images', '1', '--img-size', '64', '--out',
        str(tmp_path / 'e.png'), '--model', tiny['cfg9'], tiny['ckpt9']
    ] + args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('error: ')
    assert 'did not run' not in err
    for w in words:
        assert w in err, err
