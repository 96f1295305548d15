"""tools/analysis_tools/benchmark_dino_iter.py on the demo config: both
paths train, the table and JSON come out, the ratio is theirs."""
import json
import os.path as osp

import pytest
import torch

from mmbcssl.benchmarks.dino_iter import (build_model, main, run_bare,
                                          synthetic_views)
from tests.conftest import REPO_ROOT

# the demo recipe on a narrow BC-SSL: what is tested is the two loops
DEMO = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'narrow_dino_demo.py')


def test_side_by_side_on_the_demo_config(tmp_path, capsys):
    out = tmp_path / 'r.json'
    code = main([
        '--config', DEMO, '--batch-size', '2', '--global-size', '64',
        '--local-size', '32', '--num-local', '2', '--iters', '2',
        '--work-dir', str(tmp_path / 'w'), '--out', str(out)
    ])
    assert code == 0
    result = json.loads(out.read_text())
    assert result['views'] == '2x64 + 2x32'
    for name in ('mmengine', 'bare'):
        assert result[name]['n'] == 2 and result[name]['images_per_s'] > 0
    assert result['ratio_mmengine_over_bare'] == pytest.approx(
        result['mmengine']['images_per_s'] / result['bare']['images_per_s'])
    assert 'mmengine / bare:' in capsys.readouterr().out


def test_bare_loop_trains_like_dino():
    """The reference loop moves the student, keeps the last layer in epoch
    0 and moves the teacher by the EMA."""
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO)
    model = build_model(cfg, torch.device('cpu'))
    last = model.head.last_layer.weight_v.clone()
    backbone = model.backbone.downsample_layers[0][0].weight.clone()
    teacher = model.teacher.backbone.downsample_layers[0][0].weight.clone()
    run_bare(model, cfg, synthetic_views(2, 64, 32, 2), 1,
             torch.device('cpu'), 0, 10)
    assert torch.equal(model.head.last_layer.weight_v, last)
    assert not torch.equal(model.backbone.downsample_layers[0][0].weight,
                           backbone)
    assert not torch.equal(
        model.teacher.backbone.downsample_layers[0][0].weight, teacher)
