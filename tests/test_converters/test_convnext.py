"""facebookresearch/ConvNeXt weights into the project's ConvNeXt-T
(``BCSSL`` without the depthwise BN), compared with timm's ConvNeXt-T, which
reads that layout through its own ``checkpoint_filter_fn``."""
import glob
import os.path as osp

import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from timm.models.convnext import ConvNeXt, checkpoint_filter_fn
from timm.utils import ModelEmaV3, get_state_dict

import mmbcssl  # noqa: F401
from mmbcssl.cli import convert
from mmbcssl.utils.pretrained_checks import check_pretrained
from tests.conftest import REPO_ROOT
from tests.test_converters.sources import (convnext_timm_to_fb, dino_args,
                                           fit_to_config, grad_scaler_state,
                                           load_as_pretrained, load_output,
                                           max_abs, randomize_)

TOL = 1e-5


def test_fb_layout_is_what_timm_reads():
    model = timm.create_model('convnext_tiny', num_classes=10)
    fb = convnext_timm_to_fb(model)
    assert 'stages.0.0.dwconv.weight' in fb and 'head.weight' in fb
    filtered = checkpoint_filter_fn(fb, model)
    assert filtered.keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(filtered[k], v), k


def test_release_and_training_checkpoint(tmp_path):
    model = randomize_(ConvNeXt(depths=(1, 1, 2, 1), dims=(16, 24, 32, 40),
                                num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(x),
                                      pre_logits=True)
    release = str(tmp_path / 'convnext_1k_224_ema.pth')
    torch.save(dict(model=convnext_timm_to_fb(model)), release)
    training = str(tmp_path / 'checkpoint-best.pth')
    # ConvNeXt's utils.save_model: the loss scaler's GradScaler state, the
    # parser's Namespace, and with --model_ema timm's get_state_dict of it
    torch.save(dict(model=convnext_timm_to_fb(model),
                    optimizer=torch.optim.AdamW(
                        model.parameters()).state_dict(),
                    epoch=299, scaler=grad_scaler_state(), args=dino_args(),
                    model_ema=get_state_dict(ModelEmaV3(model))), training)

    for src in (release, training):  # no --trust-checkpoint
        out = str(tmp_path / 'out.pth')
        assert convert.main([src, out, '--overwrite']) == 0
        meta = load_output(out)['meta']
        assert meta['format'] == 'convnext'
        assert (meta['backbone']['kernel_size'],
                meta['backbone']['dw_norm_cfg']) == (7, None)
        with torch.no_grad():
            got = load_as_pretrained(out)(x)[-1]
        assert max_abs(got, expected) <= TOL, src


def test_convnext_t_fits_the_project_config():
    """Full-size ConvNeXt-T against configs/_base_/models/convnext-t_7x7.py
    (BCSSL without the depthwise BN)."""
    model = timm.create_model('convnext_tiny', num_classes=1000)
    report = fit_to_config('convnext', convnext_timm_to_fb(model),
                           osp.join(REPO_ROOT, 'configs/_base_/models/'
                                    'convnext-t_7x7.py'))
    assert not report.unmatched and len(report.matched) == 180
    assert report.dropped == ['head.weight', 'head.bias']


@pytest.mark.parametrize('task', ['mask_rcnn', 'upernet'])
def test_loads_into_the_dense_configs(tmp_path, task):
    """A converted ConvNeXt passes the pre-flight check of the detection and
    segmentation configs (mmdet/mmseg scope, four output stages whose extra
    norms start fresh) and loads through their init_cfg."""
    model = ConvNeXt(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))
    src, out = str(tmp_path / 'fb.pth'), str(tmp_path / 'out.pth')
    torch.save(dict(model=convnext_timm_to_fb(model)), src)
    assert convert.main([src, out]) == 0
    configs = sorted(
        glob.glob(osp.join(REPO_ROOT, 'configs', task, '*convnext*')))
    assert configs, f'no ConvNeXt config under configs/{task}'
    cfg = Config.fromfile(configs[0])
    cfg.model.backbone.arch = dict(depths=[1, 1, 1, 1],
                                   channels=[8, 16, 24, 32])
    cfg.model.backbone.init_cfg.checkpoint = out
    check_pretrained(cfg)  # raises on any missing or mis-shaped key
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        backbone = MODELS.build(cfg.model.backbone)  # with its init_cfg
    backbone.init_weights()
    given = load_output(out)['state_dict']
    for k, v in backbone.state_dict().items():
        if not k.startswith(('norm0.', 'norm1.', 'norm2.')):
            assert torch.equal(v, given[f'backbone.{k}']), k
