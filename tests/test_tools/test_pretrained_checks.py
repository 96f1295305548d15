"""A pre-trained checkpoint that does not fit the backbone stops the run
before training, with the reason and the fix."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import mmbcssl  # noqa: F401
from mmbcssl.cli import train as train_api
from mmbcssl.models.backbones import BCSSL
from mmbcssl.utils.pretrained_checks import (PretrainedMismatchError,
                                             check_pretrained, compare_keys)
from tests.conftest import REPO_ROOT

ARCH = dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64])


def _cfg(checkpoint, **backbone):
    bb = dict(
        type='BCSSL',
        arch=ARCH,
        kernel_size=5,
        out_indices=(0, 1, 2, 3),
        gap_before_final_norm=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.'))
    bb.update(backbone)
    return Config(dict(default_scope='mmpretrain', model=dict(backbone=bb)))


def _save(path, state, prefix='backbone.'):
    torch.save(
        dict(state_dict={
            prefix + k: v
            for k, v in state.items()
        }), path)
    return str(path)


def _pretraining_backbone(**kw):
    # what a DINO run has: only the last stage's norm
    return BCSSL(
        arch=ARCH,
        kernel_size=kw.pop('kernel_size', 5),
        out_indices=(3, ),
        **kw).state_dict()


def test_fitting_weights_pass_and_report_fresh_norms(tmp_path):
    path = _save(tmp_path / 'ok.pth', _pretraining_backbone())
    check_pretrained(_cfg(path))


def test_compare_keys_separates_the_cases():
    expected = {'a.w': (2, 3), 'norm0.weight': (8, ), 'b.w': (4, )}
    given = {'a.w': (2, 2), 'extra.w': (1, )}
    missing, shapes, fresh, unexpected = compare_keys(given, expected)
    assert missing == ['b.w'] and fresh == ['norm0.weight']
    assert unexpected == ['extra.w']
    assert shapes == ['a.w: checkpoint (2, 2) vs backbone (2, 3)']


@pytest.mark.parametrize('case,pattern', [
    ('kernel', r'shapes differ \(stages\.0\.0\.depthwise_conv\.weight: '
     r'checkpoint \(8, 1, 3, 3\) vs backbone \(8, 1, 5, 5\)'),
    ('convnext', r'backbone keys missing \(stages\.0\.0\.dw_norm'),
    ('no_prefix', r"no keys starting with 'backbone\.'"),
    ('whole', r'whole pre-training checkpoint.*would load the student'),
    ('missing_file', r'not found; extract the backbone first.*'
     r'MMBCSSL_PRETRAINED'),
])
def test_mismatches_are_named(tmp_path, case, pattern):
    path = tmp_path / 'ckpt.pth'
    if case == 'kernel':
        _save(path, _pretraining_backbone(kernel_size=3))
    elif case == 'convnext':  # vanilla ConvNeXt weights into BC-SSL
        _save(path, _pretraining_backbone(dw_norm_cfg=None))
    elif case == 'no_prefix':
        _save(path, _pretraining_backbone(), prefix='encoder.')
    elif case == 'whole':
        state = {
            f'backbone.{k}': v
            for k, v in _pretraining_backbone().items()
        }
        state.update({f'teacher.{k}': v for k, v in state.items()})
        torch.save(dict(state_dict=state), path)
    with pytest.raises(PretrainedMismatchError, match=pattern):
        check_pretrained(_cfg(str(path)))


def test_train_tool_stops_before_training(demo_data, tmp_path, capsys):
    """Through tools/train.py: exit 2, one line, nothing trained."""
    state = {f'backbone.{k}': v for k, v in _pretraining_backbone().items()}
    state.update({f'teacher.{k}': v for k, v in state.items()})
    path = tmp_path / 'epoch_100.pth'
    torch.save(dict(state_dict=state), path)
    config = osp.join(
        REPO_ROOT, 'configs', 'mask_rcnn',
        'mask-rcnn_bcssl-t-9x9_dino-demo-pre_fpn_1xb4-20e_coco-demo.py')
    code = train_api.main([
        config, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={path}',
        f'train_dataloader.dataset.data_root={demo_data}/coco/',
        f'val_dataloader.dataset.data_root={demo_data}/coco/',
        f'test_dataloader.dataset.data_root={demo_data}/coco/'
    ])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith('error: ') and 'extract_backbone.py' in err
    assert not osp.exists(tmp_path / 'work' / 'epoch_1.pth')


def test_load_from_a_whole_pretraining_checkpoint_is_refused(
        demo_data, tmp_path, capsys):
    """load_from=<whole DINO checkpoint> for a probe: refused with the same
    advice as the init_cfg path, before training (mmengine would only warn
    and train from the student)."""
    state = {f'backbone.{k}': v for k, v in _pretraining_backbone().items()}
    state.update({f'teacher.{k}': v for k, v in state.items()})
    path = tmp_path / 'epoch_100.pth'
    torch.save(dict(state_dict=state), path)
    config = osp.join(
        REPO_ROOT, 'configs', 'linear',
        'linear_bcssl-t-9x9_dino-demo-pre_1xb32-coslr-20e_in1k-demo.py')
    root = f'{demo_data}/imagenet'
    code = train_api.main([
        config, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', f'load_from={path}',
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}'
    ])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith('error: load_from ') and 'whole pre-training' in err
    assert 'extract_backbone.py' in err
    assert not osp.exists(tmp_path / 'work' / 'epoch_1.pth')
