"""mmbcssl.apis.backbone_weights, and the suite's use of it: the teacher
(or student) backbone of a pre-training state dict as ``backbone.*``."""
import os.path as osp

import pytest
import torch

from mmbcssl.apis.backbone_weights import (extract_backbone,
                                           save_backbone_weights)
from mmbcssl.suite.context import SuiteContext
from mmbcssl.utils.launch import UserError


def _state(ddp=False):
    state = {
        'backbone.stem.weight': torch.zeros(2),
        'teacher.backbone.stem.weight': torch.ones(2),
        'teacher.neck.fc.weight': torch.ones(1),
        'head.fc.weight': torch.ones(3),
    }
    return {f'module.{k}' if ddp else k: v for k, v in state.items()}


@pytest.mark.parametrize('ddp', [False, True])
def test_teacher_and_student(ddp):
    kept, dropped = extract_backbone(_state(ddp), 'teacher')
    assert list(kept) == ['backbone.stem.weight']
    assert torch.equal(kept['backbone.stem.weight'], torch.ones(2))
    assert dropped == ['backbone', 'head', 'teacher']  # teacher.neck
    kept, dropped = extract_backbone(_state(ddp), 'student')
    assert torch.equal(kept['backbone.stem.weight'], torch.zeros(2))
    assert dropped == ['head', 'teacher']


def test_no_weights_of_the_source_names_the_keys_found():
    with pytest.raises(UserError, match=r"\['head'\]"):
        extract_backbone({'head.fc.weight': torch.ones(1)}, 'teacher')


def test_saved_file_holds_the_weights_and_meta(tmp_path):
    out = str(tmp_path / 'sub' / 'bb.pth')
    save_backbone_weights({'backbone.w': torch.ones(1)}, out,
                          dict(part='teacher'))
    saved = torch.load(out)
    assert saved['meta'] == dict(part='teacher')
    assert torch.equal(saved['state_dict']['backbone.w'], torch.ones(1))
    assert not [n for n in (tmp_path / 'sub').iterdir() if n.name != 'bb.pth']


def test_suite_extracts_the_teacher_once(tmp_path):
    ckpt = str(tmp_path / 'epoch_3.pth')
    torch.save(dict(state_dict=_state(ddp=True)), ckpt)
    ctx = SuiteContext(config='unused.py', checkpoint=ckpt,
                       work_dir=str(tmp_path / 'work'))
    out = ctx.backbone_weights()
    assert out == osp.join(ctx.work_dir, 'weights', 'backbone_teacher.pth')
    saved = torch.load(out)
    assert list(saved['state_dict']) == ['backbone.stem.weight']
    assert saved['meta'] == dict(source=osp.abspath(ckpt), part='teacher',
                                 source_sha256=ctx.sha256)
    # an extracted file is used as it is
    ctx = SuiteContext(config='unused.py', checkpoint=out,
                       work_dir=str(tmp_path / 'work2'))
    assert ctx.backbone_weights() == out
