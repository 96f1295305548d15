"""microsoft/esvit Swin-T full checkpoints (original Swin layout), converted
and compared with timm's Swin-T, which reads the original layout through
its own ``checkpoint_filter_fn`` (the independent reference)."""
import os.path as osp
from collections import OrderedDict

import timm
import torch
from timm.models.swin_transformer import SwinTransformer, checkpoint_filter_fn

import mmbcssl  # noqa: F401
from mmbcssl.cli import convert
from mmbcssl.converters import get_format, infer_backbone_cfg
from mmbcssl.converters.esvit import merge_order
from tests.conftest import REPO_ROOT
from tests.test_converters.sources import (dino_args, dino_head_state,
                                           fit_to_config, load_as_pretrained,
                                           load_output, max_abs, randomize_,
                                           swin_timm_to_original)

SWIN_T = osp.join(REPO_ROOT, 'configs/_base_/models/swin-t.py')
TOL = 1e-5


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


def _small_swin(seed):
    """A small Swin: 4x4 windows on 128 px, so that the last stage is one
    window and does not shift, as Swin-T's last stage at 224 px."""
    return randomize_(SwinTransformer(
        img_size=128, embed_dim=16, depths=(2, 2, 2, 2),
        num_heads=(1, 2, 2, 4), window_size=4, num_classes=0), seed)


def test_esvit_teacher_and_student(tmp_path):
    teacher, student = _small_swin(5), _small_swin(6)
    ckpt = dict(student=_esvit_network(student, 'module.'),
                teacher=_esvit_network(teacher, ''),
                optimizer={}, epoch=300, args=dino_args(),
                dino_loss=dict(center=torch.zeros(1, 32)))
    src = str(tmp_path / 'checkpoint_best.pth')
    torch.save(ckpt, src)
    x = torch.randn(1, 3, 128, 128)

    for part, net in (('teacher', teacher), ('student', student)):
        out = str(tmp_path / f'{part}.pth')
        extra = ['--weights', part] if part == 'student' else []
        assert convert.main([src, out, '--trust-checkpoint', *extra]) == 0
        meta = load_output(out)['meta']
        assert (meta['format'], meta['weights']) == ('esvit', part)
        with torch.no_grad():
            expected = net.forward_head(net.forward_features(x),
                                        pre_logits=True)
            got = load_as_pretrained(out)(x)[-1].mean((2, 3))
        assert max_abs(got, expected) <= TOL, part


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
