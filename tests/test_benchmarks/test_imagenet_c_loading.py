"""tools/analysis_tools/benchmark_imagenet_c.py on a tiny synthetic tree."""
import json
import os
import os.path as osp

import pytest

from mmbcssl.datasets.imagenet_c import scan_tree
from mmbcssl.evaluation.robustness import BENCHMARK_CORRUPTIONS, SEVERITIES
from mmbcssl.benchmarks import imagenet_c_loading as bench
from tests.conftest import REPO_ROOT

CONFIG = osp.join(REPO_ROOT, bench.CONFIG)


def test_make_tree_layout(tmp_path):
    plan = bench.make_tree(str(tmp_path), passes=7, images=6, classes=3,
                           size=32)
    assert plan == [('gaussian_noise', s) for s in SEVERITIES] + [
        ('shot_noise', 1), ('shot_noise', 2)]
    found, missing = scan_tree(str(tmp_path), BENCHMARK_CORRUPTIONS,
                               SEVERITIES)
    assert sorted(found) == sorted(plan) and len(missing) == 75 - 7
    files = [f for _, _, fs in os.walk(tmp_path / 'shot_noise' / '1')
             for f in fs]
    assert len(files) == 6
    with pytest.raises(ValueError, match='passes'):
        bench.make_tree(str(tmp_path), passes=76, images=1)


def test_benchmark_runs_both_modes(tmp_path):
    out_file = tmp_path / 'c.json'
    code = bench.main(['--config', CONFIG, '--passes', '2', '--images', '12',
                       '--batch-size', '5', '--workers', '2', '--repeats',
                       '1', '--out', str(out_file)])
    assert code == 0
    out = json.loads(out_file.read_text())
    assert out['setting']['passes'] == 2
    assert out['setting']['images_per_pass'] == 12
    assert out['setting']['synthetic'] is True
    for mode in bench.MODES:
        r = out['results'][mode]
        assert r['images_per_s'] > 0 and r['boundary_stall_s'] >= 0
    assert out['per_worker_images_per_s'] > 0
    assert out['one_loader_vs_per_pass'] == pytest.approx(
        out['results']['one-loader']['images_per_s'] /
        out['results']['per-pass']['images_per_s'])


def test_loop_overhead_on_the_demo_tree(demo_data, tmp_path):
    """--loop: the real ImageNet-C loop over the demo tree; the model steps
    take part of the wall time, every pass is run."""
    # the demo probe on a narrow BC-SSL: the loop, not the model, is
    # measured
    linear = osp.join(REPO_ROOT, 'tests', 'data', 'configs',
                      'narrow_linear_demo.py')
    config = osp.join(REPO_ROOT, 'configs', 'robustness',
                      'imagenet-c_demo.py')
    classes = f'{demo_data}/imagenet/meta/classes.txt'
    out = bench.loop_overhead(
        config, linear, f'{demo_data}/imagenet-c', workers=0, batch_size=32,
        cfg_options={'test_dataloader.dataset.base_classes': classes})
    assert out['passes'] == 75 and out['images'] == 75 * 10
    assert 0 < out['model_steps_s'] < out['wall_s']
    assert out['ratio'] == pytest.approx(out['wall_s'] /
                                         out['model_steps_s'])


def test_bad_arguments():
    assert bench.main(['--workers', '-1']) == 2
