"""VisionTransformerLastBlocks: DINO's ViT probe feature (the class tokens
of the last n blocks, each through the final norm), checked against forward
hooks on mmpretrain's own VisionTransformer with the same weights."""
import pytest
import torch
from mmpretrain.models.backbones import VisionTransformer

from mmbcssl.models.backbones import VisionTransformerLastBlocks

SMALL = dict(arch=dict(embed_dims=32, num_layers=6, num_heads=2,
                       feedforward_channels=64), img_size=32, patch_size=8)


def _hooked_reference(vit: VisionTransformer, x: torch.Tensor, n: int):
    """Class token of each of the last n layers' outputs, through the final
    norm, concatenated (DINO's get_intermediate_layers + x[:, 0])."""
    outs = []
    handles = [
        layer.register_forward_hook(lambda m, a, out: outs.append(out))
        for layer in vit.layers[-n:]
    ]
    vit(x)
    for h in handles:
        h.remove()
    return torch.cat([vit.ln1(o)[:, 0] for o in outs], dim=1)


@pytest.mark.parametrize('n', [1, 4, 6])
def test_concatenates_the_last_class_tokens_like_dino(n):
    ours = VisionTransformerLastBlocks(num_last_blocks=n, **SMALL)
    ref = VisionTransformer(**SMALL)
    ours.eval(), ref.eval()  # mmpretrain's ViT.train() returns None
    # the same state-dict keys: extracted ViT weights load unchanged
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        (feat, ) = ours(x)
        expected = _hooked_reference(ref, x, n)
        (last, ) = ref(x)  # mmpretrain's own cls-token output
    assert feat.shape == (2, n * 32)
    torch.testing.assert_close(feat, expected)
    # the last chunk is exactly what the plain backbone returns
    torch.testing.assert_close(feat[:, -32:], last)


def test_vit_s16_feature_is_1536_and_frozen():
    vit = VisionTransformerLastBlocks(arch='deit-small', frozen_stages=12)
    assert vit.out_channels == 4 * 384
    vit.train()
    assert not any(p.requires_grad for p in vit.parameters())


def test_rejects_more_blocks_than_layers():
    with pytest.raises(ValueError, match=r'num_last_blocks must be in'):
        VisionTransformerLastBlocks(num_last_blocks=7, **SMALL)
