"""Every config that builds a Swin builds the network its weights come from.

The DINO and EsViT Swin-T runs use EsViT's Swin (microsoft/esvit
models/swin_transformer.py, also in the BC-SSL authors' DINO fork): given
the same weights, the pre-training backbone (which k-NN evaluates), the
linear probes' backbones and the EsViT backbone compute EsViT's network at
224 px and at the 96-px local crops. Dense configs use Swin's own dense
windows (every stage shifts) with the same LayerNorms.
"""
import glob
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

import mmbcssl  # noqa: F401
from mmbcssl.converters import get_format
from mmbcssl.models.backbones import OriginalSwinTransformer
from tests.conftest import REPO_ROOT, load_config
from tests.test_converters.esvit_swin import ESVIT_EPS, EsViTSwin
from tests.test_converters.sources import randomize_

SWIN_CONFIGS = sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*swin*.py'),
                       recursive=True))
DENSE = ('mask_rcnn', 'upernet', 'detection', 'segmentation')


def _backbone(config: str) -> nn.Module:
    cfg = load_config(osp.join(REPO_ROOT, config)).model.backbone
    cfg.pop('init_cfg', None)
    backbone = MODELS.build(cfg)
    backbone.eval()  # mmpretrain's Swin.train() returns None
    return backbone


def test_the_list_is_complete():
    assert len(SWIN_CONFIGS) >= 17
    assert 'configs/_base_/models/swin-t.py' in SWIN_CONFIGS


@pytest.mark.parametrize('config', SWIN_CONFIGS)
def test_every_swin_config_builds_esvits_norms_and_windows(config):
    backbone = _backbone(config)
    assert isinstance(backbone, OriginalSwinTransformer)
    eps = {m.eps for m in backbone.modules() if isinstance(m, nn.LayerNorm)}
    assert eps == {ESVIT_EPS}
    dense = any(f'/{d}/' in f'/{config}' for d in DENSE)
    assert backbone.windows_at_img_size is not dense
    if not dense and '_demo' not in config:  # Swin-T/S at 224 px
        assert backbone.windows[-1] == (7, False)


# The backbones that evaluate or pre-train DINO/EsViT Swin-T weights; each
# returns the pooled last stage (the probe on the last 4 blocks: its last
# 768 channels).
PRETRAIN_AND_EVAL = [
    'configs/dino/swin-t_100e.py',
    'configs/dino/swin-t_300e.py',
    'configs/esvit/esvit_swin-t_300e.py',
    'configs/linear/linear_swin-t-gap_dino-300e-pre_8xb128-coslr-100e_in1k.py',
    'configs/linear/linear_swin-t-last4_dino-300e-pre_8xb128-coslr-100e_'
    'in1k.py',
    'configs/linear/linear_swin-t-last4_esvit-300e-pre_8xb128-coslr-100e_'
    'in1k.py',
]


@pytest.fixture(scope='module')
def esvit_swin_t():
    """EsViT's Swin-T with random weights, and the weights converted. The
    patch projection is scaled down: the first LayerNorm's input variance
    is then small enough that its eps shows in the output."""
    ref = randomize_(EsViTSwin(), 3)
    with torch.no_grad():
        ref.patch_embed.proj.weight.mul_(0.01)
        ref.patch_embed.proj.bias.mul_(0.01)
    return ref, get_format('esvit').convert(ref.state_dict()).state_dict


@pytest.mark.parametrize('config', PRETRAIN_AND_EVAL)
def test_pretraining_knn_and_probes_compute_esvits_network(
        config, esvit_swin_t):
    ref, weights = esvit_swin_t
    backbone = _backbone(config)
    missing, unexpected = backbone.load_state_dict(weights, strict=False)
    assert not unexpected
    assert all(k.endswith('relative_position_index') for k in missing)
    for size in (224, 96):
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            expected = ref(x)  # [1, 768]
            out = backbone(x)[-1]
        got = out[:, -768:] if out.dim() == 2 else out.mean((2, 3))
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5,
                                   msg=f'{config} at {size} px')
