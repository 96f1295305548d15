"""facebookresearch/dino checkpoints: ResNet-50 (torchvision) and ViT-S/16
(timm's ``vit_small_patch16_224``, DINO's key layout), full checkpoints and
backbone-only releases, compared with the source network's own output."""
import copy
import os
import os.path as osp

import timm
import torch
import torchvision
from mmpretrain.registry import MODELS

import mmbcssl  # noqa: F401
from mmbcssl.apis import init_backbone
from mmbcssl.cli import convert
from mmbcssl.converters import get_format, infer_backbone_cfg
from tests.conftest import REPO_ROOT, load_config
from tests.test_converters.sources import (config_backbone,
                                           dino_full_checkpoint, fit_to_config,
                                           load_as_pretrained, load_output,
                                           max_abs, randomize_)

MODELS_DIR = osp.join(REPO_ROOT, 'configs', '_base_', 'models')
RESNET50 = osp.join(MODELS_DIR, 'resnet50.py')
TOL = 1e-5


def _resnet50():
    net = torchvision.models.resnet50()
    net.fc = torch.nn.Identity()  # DINO's MultiCropWrapper does the same
    return net


def test_resnet50_full_checkpoint_teacher_and_student(tmp_path, capsys):
    teacher = randomize_(_resnet50(), 1)
    student = randomize_(copy.deepcopy(teacher), 2)
    ckpt = dino_full_checkpoint(teacher, student, 2048, teacher_ddp=True)
    src = str(tmp_path / 'dino_resnet50_full_checkpoint.pth')
    torch.save(ckpt, src)
    x = torch.randn(2, 3, 64, 64)

    out = str(tmp_path / 'teacher.pth')
    assert convert.main([src, out]) == 0
    assert 'as dino (teacher)' in capsys.readouterr().out
    meta = load_output(out)['meta']
    assert (meta['format'], meta['weights']) == ('dino', 'teacher')
    assert meta['backbone']['type'] == 'ResNet'
    # the Pretrained route of the linear / detection configs
    backbone = config_backbone(RESNET50, out)
    with torch.no_grad():
        feat = backbone(x)[-1].mean((2, 3))  # GlobalAveragePooling
        assert max_abs(feat, teacher(x)) <= TOL
    # the tools/knn_eval.py --checkpoint route loads the same tensors
    knn = init_backbone(RESNET50, out)['backbone'].state_dict()
    for k, v in backbone.state_dict().items():
        assert torch.equal(knn[k], v), k

    out = str(tmp_path / 'student.pth')
    assert convert.main([src, out, '--weights', 'student', '--from',
                         'dino']) == 0
    # the same renames as the teacher's: the student's tensors, unchanged
    state = load_output(out)['state_dict']
    for k, v in student.state_dict().items():
        assert torch.equal(state[f'backbone.{k}'], v), k


def test_full_checkpoint_loads_without_trust(tmp_path, capsys):
    """main_dino.py pickles its argparse.Namespace (and the fp16 scaler's
    state): the safe loader reads it with no --trust-checkpoint."""
    net = torchvision.models.resnet18()
    src = str(tmp_path / 'checkpoint.pth')
    torch.save(dino_full_checkpoint(net, net, 512, True), src)
    out = str(tmp_path / 'out.pth')
    assert convert.main([src, out]) == 0, capsys.readouterr().err
    state = load_output(out)['state_dict']
    for k, v in net.state_dict().items():
        if not k.startswith('fc.'):  # DINO's ResNet has no classifier
            assert torch.equal(state[f'backbone.{k}'], v), k


