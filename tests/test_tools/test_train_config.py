"""tools/train.py trains a config as it is written: the checkpoint hook and
the optim wrapper constructor a config names are the ones Runner.from_cfg
builds from it, for every training config; a config that leaves them to
mmengine's defaults is refused in one line, not silently changed."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmbcssl.cli import train as train_api
from tests.conftest import REPO_ROOT

CONFIG = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'tiny_classifier.py')
# every config but the bases, the suites and the transfer presets, and
# the test configs that are trained
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                         recursive=True) +
    glob.glob(osp.join(REPO_ROOT, 'tests', 'data', 'configs', '*.py'))
    if not any(f'{osp.sep}{d}{osp.sep}' in p
               for d in ('_base_', 'suites', 'transfer')))


def test_every_training_config_reaches_the_runner_unchanged():
    trained = 0
    for path in CONFIGS:
        written = Config.fromfile(path)  # what Runner.from_cfg is given
        if 'optim_wrapper' not in written or 'train_cfg' not in written:
            continue
        trained += 1
        cfg = train_api.setup_cfg(train_api.parse_args([path]))
        assert cfg.default_hooks.to_dict() == \
            written.default_hooks.to_dict(), path
        assert cfg.optim_wrapper.to_dict() == \
            written.optim_wrapper.to_dict(), path
    assert trained > 40


def test_runner_and_train_tool_build_the_same_parts(tmp_path):
    from mmengine.runner import Runner
    written = Config.fromfile(CONFIG)
    written.work_dir = str(tmp_path / 'runner')
    by_runner = Runner.from_cfg(written)
    cfg = train_api.setup_cfg(train_api.parse_args(
        [CONFIG, '--work-dir', str(tmp_path / 'tool')]))
    by_tool = train_api.build_runner(cfg)
    for runner in (by_runner, by_tool):
        runner.optim_wrapper = runner.build_optim_wrapper(
            runner.optim_wrapper)
    assert [type(h).__name__ for h in by_runner.hooks] == \
        [type(h).__name__ for h in by_tool.hooks]
    assert 'SafeCheckpointHook' in [type(h).__name__ for h in by_tool.hooks]
    assert type(by_runner.optim_wrapper) is type(by_tool.optim_wrapper)
    assert type(by_tool.optim_wrapper).__name__ == 'GuardedOptimWrapper'


@pytest.mark.parametrize('override, message', [
    ("default_hooks = dict(checkpoint=dict(type='CheckpointHook', "
     'interval=2))', 'mmpretrain.SafeCheckpointHook'),
    ("optim_wrapper = dict(_delete_=True, optimizer=dict(type='SGD', "
     'lr=0.1))', 'mmpretrain.GuardedOptimWrapperConstructor'),
])
def test_config_without_the_safe_parts_is_refused(tmp_path, capsys, override,
                                                  message):
    path = tmp_path / 'plain.py'
    path.write_text(f'_base_ = {CONFIG!r}\n{override}\n')
    assert train_api.main([str(path), '--work-dir', str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_two_runs_of_one_config_in_one_process_log_apart(tmp_path):
    """mmengine names a run's logger and message hub after the config and
    the second it starts, and reuses an instance of a name it has seen:
    two runs built back to back must still each get their own."""
    runners = []
    for name in ('a', 'b'):
        cfg = train_api.setup_cfg(train_api.parse_args(
            [CONFIG, '--work-dir', str(tmp_path / name)]))
        runners.append(train_api.build_runner(cfg))
        runners[-1].logger.info(f'this is run {name}')
    a, b = runners
    assert a.experiment_name != b.experiment_name
    assert a.logger is not b.logger and a.message_hub is not b.message_hub
    for runner, name, other in ((a, 'a', 'b'), (b, 'b', 'a')):
        log = osp.join(runner.log_dir, f'{runner.timestamp}.log')
        assert log.startswith(str(tmp_path / name))
        text = open(log).read()
        assert f'this is run {name}' in text
        assert f'this is run {other}' not in text
