"""SwinTransformerLastBlocks: the EsViT probe feature, checked against
forward hooks on OriginalSwinTransformer (the network it extends) with the
same weights."""
import pytest
import torch

from mmbcssl.models.backbones import (OriginalSwinTransformer,
                                      SwinTransformerLastBlocks)

# Swin-T's real stage layout, at a small width so the test is fast.
SMALL = dict(arch=dict(embed_dims=16, depths=[2, 2, 6, 2],
                       num_heads=[1, 2, 2, 4]), img_size=64, window_size=2)


def _hooked_reference(swin: OriginalSwinTransformer, x: torch.Tensor,
                      blocks):
    """Run the backbone's own forward and average the hooked block outputs, the
    last stage's through its final norm (EsViT's recipe)."""
    outs = {}
    handles = [
        swin.stages[i].blocks[j].register_forward_hook(
            lambda m, a, out, key=(i, j): outs.__setitem__(key, out))
        for i, j in blocks
    ]
    swin(x)
    for h in handles:
        h.remove()
    last = len(swin.stages) - 1
    return torch.cat([
        (swin.norm3(outs[(i, j)]) if i == last else outs[(i, j)]).mean(1)
        for i, j in blocks
    ], dim=1)


@pytest.mark.parametrize('n, blocks', [
    (4, [(2, 4), (2, 5), (3, 0), (3, 1)]),
    (1, [(3, 1)]),
    (3, [(2, 5), (3, 0), (3, 1)]),
])
def test_concatenates_the_last_blocks_like_esvit(n, blocks):
    ours = SwinTransformerLastBlocks(num_last_blocks=n, **SMALL)
    ref = OriginalSwinTransformer(**SMALL)
    ours.eval(), ref.eval()  # mmpretrain's Swin.train() returns None
    # the same state-dict keys: extracted Swin weights load unchanged
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        (feat, ) = ours(x)
        expected = _hooked_reference(ref, x, blocks)
    assert feat.shape == expected.shape
    torch.testing.assert_close(feat, expected)


def test_swin_t_feature_is_2304_and_frozen():
    swin = SwinTransformerLastBlocks(arch='tiny', frozen_stages=3)
    assert swin.out_channels == 2 * 384 + 2 * 768
    swin.train()
    assert not any(p.requires_grad for p in swin.parameters())
    with torch.no_grad():
        (feat, ) = swin(torch.randn(1, 3, 224, 224))
    assert feat.shape == (1, 2304)


def test_old_checkpoint_keys_are_renamed_as_mmpretrain_does():
    swin = SwinTransformerLastBlocks(num_last_blocks=2, **SMALL)
    state = swin.state_dict()
    old = {(f'norm.{k[len("norm3."):]}' if k.startswith('norm3.') else k): v
           for k, v in state.items()}
    assert 'norm.weight' in old
    fresh = SwinTransformerLastBlocks(num_last_blocks=2, **SMALL)
    fresh.load_state_dict(old)  # strict: every key found after renaming
    torch.testing.assert_close(fresh.norm3.weight, state['norm3.weight'])


def test_bad_arguments():
    with pytest.raises(ValueError,
                       match=r'num_last_blocks must be in \[1, 12'):
        SwinTransformerLastBlocks(num_last_blocks=13, **SMALL)
    with pytest.raises(ValueError, match='out_indices must contain'):
        SwinTransformerLastBlocks(out_indices=(2, ), **SMALL)
