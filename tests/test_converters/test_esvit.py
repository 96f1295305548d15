"""microsoft/esvit Swin-T full checkpoints (original Swin layout), converted
and compared with EsViT's own network definition (eps 1e-6, windows decided
for 224 px; tests/test_converters/esvit_swin.py); timm's
``checkpoint_filter_fn`` confirms the original layout itself."""
import os.path as osp
from collections import OrderedDict

import timm
import torch
from timm.models.swin_transformer import checkpoint_filter_fn

import mmbcssl  # noqa: F401
from mmbcssl.cli import convert
from mmbcssl.converters import build_backbone, get_format, infer_backbone_cfg
from mmbcssl.converters.esvit import merge_order
from tests.conftest import REPO_ROOT
from tests.test_converters.esvit_swin import EsViTSwin
from tests.test_converters.sources import (dino_args, dino_head_state,
                                           fit_to_config, load_as_pretrained,
                                           load_output, randomize_,
                                           swin_timm_to_original)

SWIN_T = osp.join(REPO_ROOT, 'configs/_base_/models/swin-t.py')


def _esvit_network(model, prefix):
    """Swin with EsViT's heads as attributes (head, head_dense)."""
    sd = OrderedDict((prefix + k, v)
                     for k, v in swin_timm_to_original(model).items())
    sd.update(dino_head_state(768, prefix + 'head.'))
    sd.update(dino_head_state(768, prefix + 'head_dense.'))
    return sd


def test_original_layout_is_what_timm_reads():
    """The test's original-layout Swin is the layout timm's own filter
    converts (so timm is a fair reference)."""
    model = timm.create_model('swin_tiny_patch4_window7_224', num_classes=0)
    original = swin_timm_to_original(model)
    assert 'layers.0.downsample.reduction.weight' in original
    filtered = checkpoint_filter_fn(original, model)
    assert filtered.keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(filtered[k], v), k


def test_merge_order_is_a_permutation():
    perm = merge_order(4 * 5)
    assert sorted(perm.tolist()) == list(range(20))
    # channel c of the 2x2 neighbour (h=1, w=0) sits at (2w + h) C + c = 5
    # + c in the original layout and at 4 c + 2 h + w = 4 c + 2 in mmcv's
    assert perm[4 * 3 + 2].item() == 5 + 3


def _small_esvit(seed):
    """EsViT's Swin (its own definition: LayerNorm eps 1e-6, windows decided
    for 224 px) with Swin-T's window and input size at a small width; the
    patch projection is scaled down so that the first LayerNorm's input
    variance is small and its eps shows in the output."""
    net = randomize_(EsViTSwin(embed_dim=16, depths=(2, 2, 2, 2),
                               num_heads=(1, 2, 2, 4)), seed)
    with torch.no_grad():
        net.patch_embed.proj.weight.mul_(0.01)
        net.patch_embed.proj.bias.mul_(0.01)
    return net


def _esvit_checkpoint(teacher, student):
    """What main_esvit.py saves: both networks with their heads as
    attributes (``head``, ``head_dense``), the student under DDP."""

    def network(net, prefix):
        sd = OrderedDict((prefix + k, v) for k, v in net.state_dict().items())
        sd.update(dino_head_state(128, prefix + 'head.'))
        sd.update(dino_head_state(128, prefix + 'head_dense.'))
        return sd

    return dict(student=network(student, 'module.'),
                teacher=network(teacher, ''), optimizer={}, epoch=300,
                args=dino_args(), dino_loss=dict(center=torch.zeros(1, 32)))


def test_esvit_teacher_and_student_are_esvits_network(tmp_path):
    """The converted file, built from its own meta['backbone'], computes
    EsViT's network: at 224 px and at the 96-px local crops, with EsViT's
    LayerNorm eps."""
    teacher, student = _small_esvit(5), _small_esvit(6)
    src = str(tmp_path / 'checkpoint_best.pth')
    torch.save(_esvit_checkpoint(teacher, student), src)

    for part, net in (('teacher', teacher), ('student', student)):
        out = str(tmp_path / f'{part}.pth')
        extra = ['--weights', part] if part == 'student' else []
        assert convert.main([src, out, *extra]) == 0
        meta = load_output(out)['meta']
        assert (meta['format'], meta['weights']) == ('esvit', part)
        assert meta['backbone']['type'] == 'OriginalSwinTransformer'
        assert meta['backbone']['norm_cfg'] == dict(type='LN', eps=1e-6)
        backbone = load_as_pretrained(out)
        for size in (224, 96):
            x = torch.randn(2, 3, size, size)
            with torch.no_grad():
                expected = net.regions(x)  # [B, L, C]
                got = backbone(x)[-1].flatten(2).transpose(1, 2)
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5,
                                       msg=f'{part}, {size} px')


def test_window_14_is_built_as_esvit_builds_it():
    """EsViT's Swin-T W=14 at 224 px: stage 3 (14 x 14) is one window
    without shift, stage 4 (7 x 7) a 7 x 7 window, with a smaller position
    table; the converted file's meta['backbone'] builds those windows."""
    ref = randomize_(EsViTSwin(embed_dim=16, depths=(2, 2, 2, 2),
                               num_heads=(1, 2, 2, 4), window_size=14), 2)
    converted = get_format('esvit').convert(ref.state_dict())
    cfg = infer_backbone_cfg(converted.state_dict, converted.layer_norm_eps)
    assert (cfg['img_size'], cfg['window_size']) == (224, 14)
    backbone = build_backbone(cfg)
    backbone.load_state_dict(converted.state_dict, strict=False)
    assert [[(b.attn.window_size, b.attn.shift_size) for b in s.blocks]
            for s in backbone.stages] == ref.windows()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x)[-1].mean((2, 3)), ref(x),
                                   rtol=1e-4, atol=1e-5)


def test_a_target_with_other_norms_is_refused(tmp_path, capsys):
    """A config whose LayerNorms are not EsViT's would compute another
    function of the same weights: no file is written."""
    net = _small_esvit(0)
    src = str(tmp_path / 'checkpoint.pth')
    torch.save(_esvit_checkpoint(net, net), src)
    config = tmp_path / 'plain_swin.py'
    config.write_text(
        "model = dict(backbone=dict(type='SwinTransformer', arch=dict("
        'embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]), '
        "norm_cfg=dict(type='LN', eps=1e-6)))\n")
    out = str(tmp_path / 'out.pth')
    assert convert.main([src, out, '--config', str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert 'LayerNorms have eps 1e-06' in err
    assert 'patch_embed.norm (eps=1e-05)' in err
    assert "norm_cfg=dict(type='LN', eps=1e-06)" in err
    assert not osp.exists(out)


def test_swin_t_fits_the_project_config():
    """Full-size EsViT Swin-T against configs/_base_/models/swin-t.py: every
    parameter matched, the index buffers recomputed."""
    model = timm.create_model('swin_tiny_patch4_window7_224', num_classes=0)
    original = _esvit_network(model, '')
    report = fit_to_config('esvit', original, SWIN_T)
    assert not report.unmatched
    assert len(report.filled) == 12  # relative_position_index, per block
    assert len(report.matched) == len(model.state_dict())
    converted = get_format('esvit').convert(original).state_dict
    assert infer_backbone_cfg(converted)['arch'] == 'tiny'
