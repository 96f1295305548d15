"""The shared pieces: every model config builds, specs parse, the
round-robin timer interleaves and times, tables and peak memory are what
they say."""
import glob
import os.path as osp
import time

import pytest
import torch

from mmbcssl.benchmarks import common
from tests.conftest import REPO_ROOT

MODEL_CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', '_base_', 'models', '*.py')))


def _name(path):
    return osp.splitext(osp.basename(path))[0]


@pytest.mark.parametrize('config', MODEL_CONFIGS, ids=_name)
def test_model_config_builds_and_runs(config):
    model = common.build_model(config)
    # Swin and ViT build for 224 px; 64 px keeps the CPU cost low for the
    # convolutional ones.
    side = 224 if _name(config) in ('swin-t', 'swin-s', 'vit-s16') else 64
    with torch.no_grad():
        out = model(torch.randn(1, 3, side, side), mode='tensor')
    assert out.shape == (1, 1000)


def test_model_spec_parsing():
    path, deploy, over = common.parse_model_spec(
        'a/b.py+deploy,model.backbone.kernel_size=9,model.x=[1,2]')
    assert path == 'a/b.py' and deploy
    assert over == {'model.backbone.kernel_size': 9, 'model.x': [1, 2]}
    assert common.parse_model_spec('c.py') == ('c.py', False, {})


def test_round_robin_interleaves_and_times_rounds_after_the_warmup():
    calls = []

    def sleeper(name, delay, first_delay):

        def fn():
            time.sleep(first_delay if name not in calls else delay)
            calls.append(name)

        return fn

    seconds = common.round_robin(
        {'a': sleeper('a', 0.01, 0.3), 'b': sleeper('b', 0.03, 0.3)},
        repeats=2, warmup=1, calls=2)
    # warm-up of each, then rounds of `calls` calls of each in turn
    assert calls == ['a', 'b'] + ['a', 'a', 'b', 'b'] * 2
    assert [len(s) for s in seconds.values()] == [2, 2]
    # a round times its two calls, and not the slow first (warm-up) call
    assert all(0.02 <= t < 0.3 for t in seconds['a'])
    assert all(0.06 <= t < 0.3 for t in seconds['b'])


def test_spread_and_tables():
    assert common.spread([3., 1., 2.]) == dict(median=2., min=1., max=3.,
                                               samples=[3., 1., 2.])
    rows = [['long name', '1.0'], ['b', '10.25']]
    assert common.format_table(['name', 'x'], rows, markdown=True) == (
        '| name | x |\n|---|---|\n| long name | 1.0 |\n| b | 10.25 |')
    # plain text: columns as wide as their widest cell, two spaces apart
    assert common.format_table(['name', 'x'], rows).splitlines() == [
        'name           x', 'long name    1.0', 'b          10.25']
    assert common.format_table(['name', 'x'], rows,
                               align='ll').splitlines()[1] == (
                                   'long name  1.0')


def test_subprocess_peak_counts_the_work_not_the_setup():
    # 64 MiB written in the setup are below the baseline; 96 MiB written
    # in the work are counted
    setup = "a = b'x' * (64 * 2**20)"
    peak = common.subprocess_peak_mb(setup, "b = b'x' * (96 * 2**20)")
    assert 90 < peak < 110, peak
    with pytest.raises(RuntimeError, match='memory run of the work failed'):
        common.subprocess_peak_mb('', 'raise SystemExit(3)')
