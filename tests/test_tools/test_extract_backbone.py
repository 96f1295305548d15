"""tools/model_converters/extract_backbone.py on a real DINO state dict."""
import pytest
import torch

import mmbcssl  # noqa: F401
from mmbcssl.cli import extract_backbone as eb
from mmpretrain.registry import MODELS

TINY = dict(type='BCSSL', arch=dict(depths=[1, 1, 1, 1],
                                    channels=[8, 8, 16, 16]), kernel_size=3)


def _dino_checkpoint(path, ddp=False):
    model = MODELS.build(dict(
        type='DINO', backbone=TINY,
        head=dict(type='DINOHead', in_channels=16, out_channels=8,
                  hidden_channels=8, bottleneck_channels=4),
        loss=dict(type='DINOLoss', out_channels=8)))
    model.init_weights()
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(1.0)  # teacher != student
    sd = model.state_dict()
    if ddp:
        sd = {f'module.{k}': v for k, v in sd.items()}
    torch.save(dict(state_dict=sd, meta=dict(epoch=3)), path)
    return model


def test_teacher_by_default_loads_into_classifier_and_detector_style(
        tmp_path, capsys):
    ckpt, out = str(tmp_path / 'epoch_3.pth'), str(tmp_path / 'bb.pth')
    model = _dino_checkpoint(ckpt, ddp=True)
    assert eb.main([ckpt, out]) == 0
    assert 'kept' in capsys.readouterr().out
    # As a downstream config loads it: init_cfg Pretrained, prefix backbone.
    backbone = MODELS.build(dict(
        TINY, init_cfg=dict(type='Pretrained', checkpoint=out,
                            prefix='backbone.')))
    backbone.init_weights()
    for (k, v), t in zip(backbone.state_dict().items(),
                         model.teacher.backbone.state_dict().values()):
        assert torch.equal(v, t), k


def test_student_flag(tmp_path):
    ckpt, out = str(tmp_path / 'c.pth'), str(tmp_path / 's.pth')
    model = _dino_checkpoint(ckpt)
    assert eb.main([ckpt, out, '--student']) == 0
    sd = torch.load(out)['state_dict']
    w = 'backbone.stages.0.0.depthwise_conv.weight'
    assert torch.equal(sd[w], model.backbone.state_dict()[w[9:]])


def test_not_a_pretraining_checkpoint(tmp_path, capsys):
    path = str(tmp_path / 'clf.pth')
    torch.save(dict(state_dict={'head.fc.weight': torch.zeros(2)}), path)
    assert eb.main([path, str(tmp_path / 'o.pth')]) == 2
    err = capsys.readouterr().err
    assert 'teacher.backbone.' in err and "'head'" in err


def test_existing_output_is_kept(tmp_path, capsys):
    ckpt, out = str(tmp_path / 'c.pth'), str(tmp_path / 'bb.pth')
    _dino_checkpoint(ckpt)
    assert eb.main([ckpt, out]) == 0
    before = open(out, 'rb').read()
    assert eb.main([ckpt, out, '--student']) == 2
    assert '--overwrite' in capsys.readouterr().err
    assert open(out, 'rb').read() == before
    assert eb.main([ckpt, out, '--student', '--overwrite']) == 0
    assert open(out, 'rb').read() != before


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('error: '), err
    return err


def test_a_file_holding_a_bare_tensor(tmp_path, capsys):
    path = str(tmp_path / 'tensor.pth')
    torch.save(torch.zeros(3), path)
    assert eb.main([path, str(tmp_path / 'o.pth')]) == 2
    err = _one_line_error(capsys)
    assert 'holds a Tensor of shape (3,), not a checkpoint' in err
    assert "'state_dict'" in err


def test_a_directory_is_named_as_one(tmp_path, capsys):
    assert eb.main([str(tmp_path), str(tmp_path / 'o.pth')]) == 2
    assert 'is a directory' in _one_line_error(capsys)


@pytest.mark.parametrize('meta, epoch', [(dict(epoch=3), 3), (None, None),
                                         ('run 7', None)])
def test_the_epoch_is_recorded_when_the_checkpoint_has_one(tmp_path, meta,
                                                           epoch):
    ckpt, out = str(tmp_path / 'c.pth'), str(tmp_path / 'bb.pth')
    _dino_checkpoint(ckpt)
    saved = torch.load(ckpt)
    saved['meta'] = meta
    torch.save(saved, ckpt)
    assert eb.main([ckpt, out]) == 0
    assert torch.load(out)['meta']['epoch'] == epoch
