"""OriginalSwinTransformer against EsViT's Swin (written from microsoft/esvit
models/swin_transformer.py in tests/test_converters/esvit_swin.py): the same
windows and shifts, the same LayerNorms, the same outputs at 224 and 96 px
on weights converted from the reference layout."""
import pytest
import torch
import torch.nn as nn
from mmpretrain.models.backbones import SwinTransformer

from mmbcssl.converters import get_format
from mmbcssl.models.backbones import OriginalSwinTransformer
from tests.test_converters.esvit_swin import ESVIT_EPS, EsViTSwin
from tests.test_converters.sources import randomize_

# Swin-T's stages and window at a small width: the geometry is what matters
SMALL = dict(embed_dim=16, depths=(2, 2, 6, 2), num_heads=(1, 2, 2, 4))
ARCH = dict(embed_dims=16, depths=[2, 2, 6, 2], num_heads=[1, 2, 2, 4])
ESVIT_NORM = dict(type='LN', eps=ESVIT_EPS)


def _windows(swin):
    """``(window, shift)`` of every block, stage by stage."""
    return [[(b.attn.window_size, b.attn.shift_size) for b in stage.blocks]
            for stage in swin.stages]


@pytest.mark.parametrize('img_size', [224, 96, 64])
def test_windows_and_shifts_are_the_references(img_size):
    ours = OriginalSwinTransformer(arch=ARCH, img_size=img_size)
    assert _windows(ours) == EsViTSwin(img_size=img_size, **SMALL).windows()


def test_swin_t_last_stage_does_not_shift_at_224():
    ours = OriginalSwinTransformer(arch='tiny')
    assert ours.windows == [(7, True)] * 3 + [(7, False)]
    assert _windows(ours)[3] == [(7, 0), (7, 0)]
    assert _windows(ours)[2][1] == (7, 3)
    # Swin's dense backbones: every stage shifts its odd blocks
    dense = OriginalSwinTransformer(arch='tiny', windows_at_img_size=False)
    assert all(w == [(7, 0), (7, 3)] * (len(w) // 2) for w in _windows(dense))


def _layer_norms(module):
    return {n: m.eps for n, m in module.named_modules()
            if isinstance(m, nn.LayerNorm)}


def test_norm_cfg_reaches_every_layer_norm():
    ours = _layer_norms(OriginalSwinTransformer(
        arch='tiny', norm_cfg=ESVIT_NORM))
    # patch embedding, 2 per block, 3 patch mergings, the output norm
    assert len(ours) == 1 + 2 * 12 + 3 + 1
    assert set(ours.values()) == {ESVIT_EPS}
    # mmpretrain's own norm_cfg reaches the output norm only
    theirs = _layer_norms(SwinTransformer(arch='tiny', norm_cfg=ESVIT_NORM))
    assert theirs.keys() == ours.keys()
    assert [n for n, eps in theirs.items() if eps == ESVIT_EPS] == ['norm3']


def _reference_and_ours(seed=0, small_variance=True):
    """EsViT's network with random weights, and ours loaded with them
    through the EsViT converter. ``small_variance`` scales the patch
    projection down so that the first LayerNorm sees a variance of about
    1e-4, where its eps changes the output by far more than the
    tolerance."""
    ref = randomize_(EsViTSwin(**SMALL), seed)
    if small_variance:
        with torch.no_grad():
            ref.patch_embed.proj.weight.mul_(0.01)
            ref.patch_embed.proj.bias.mul_(0.01)
    converted = get_format('esvit').convert(ref.state_dict())
    ours = OriginalSwinTransformer(arch=ARCH, norm_cfg=ESVIT_NORM)
    missing, unexpected = ours.load_state_dict(converted.state_dict,
                                               strict=False)
    assert not unexpected
    assert all(k.endswith('relative_position_index') for k in missing)
    ours.eval()  # not `return ours.eval()`: Swin.train() returns None
    return ref, ours


@pytest.mark.parametrize('size', [224, 96])
def test_same_network_as_esvit(size):
    """Pooled feature and region tokens equal EsViT's at 224 px and at the
    96-px local crops (maps 24, 12, 6, 3: padded; stage 3 shifted over the
    padded map, stage 4 one unshifted window)."""
    ref, ours = _reference_and_ours()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = ref.regions(x)  # [B, L, C]
        (out, ) = ours(x)  # [B, C, h, w]
    got = out.flatten(2).transpose(1, 2)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.mean(1), ref(x), rtol=1e-4, atol=1e-5)


def test_the_comparison_sees_the_eps_and_the_shift():
    """The tolerance above is far below what a wrong eps or a stage-4 shift
    changes (what mmpretrain's SwinTransformer computes)."""
    ref, ours = _reference_and_ours()
    x = torch.randn(2, 3, 96, 96)
    wrong_eps = OriginalSwinTransformer(arch=ARCH)
    wrong_eps.load_state_dict(ours.state_dict())
    wrong_eps.eval()
    shifted = SwinTransformer(arch=ARCH, pad_small_map=True)
    shifted.load_state_dict(ours.state_dict())
    shifted.eval()
    for m in shifted.modules():
        if isinstance(m, nn.LayerNorm):
            m.eps = ESVIT_EPS  # only the stage-4 shift differs now
    with torch.no_grad():
        expected = ref(x)
        for other in (wrong_eps, shifted):
            diff = (other(x)[-1].mean((2, 3)) - expected).abs().max()
            assert diff > 1e-3 * expected.abs().max(), type(other).__name__
