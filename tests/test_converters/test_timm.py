"""timm ``convnext_*`` and ``swin_*`` weights (state dicts, .safetensors,
train.py checkpoints), compared with the timm model they come from. Small
widths; the architecture is read off the weights."""
import pytest
import torch
from safetensors.torch import save_file
from timm.models.convnext import ConvNeXt
from timm.models.swin_transformer import SwinTransformer
from timm.utils import CheckpointSaver, ModelEmaV3, NativeScaler

import mmbcssl  # noqa: F401
from mmbcssl.cli import convert
from mmbcssl.converters import convert_checkpoint
from tests.test_converters.sources import (load_as_pretrained, load_output,
                                           max_abs, randomize_,
                                           timm_train_args)

TOL = 1e-5


@pytest.mark.parametrize('conv_mlp', [False, True])
def test_convnext_safetensors(tmp_path, conv_mlp):
    model = randomize_(ConvNeXt(depths=(1, 1, 2, 1), dims=(16, 24, 32, 40),
                                kernel_sizes=(3, 5, 7, 9), conv_mlp=conv_mlp,
                                num_classes=5))
    src = str(tmp_path / 'model.safetensors')
    save_file(model.state_dict(), src)
    out = str(tmp_path / 'out.pth')
    assert convert.main([src, out]) == 0
    meta = load_output(out)['meta']
    assert meta['format'] == 'timm'
    assert meta['backbone']['kernel_size'] == [3, 5, 7, 9]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(x),
                                      pre_logits=True)
        got = load_as_pretrained(out)(x)[-1]
    assert max_abs(got, expected) <= TOL


def test_swin_state_dict_and_train_checkpoint(tmp_path):
    model = randomize_(SwinTransformer(
        img_size=128, embed_dim=32, depths=(2, 2, 2, 2),
        num_heads=(1, 2, 2, 4), window_size=4, num_classes=5))
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(x),
                                      pre_logits=True)
    plain = str(tmp_path / 'pytorch_model.bin')
    torch.save(model.state_dict(), plain)
    # timm's train.py writes through CheckpointSaver (args, the optimizer,
    # the AMP scaler, the EMA, the metric); the EMA is left out, as timm's
    # validate.py does by default, so it is zeroed here to tell them apart
    ema = ModelEmaV3(model)
    with torch.no_grad():
        for p in ema.module.parameters():
            p.zero_()
    saver = CheckpointSaver(
        model, torch.optim.SGD(model.parameters(), lr=0.1),
        args=timm_train_args('swin_tiny_patch4_window7_224'),
        model_ema=ema, amp_scaler=NativeScaler('cpu'),
        checkpoint_dir=str(tmp_path))
    saver.save_checkpoint(3, metric=71.5)
    trained = str(tmp_path / 'model_best.pth.tar')
    for src in (plain, trained):  # no --trust-checkpoint
        out = str(tmp_path / 'out.pth')
        assert convert.main([src, out, '--overwrite']) == 0
        cfg = load_output(out)['meta']['backbone']
        assert cfg['arch'] == dict(embed_dims=32, depths=[2, 2, 2, 2],
                                   num_heads=[1, 2, 2, 4])
        assert cfg['window_size'] == 4
        with torch.no_grad():
            got = load_as_pretrained(out)(x)[-1].mean((2, 3))
        assert max_abs(got, expected) <= TOL, src


def test_train_checkpoint_reports_left_out_entries(tmp_path):
    model = ConvNeXt(depths=(1, 1, 1, 1), dims=(8, 8, 16, 16),
                     num_classes=3)
    src = str(tmp_path / 'last.pth.tar')
    torch.save(dict(epoch=1, state_dict=model.state_dict(),
                    state_dict_ema=model.state_dict()), src)
    result = convert_checkpoint(src)
    assert "'state_dict_ema'" in result.report.left_out
    assert result.report.dropped == ['head.fc.weight', 'head.fc.bias']
    assert not result.report.missing and not result.report.unexpected


def _timm_swin_t(seed=0):
    """timm's Swin with Swin-T's window (7) and input size (224) at a small
    width. timm decides each block's window and shift for ``img_size`` as
    the original Swin does (a stage whose map is no larger than the window
    does not shift: the 7 x 7 last stage); ``strict_img_size=False`` lets it
    take other input sizes (masks computed per input)."""
    return randomize_(SwinTransformer(
        img_size=224, embed_dim=16, depths=(2, 2, 2, 2),
        num_heads=(1, 2, 2, 4), window_size=7, num_classes=0,
        strict_img_size=False), seed)


def test_swin_t_is_timms_network_at_224_112_and_96(tmp_path):
    """The converted Swin computes timm's network from the file's own
    meta['backbone'].

    Whole network at 224 px (maps 56, 28, 14, 7) and 112 px (28, 14, 7, 4:
    the last stage smaller than the window, padded, unshifted). At 96 px
    only the last stage is compared, on the same 6 x 6 input: on the 24-
    and 12-wide maps timm rolls a shifted block before padding it, the
    original Swin and EsViT pad before rolling (compared with EsViT's own
    network in tests/test_models/test_backbones/
    test_original_swin_transformer.py)."""
    model = _timm_swin_t()
    assert [b.shift_size for b in model.layers[3].blocks] == [(0, 0)] * 2
    src = str(tmp_path / 'model.safetensors')
    save_file(model.state_dict(), src)
    out = str(tmp_path / 'out.pth')
    assert convert.main([src, out]) == 0
    cfg = load_output(out)['meta']['backbone']
    assert cfg['type'] == 'OriginalSwinTransformer'
    assert cfg['norm_cfg'] == dict(type='LN', eps=1e-5)  # timm's
    ours = load_as_pretrained(out)
    for size in (224, 112):
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            expected = model.forward_head(model.forward_features(x),
                                          pre_logits=True)
            got = ours(x)[-1].mean((2, 3))
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5,
                                   msg=f'{size} px')

    tokens = torch.randn(2, 6, 6, 64)  # stage 3 of a 96-px crop [B, H, W, C]
    with torch.no_grad():
        expected = model.layers[3](tokens).flatten(1, 2)  # [B, 9, C]
        x, hw = ours.stages[2].downsample(tokens.flatten(1, 2), (6, 6))
        got, hw = ours.stages[3](x, hw)
    assert hw == (3, 3)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