class _MakeDir:
    """Unpickling this would create the folder ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path, ))


def test_payload_in_args_is_refused(tmp_path, capsys):
    """The same file with a payload among the args: refused in one line
    naming the global and the opt-in; nothing runs, nothing is written."""
    net = torchvision.models.resnet18()
    ckpt = dino_full_checkpoint(net, net, 512, True)
    marker = str(tmp_path / 'payload_ran')
    ckpt['args'].output_dir = _MakeDir(marker)
    src = str(tmp_path / 'checkpoint.pth')
    torch.save(ckpt, src)
    out = str(tmp_path / 'out.pth')
    assert convert.main([src, out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert 'makedirs' in err and '--trust-checkpoint' in err and src in err
    assert not osp.exists(out) and not osp.exists(marker)


def _small_vit(seed):
    """timm's ViT (DINO's layout) at small size, 64 channels per head."""
    return randomize_(timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=128, depth=2, num_heads=2,
        num_classes=0), seed)


def test_vit_full_checkpoint_and_backbone_release(tmp_path):
    teacher, student = _small_vit(3), _small_vit(4)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = teacher.forward_features(x)[:, 0]  # class token, normed

    full = str(tmp_path / 'dino_full_checkpoint.pth')
    torch.save(dino_full_checkpoint(teacher, student, 128,
                                    teacher_ddp=False), full)
    release = str(tmp_path / 'dino_pretrain.pth')
    torch.save(teacher.state_dict(), release)  # backbone only
    outs = [str(tmp_path / 'full.pth'), str(tmp_path / 'release.pth')]
    assert convert.main([full, outs[0]]) == 0
    assert convert.main([release, outs[1]]) == 0
    with torch.no_grad():
        got = load_as_pretrained(outs[0])(x)[-1]
    assert max_abs(got, expected) <= TOL
    # the backbone-only release gives the same file contents
    full_sd, release_sd = (load_output(o)['state_dict'] for o in outs)
    assert full_sd.keys() == release_sd.keys()
    assert all(torch.equal(full_sd[k], release_sd[k]) for k in full_sd)


def test_vit_s16_fits_the_project_config():
    """DINO's ViT-S/16 (timm's vit_small_patch16_224 layout) against
    configs/_base_/models/vit-s16.py: every key matched, 6 heads."""
    model = timm.create_model('vit_small_patch16_224', num_classes=0)
    report = fit_to_config('dino', model.state_dict(),
                           osp.join(MODELS_DIR, 'vit-s16.py'))
    assert len(report.matched) == len(model.state_dict())
    assert not report.unmatched and not report.filled
    converted = get_format('dino').convert(model.state_dict()).state_dict
    assert infer_backbone_cfg(converted)['arch'] == 'deit-small'


def test_vit_layer_norms_are_dinos(tmp_path):
    """DINO builds every LayerNorm of its ViT with eps 1e-6
    (facebookresearch/dino vision_transformer.py, vit_small: norm_layer=
    partial(nn.LayerNorm, eps=1e-6)); so do a converted file's
    meta['backbone'] and configs/_base_/models/vit-s16.py. The comparison
    with timm (also 1e-6) is made where a LayerNorm's input variance is
    about 1e-4, so that another eps would show."""
    model = _small_vit(7)
    with torch.no_grad():  # the first block's norm1 sees the small tokens
        for name in ('patch_embed.proj.weight', 'patch_embed.proj.bias',
                     'cls_token', 'pos_embed'):
            model.get_parameter(name).mul_(0.01)
    src = str(tmp_path / 'dino_pretrain.pth')
    torch.save(model.state_dict(), src)
    out = str(tmp_path / 'out.pth')
    assert convert.main([src, out]) == 0
    assert load_output(out)['meta']['backbone']['norm_cfg'] == dict(
        type='LN', eps=1e-6)
    ours = load_as_pretrained(out)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.forward_features(x)[:, 0]
        torch.testing.assert_close(ours(x)[-1], expected, rtol=1e-4,
                                   atol=1e-5)
    cfg = load_config(osp.join(MODELS_DIR, 'vit-s16.py')).model.backbone
    norms = [m.eps for m in MODELS.build(cfg).modules()
             if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * 12 + 1 and set(norms) == {1e-6}
