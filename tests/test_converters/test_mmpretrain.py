"""mmpretrain (and this project's) checkpoints: which network is taken;
weights pass through unchanged."""
import pytest
import torch
from mmpretrain.registry import MODELS

import mmbcssl  # noqa: F401
from mmbcssl.cli import convert
from mmbcssl.converters import ConversionError, convert_checkpoint
from tests.test_converters.sources import load_output, randomize_

TINY = dict(type='BCSSL', arch=dict(depths=[1, 1, 1, 1],
                                    channels=[8, 8, 16, 16]), kernel_size=3)


def _dino(path):
    """This project's DINO checkpoint (mmengine layout, DDP prefix)."""
    model = MODELS.build(dict(
        type='DINO', backbone=TINY,
        head=dict(type='DINOHead', in_channels=16, out_channels=8,
                  hidden_channels=8, bottleneck_channels=4),
        loss=dict(type='DINOLoss', out_channels=8)))
    randomize_(model.backbone, 0)
    randomize_(model.teacher, 1)  # teacher != student, BN stats random
    sd = {f'module.{k}': v for k, v in model.state_dict().items()}
    torch.save(dict(state_dict=sd, meta=dict(epoch=3), optimizer={}), path)
    return model


def _assert_same(path, backbone):
    given = load_output(path)['state_dict']
    expected = backbone.state_dict()
    assert given.keys() == {f'backbone.{k}' for k in expected}
    for k, v in expected.items():
        assert torch.equal(given[f'backbone.{k}'], v), k


def test_project_dino_checkpoint_teacher_by_default(tmp_path):
    src = str(tmp_path / 'epoch_3.pth')
    model = _dino(src)
    out = str(tmp_path / 'teacher.pth')
    assert convert.main([src, out]) == 0
    assert load_output(out)['meta']['weights'] == 'teacher'
    _assert_same(out, model.teacher.backbone)
    out = str(tmp_path / 'student.pth')
    assert convert.main([src, out, '--weights', 'student']) == 0
    _assert_same(out, model.backbone)


def test_momentum_encoder_is_the_teacher(tmp_path):
    """MoCo v3 / BYOL keep their momentum network under an EMA wrapper."""
    online = randomize_(MODELS.build(TINY), 0)
    momentum = randomize_(MODELS.build(TINY), 1)
    sd = {f'backbone.{k}': v for k, v in online.state_dict().items()}
    sd.update({f'momentum_encoder.module.0.{k}': v
               for k, v in momentum.state_dict().items()})
    sd['momentum_encoder.steps'] = torch.tensor(5)
    src = str(tmp_path / 'mocov3.pth')
    torch.save(dict(state_dict=sd), src)
    result = convert_checkpoint(src)  # mmpretrain's default: the online net
    assert (result.format, result.part) == ('mmpretrain', 'student')
    assert torch.equal(result.state_dict['stages.0.0.gamma'],
                       online.stages[0][0].gamma)
    result = convert_checkpoint(src, weights='teacher')
    assert torch.equal(result.state_dict['stages.0.0.gamma'],
                       momentum.stages[0][0].gamma)


def test_classifier_has_no_teacher(tmp_path):
    clf = MODELS.build(dict(type='ImageClassifier', backbone=TINY,
                            head=dict(type='LinearClsHead', num_classes=3,
                                      in_channels=16)))
    src = str(tmp_path / 'clf.pth')
    torch.save(dict(state_dict=clf.state_dict(), meta={}), src)
    result = convert_checkpoint(src)
    assert 'head.* (2 tensors)' in result.report.left_out
    with pytest.raises(ConversionError, match='no teacher'):
        convert_checkpoint(src, weights='teacher')
