"""Linear probe -> robustness evaluation on the demo sets, through the real
entry points: tools/train.py trains the demo probe, tools/test.py (called
by tools/robustness_report.py) evaluates it on the clean val set and the
ImageNet-C/Sketch/R/A-style demo sets."""
import json
import os
import os.path as osp

import pytest

from mmbcssl.cli import robustness_report
from mmbcssl.cli import test as test_api
from mmbcssl.cli import train as train_api
from mmbcssl.evaluation.robustness import BENCHMARK_CORRUPTIONS
from tests.conftest import REPO_ROOT

LINEAR_DEMO = osp.join(REPO_ROOT, 'configs', 'linear',
                       'bcssl-t_9x9_100e_demo.py')
ROBUST_DIR = osp.join(REPO_ROOT, 'configs', 'robustness')
# 10 demo classes: chance is 10% top-1.
CHANCE = 10.0


def _classes(demo_data):
    return f'{demo_data}/imagenet/meta/classes.txt'


def _eval_options(demo_data):
    return [
        'test_dataloader.num_workers=0',
        f'test_dataloader.dataset.base_classes={_classes(demo_data)}',
    ]


@pytest.fixture(scope='module')
def probe(demo_data, tmp_path_factory):
    """The demo linear probe (20 epochs, through tools/train.py) on a
    randomly initialised BC-SSL-T: no SSL checkpoint in the tests."""
    work = str(tmp_path_factory.mktemp('linear_demo'))
    root = f'{demo_data}/imagenet'
    code = train_api.main([
        LINEAR_DEMO, '--work-dir', work, '--cfg-options',
        'model.backbone.init_cfg=None',
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0'
    ])
    assert code == 0
    return work, osp.join(work, 'epoch_20.pth')


def test_linear_probe_fits_frozen_features(probe, demo_data, tmp_path):
    """The probe learns a linear map of the frozen features: on its own
    training images it is far above chance. (Random-init features do not
    generalise on the demo set, whose classes differ in shape, not colour;
    held-out accuracy needs pre-trained features, see the closing note.)"""
    _, ckpt = probe
    out = tmp_path / 'train.json'
    root = f'{demo_data}/imagenet'
    code = test_api.main([
        LINEAR_DEMO, ckpt, '--work-dir',
        str(tmp_path), '--out',
        str(out), '--cfg-options', f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.dataset.ann_file=meta/train.txt',
        'test_dataloader.dataset.data_prefix=train',
        'test_dataloader.num_workers=0'
    ])
    assert code == 0
    top1 = json.loads(out.read_text())['accuracy/top1']
    # measured 41% (4x chance) on the test data; 2.5x leaves room for
    # numerical noise across machines
    assert top1 > 2.5 * CHANCE, top1


def test_robustness_report_on_demo_sets(probe, demo_data, tmp_path):
    _, ckpt = probe
    out = tmp_path / 'report'
    roots = []
    for name, folder in (('clean', 'imagenet'), ('c', 'imagenet-c'),
                         ('sketch', 'imagenet-sketch'), ('r', 'imagenet-r'),
                         ('a', 'imagenet-a')):
        roots += ['--root', f'{name}={demo_data}/{folder}']
    code = robustness_report.main([
        LINEAR_DEMO, ckpt, '--out-dir',
        str(out), '--demo', '--epochs', '3', '--config-dir', ROBUST_DIR,
        '--classes', _classes(demo_data), *roots, '--cfg-options',
        'test_dataloader.num_workers=0'
    ])
    assert code == 0
    report = json.loads((out / 'report.json').read_text())
    row, metrics = report['table5_row'], report['metrics']
    for key in ('linear', 'sketch', 'r', 'a'):
        assert 0. <= row[key] <= 100.
    c = metrics['c']
    # mCE is the mean of the 15 AlexNet-normalised CEs; relative mCE is
    # there because the clean run came first.
    ces = [c[f'imagenet-c/CE/{n}'] for n in BENCHMARK_CORRUPTIONS]
    assert row['mCE'] == pytest.approx(sum(ces) / 15)
    clean_error = 1 - row['linear'] / 100
    assert metrics['c']['imagenet-c/relative_mCE'] == pytest.approx(
        row['relative_mCE'])
    assert 'relative_mCE' in row and clean_error >= 0
    text = (out / 'report.md').read_text()
    assert '**Demo data**' in text
    assert '| BC-SSL-T 9x9 (paper) | 100 | 75.00 | 70.30 | 59.39 |' in text
    assert 'unnormalised mean error' in text
    # The R/A-style sets hold a subset of the 10 classes: their metrics
    # came from logits restricted to those columns.
    assert 0 < len(os.listdir(f'{demo_data}/imagenet-r')) < 10


def test_model_from_and_mismatched_checkpoint(probe, demo_data, tmp_path,
                                              capsys):
    """The 1000-class imagenet-r.py evaluates the 10-class demo probe with
    --model-from; without it the checkpoint does not fit and test.py stops
    with a message instead of evaluating a half-loaded model."""
    _, ckpt = probe
    config = osp.join(ROBUST_DIR, 'imagenet-r.py')
    opts = [
        f'test_dataloader.dataset.data_root={demo_data}/imagenet-r',
        'test_dataloader.batch_size=8', *_eval_options(demo_data)
    ]
    code = test_api.main([
        config, ckpt, '--model-from', LINEAR_DEMO, '--work-dir',
        str(tmp_path / 'ok'), '--out',
        str(tmp_path / 'r.json'), '--cfg-options', *opts
    ])
    assert code == 0
    assert 'accuracy/top1' in json.loads((tmp_path / 'r.json').read_text())
    capsys.readouterr()
    code = test_api.main([
        config, ckpt, '--work-dir',
        str(tmp_path / 'bad'), '--cfg-options', *opts
    ])
    assert code == 2
    err = capsys.readouterr().err
    assert 'does not fit the model' in err
    assert 'head.fc.weight: checkpoint (10, 768) vs model (1000, 768)' \
        in err
    assert '--model-from' in err
