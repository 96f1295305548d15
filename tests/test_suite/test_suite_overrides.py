"""Suite entries shorten a downstream config by what they mean
(``epochs=``, ``train_scales=``), found in the loaded config by type, never
by a list position that an edit of the config could move."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config, DictAction

from mmbcssl.suite import build_evaluations
from mmbcssl.suite.evaluations import downstream_config
from mmbcssl.suite.overrides import (list_index_key, set_train_scales,
                                     shorten_schedule)
from mmbcssl.utils.launch import UserError
from tests.conftest import REPO_ROOT

DEMO_SUITE = osp.join(REPO_ROOT, 'configs', 'suites', 'demo.py')
DEMO_DINO = osp.join(REPO_ROOT, 'configs', 'dino', 'bcssl-t_9x9_100e_demo.py')
# the overrides the demo suite gave by list position before its entries
# said epochs= and train_scales=: the schedule it must still produce
BY_POSITION = {
    'linear': [
        'train_cfg.max_epochs=4', 'param_scheduler.0.T_max=4',
        'param_scheduler.0.end=4', 'default_hooks.checkpoint.interval=4'
    ],
    'mask_rcnn': [
        'train_cfg.max_epochs=3', 'train_cfg.val_interval=3',
        'default_hooks.checkpoint.interval=3',
        'param_scheduler.1.milestones=[2]',
        'train_dataloader.dataset.pipeline.3.scales=[(320,160),(320,192)]'
    ],
}


def _merged(config, options):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({
        key: DictAction._parse_iterable(value)
        for key, _, value in (o.partition('=') for o in options)
    })
    return cfg


def _fields(cfg):
    return dict(train_cfg=cfg.train_cfg.to_dict(),
                param_scheduler=[dict(s) for s in cfg.param_scheduler],
                checkpoint=cfg.default_hooks.checkpoint.to_dict(),
                pipeline=[
                    dict(t) for t in cfg.train_dataloader.dataset.pipeline
                ],
                lr=cfg.optim_wrapper.optimizer.lr,
                backbone=cfg.model.backbone.to_dict())


@pytest.mark.parametrize('name', sorted(BY_POSITION))
def test_the_demo_suite_resolves_to_the_schedule_it_had(name):
    (entry, ) = [e for e in build_evaluations(DEMO_SUITE) if e.name == name]
    config = osp.join(REPO_ROOT, downstream_config(DEMO_DINO, entry.folder))
    now = _fields(_merged(config, entry.derived_options(
        Config.fromfile(config)) + list(entry.s.cfg_options)))
    before = _fields(_merged(config, BY_POSITION[name] +
                             list(entry.s.cfg_options)))
    if name == 'mask_rcnn':
        # the step scheduler's end scales with the rest (20 -> 3); both
        # ends are at or past the last epoch, so the lr is the same
        assert now['param_scheduler'][1].pop('end') == 3
        assert before['param_scheduler'][1].pop('end') == 20
        assert now['param_scheduler'][1]['milestones'] == [2]
        assert now['train_cfg']['val_interval'] == 3
        assert now['lr'] == 0.002
        assert now['backbone']['frozen_stages'] == 2
    else:
        assert now['param_scheduler'][0]['T_max'] == 4
        assert now['train_cfg'].get('val_interval', 1) == 1
    assert now == before


def test_no_suite_preset_indexes_into_a_list():
    assert list_index_key('param_scheduler.0.T_max=4')
    assert list_index_key('train_dataloader.dataset.pipeline.3.scales=[]')
    assert not list_index_key('train_cfg.max_epochs=4')
    suites = glob.glob(osp.join(REPO_ROOT, 'configs', 'suites', '*.py'))
    assert len(suites) >= 3
    for path in suites:
        for entry in Config.fromfile(path).evaluations:
            for option in entry.get('cfg_options', ()):
                assert not list_index_key(option), (path, option)


def test_an_override_by_list_position_is_refused_in_one_line(tmp_path):
    suite = tmp_path / 'suite.py'
    suite.write_text("evaluations = [dict(type='LinearProbe', "
                     "cfg_options=['param_scheduler.0.end=4'])]\n")
    with pytest.raises(UserError) as e:
        build_evaluations(str(suite))
    message = str(e.value)
    assert len(message.splitlines()) == 1
    assert "'param_scheduler.0.end=4' names a list position" in message
    assert 'epochs=' in message


def _schedule_cfg(**train_cfg):
    return Config(dict(
        train_cfg=dict(max_epochs=20, **train_cfg),
        # the warm-up (in iterations) moved before the epoch schedulers
        param_scheduler=[
            dict(type='LinearLR', by_epoch=False, begin=0, end=12),
            dict(type='MultiStepLR', by_epoch=True, begin=0, end=20,
                 milestones=[16, 19]),
            dict(type='mmpretrain.CosineAnnealingLR', T_max=20, end=20),
        ],
        default_hooks=dict(checkpoint=dict(interval=10)),
        train_dataloader=dict(dataset=dict(pipeline=[
            dict(type='RandomChoiceResize', scales=[(1, 1)]),
            dict(type='PackDetInputs')
        ]))))


def test_the_schedule_is_found_by_type_not_position():
    opts = shorten_schedule(_schedule_cfg(val_interval=10), 3)
    assert opts == [
        'train_cfg.max_epochs=3', 'param_scheduler.1.begin=0',
        'param_scheduler.1.end=3', 'param_scheduler.1.milestones=[2]',
        'param_scheduler.2.end=3', 'param_scheduler.2.T_max=3',
        'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=3'
    ]
    assert set_train_scales(_schedule_cfg(), [(320, 160), (320, 192)]) == [
        'train_dataloader.dataset.pipeline.0.scales=[(320,160),(320,192)]'
    ]


def test_a_schedule_it_cannot_shorten_is_refused():
    cfg = _schedule_cfg()
    cfg.param_scheduler.append(dict(type='StepLR', step_size=5))
    with pytest.raises(ValueError, match='cannot shorten a StepLR'):
        shorten_schedule(cfg, 3)
    with pytest.raises(ValueError, match=r'must be in \[1, 20\]'):
        shorten_schedule(_schedule_cfg(), 30)
    with pytest.raises(ValueError, match='epoch-based train_cfg'):
        shorten_schedule(Config(dict(train_cfg=dict(max_iters=100))), 3)
    cfg = _schedule_cfg()
    cfg.train_dataloader.dataset.pipeline.pop(0)
    with pytest.raises(ValueError, match='has 0 there'):
        set_train_scales(cfg, [(320, 160)])
