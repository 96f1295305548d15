"""tools/analysis_tools/analyze_logs.py on the logs of a real (tiny) run:
mmengine's scalars.json and the k-NN monitor's knn_curve.json; summary
statistics on hand-made logs; one-line errors."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from mmbcssl.cli import analyze_logs
from mmbcssl.cli import train as train_api
from mmbcssl.visualization.log_plots import load_run, plot_runs, summarize
from tests.conftest import REPO_ROOT

TINY = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'tiny_classifier.py')


@pytest.fixture(scope='module')
def work_dir(demo_data, tmp_path_factory):
    """2 epochs of the tiny classifier (80 images, batch 16: 5 iterations
    per epoch, logged every 2) with the k-NN monitor after each epoch."""
    tmp = tmp_path_factory.mktemp('logs')
    root = osp.join(demo_data, 'imagenet')
    cfg = Config.fromfile(TINY)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = root
    cfg.train_dataloader.batch_size = 16
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
    cfg.default_hooks.checkpoint = dict(type='mmpretrain.SafeCheckpointHook',
                                        interval=5)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=2)
    cfg.custom_hooks = [dict(type='KNNMonitorHook', data_root=root,
                             interval=1, img_size=32, resize=36, ks=(1, 5),
                             batch_size=40, num_workers=0)]
    path = str(tmp / 'cfg.py')
    cfg.dump(path)
    work = str(tmp / 'run')
    assert train_api.main([path, '--work-dir', work]) == 0
    return work


def test_reads_scalars_and_knn_curve(work_dir):
    run = load_run(work_dir)
    assert run.label == 'run' and run.iters_per_epoch == 5
    loss = run.series['loss']
    assert loss.unit == 'iter'
    assert loss.x.tolist() == [2, 4, 7, 9]  # every 2nd of each epoch
    with open(osp.join(work_dir, 'knn_curve.json')) as f:
        curve = json.load(f)
    knn = run.series['knn/k5_top1']
    assert knn.unit == 'epoch' and knn.x.tolist() == [1, 2]
    assert knn.y.tolist() == [p['knn/k5_top1'] for p in curve]
    # validation metrics are per epoch too, the validation loop's timing
    # apart from the training iterations'
    assert run.series['accuracy/top1'].x.tolist() == [1, 2]
    assert run.series['val/time'].x.tolist() == [1, 2]
    assert run.series['time'].x.tolist() == [2, 4, 7, 9]


def test_tool_png_and_summary(work_dir, tmp_path, capsys):
    out = str(tmp_path / 'curves.png')
    assert analyze_logs.main([
        work_dir, work_dir, '--legend', 'a', 'b', '--keys', 'loss', 'lr',
        'knn/k*_top1', '--title', 'tiny', '--out', out]) == 0
    assert Image.open(out).size == (800, 3 * 260)
    text = capsys.readouterr().out
    assert 'time per iteration' in text and 'iterations per epoch: 5' in text
    assert 'knn/k1_top1: last' in text and 'best (max)' in text
    assert 'loss: last' in text and 'best (min)' in text
    # the curves are on an epoch axis; the loss is placed by iteration / 5
    fig = plot_runs([load_run(work_dir)], ['loss'], x_axis='epoch')
    xs = fig.axes[0].lines[0].get_xdata()
    assert np.allclose(xs, [0.4, 0.8, 1.4, 1.8])


def _write_lines(path, lines):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.writelines(json.dumps(line) + '\n' for line in lines)


def test_resumed_run_and_best_last(tmp_path):
    # two timestamp folders: the resumed one re-logs iteration 4
    first = [dict(loss=3.0, lr=0.1, time=2.0, epoch=1, iter=2, step=2),
             dict(loss=2.0, lr=0.1, time=1.0, epoch=1, iter=4, step=4),
             dict(**{'knn/k20_top1': 30.0}, step=1)]
    second = [dict(loss=2.5, lr=0.05, time=1.0, epoch=1, iter=4, step=4),
              dict(loss=1.0, lr=0.01, time=3.0, epoch=2, iter=8, step=8),
              dict(**{'knn/k20_top1': 20.0}, step=2)]
    _write_lines(str(tmp_path / '20260101_000000/vis_data/scalars.json'),
                 first)
    _write_lines(str(tmp_path / '20260102_000000/vis_data/scalars.json'),
                 second)
    run = load_run(str(tmp_path))
    assert run.iters_per_epoch == 4
    assert run.series['loss'].x.tolist() == [2, 4, 8]
    assert run.series['loss'].y.tolist() == [3.0, 2.5, 1.0]
    (row, ) = summarize([run], ['loss', 'lr', 'knn/k20_top1'])
    # the first logging window (start-up) is left out of the timing
    assert row['time']['mean'] == pytest.approx((1.0 + 3.0) / 2)
    assert row['values']['loss'] == dict(
        last=1.0, last_at=8.0, unit='iter', best=1.0, best_at=8.0,
        best_is='min')
    assert row['values']['knn/k20_top1']['best'] == 30.0
    assert row['values']['knn/k20_top1']['best_at'] == 1.0
    assert row['values']['lr']['min'] == 0.01  # no "best" learning rate


def test_knn_curve_alone(tmp_path, capsys):
    path = str(tmp_path / 'knn_curve.json')
    with open(path, 'w') as f:
        json.dump([{'epoch': 20, 'knn/k20_top1': 40.0},
                   {'epoch': 40, 'knn/k20_top1': 50.0}], f)
    assert analyze_logs.main([path]) == 0
    assert 'knn/k20_top1: last 50 (epoch 40)' in capsys.readouterr().out
    # no training lines: no way to put epochs on an iteration axis
    assert analyze_logs.main([path, '--x-axis', 'iter', '--out',
                              str(tmp_path / 'x.png')]) == 2
    assert '--x-axis epoch' in capsys.readouterr().err


def test_bad_input_is_one_line(tmp_path, capsys):
    good = str(tmp_path / 'ok/vis_data/scalars.json')
    _write_lines(good, [dict(loss=1.0, iter=1, step=1)])
    bad = str(tmp_path / 'bad.json')
    with open(bad, 'w') as f:
        f.write('{"loss": 1.0, "step": 1}\nnot json\n')
    cases = [([bad], 'bad.json:2'),
             ([good, '--keys', 'los', '--out', str(tmp_path / 'p.png')],
              "no run logged 'los'; keys found: loss"),
             ([str(tmp_path / 'missing')], 'not found')]
    for argv, words in cases:
        assert analyze_logs.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err
