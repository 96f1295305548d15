"""BC-SSL -> timm ConvNeXt: the deploy-folded backbone in timm gives the
outputs of the BC-SSL backbone with its BatchNorms (eval mode)."""
import os.path as osp

import pytest
import timm
import torch
import torchvision
from mmengine.config import Config
from mmpretrain.registry import MODELS
from timm.models import load_checkpoint
from timm.models.convnext import ConvNeXt

import mmbcssl  # noqa: F401
from mmbcssl.cli import convert
from mmbcssl.converters import ConversionError, convert_checkpoint
from tests.conftest import REPO_ROOT
from tests.test_converters.sources import load_output, max_abs, randomize_

TOL = 1e-5


def _save_backbone(backbone, path):
    """As tools/model_converters/extract_backbone.py writes it."""
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in
                                backbone.state_dict().items()},
                    meta=dict(part='teacher')), path)


def test_bcssl_t_9x9_to_timm_convnext_tiny(tmp_path, capsys):
    config = osp.join(REPO_ROOT, 'configs/_base_/models/bcssl-t_9x9.py')
    bcssl = randomize_(MODELS.build(Config.fromfile(config).model.backbone))
    src, out = str(tmp_path / 'bb.pth'), str(tmp_path / 'timm.pth')
    _save_backbone(bcssl, src)
    assert convert.main([src, out, '--to', 'timm']) == 0
    assert "timm.create_model('convnext_tiny', kernel_sizes=9" in \
        capsys.readouterr().out
    model = timm.create_model('convnext_tiny', kernel_sizes=9,
                              num_classes=0, pretrained=True,
                              pretrained_cfg_overlay=dict(file=out))
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert max_abs(model(x), bcssl(x)[-1]) <= TOL
    assert load_output(out)['meta']['timm']['model_name'] == 'convnext_tiny'


def test_small_kernel_and_per_stage_kernels(tmp_path):
    cfg = dict(type='BCSSL', arch=dict(depths=[1, 2, 1, 1],
                                       channels=[8, 16, 16, 24]),
               kernel_size=[5, 7, 7, 9], small_kernel=3)
    bcssl = randomize_(MODELS.build(cfg))
    src, out = str(tmp_path / 'bb.pth'), str(tmp_path / 'timm.pth')
    _save_backbone(bcssl, src)
    result = convert_checkpoint(src, to='timm')
    assert result.backbone_cfg['small_kernel'] == 3
    assert convert.main([src, out, '--to', 'timm']) == 0
    kwargs = load_output(out)['meta']['timm']['model_kwargs']
    assert kwargs['kernel_sizes'] == (5, 7, 7, 9)
    model = ConvNeXt(**kwargs)
    load_checkpoint(model, out, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert max_abs(model.eval()(x), bcssl(x)[-1]) <= TOL


def test_only_convnext_family_exports(tmp_path):
    src = str(tmp_path / 'resnet50.pth')
    torch.save(torchvision.models.resnet50().state_dict(), src)
    with pytest.raises(ConversionError, match='ConvNeXt-family'):
        convert_checkpoint(src, to='timm')
