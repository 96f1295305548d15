"""Linear probe -> robustness evaluation on the demo sets, through the real
entry points: tools/train.py trains the demo probe, tools/test.py (called
by tools/robustness_report.py) evaluates it on the clean val set and the
ImageNet-C/Sketch/R/A-style demo sets (a run of the suite preset
configs/suites/robustness.py on the trained probe)."""
import json
import os
import os.path as osp
import re

import pytest

from mmbcssl.cli import robustness_report
from mmbcssl.cli import test as test_api
from mmbcssl.cli import train as train_api
from mmbcssl.evaluation.outcomes import read_outcomes
from mmbcssl.evaluation.robustness import (BENCHMARK_CORRUPTIONS, SEVERITIES,
                                           corruption_errors)
from mmbcssl.evaluation.statistics import clopper_pearson
from mmbcssl.suite.report import robustness_markdown
from tests.conftest import REPO_ROOT

LINEAR_DEMO = osp.join(
    REPO_ROOT, 'configs', 'linear',
    'linear_bcssl-t-9x9_dino-demo-pre_1xb32-coslr-20e_in1k-demo.py')
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


def recompute(outcomes, entry):
    """A metric from per-image outcomes, as their ``meta['metrics']``
    entry states it: ``accuracy`` is the mean of one pass's hits times the
    scale; ``imagenet_c`` puts each pass's error rate through
    :func:`corruption_errors`."""
    if entry['statistic'] == 'accuracy':
        (name, ) = entry['arrays']
        return entry['scale'] * outcomes.arrays[name].mean()
    assert entry['statistic'] == 'imagenet_c'
    errors = {}
    for name in entry['passes']:
        c, s = name.split('/')
        errors.setdefault(c, {})[int(s)] = 1 - outcomes.arrays[name].mean()
    assert entry['clean'] is None  # the clean error is the given one
    return corruption_errors(errors, entry.get('clean_error'))[
        entry['which']]


def image_files(root):
    """Every image under ``root``, as a path relative to it, sorted."""
    return sorted(osp.relpath(osp.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files
                  if not f.endswith('.txt'))


# The demo probe on a narrow BC-SSL: the evaluation protocols do not
# depend on the width, and the full BC-SSL-T made up most of this file's
# run time.
NARROW_PROBE = osp.join(REPO_ROOT, 'tests', 'data', 'configs',
                        'narrow_linear_demo.py')


@pytest.fixture(scope='module')
def probe(demo_data, tmp_path_factory):
    """The demo linear probe (20 epochs, through tools/train.py) on a
    randomly initialised narrow BC-SSL: no SSL checkpoint in the tests."""
    work = str(tmp_path_factory.mktemp('linear_demo'))
    root = f'{demo_data}/imagenet'
    code = train_api.main([
        NARROW_PROBE, '--work-dir', work, '--cfg-options',
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
    held-out accuracy needs pre-trained features.)"""
    work, ckpt = probe
    # validated every epoch: the best epoch's checkpoint is there, under the
    # name the suite's LinearProbe looks for
    from mmbcssl.suite.evaluations import LinearProbe
    best, epoch = LinearProbe().best_checkpoint(work)
    assert 1 <= epoch <= 20 and osp.isfile(best)
    out = tmp_path / 'train.json'
    root = f'{demo_data}/imagenet'
    code = test_api.main([
        NARROW_PROBE, ckpt, '--work-dir',
        str(tmp_path), '--out',
        str(out), '--cfg-options', f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.dataset.ann_file=meta/train.txt',
        'test_dataloader.dataset.data_prefix=train',
        'test_dataloader.num_workers=0'
    ])
    assert code == 0
    top1 = json.loads(out.read_text())['metrics']['accuracy/top1']
    # measured 35% (3.5x chance) on the test data; 2.5x leaves room for
    # numerical noise across machines
    assert top1 > 2.5 * CHANCE, top1


def test_robustness_report_on_demo_sets(probe, demo_data, tmp_path,
                                        capsys):
    _, ckpt = probe
    out = tmp_path / 'report'
    roots = []
    for name, folder in (('clean', 'imagenet'), ('c', 'imagenet-c'),
                         ('sketch', 'imagenet-sketch'), ('r', 'imagenet-r'),
                         ('a', 'imagenet-a')):
        roots += ['--root', f'{name}={demo_data}/{folder}']
    args = [
        NARROW_PROBE, ckpt, '--out-dir',
        str(out), '--demo', '--protocols', 'official', 'authors',
        '--config-dir', ROBUST_DIR, '--classes', _classes(demo_data), *roots,
        '--cfg-options', 'test_dataloader.num_workers=0'
    ]
    code = robustness_report.main(args)
    assert code == 0
    report = json.loads((out / 'report.json').read_text())
    row, results = report['row'], report['results']
    for key in ('linear_top1', 'sketch_top1', 'r_top1', 'a_top1',
                'r_top1_1000way', 'a_top1_1000way'):
        assert 0. <= row[key] <= 100.
    # the suite's results, by evaluation name
    c = results['robustness.c']['metrics']
    # mCE is the mean of the 15 AlexNet-normalised CEs; relative mCE is
    # there because the clean run came first.
    ces = [c[f'imagenet-c/CE/{n}'] for n in BENCHMARK_CORRUPTIONS]
    assert row['c_mce'] == pytest.approx(sum(ces) / 15)
    assert row['c_rel_mce'] == pytest.approx(c['imagenet-c/relative_mCE'])
    # the two protocol families were really evaluated differently
    fp = {k.split('.')[-1]: v['fingerprint']['protocol']
          for k, v in results.items()}
    assert fp['c']['transform'] == ['CenterCrop(64)']
    assert fp['c_resize256']['transform'][0].startswith('ResizeEdge(')
    assert fp['r']['class_restriction'].startswith('logits restricted')
    # A and R are checked against their official class lists
    assert fp['r']['class_list'] == fp['r_1000way']['class_list'] == \
        'imagenet-r'
    assert fp['a']['class_list'] == 'imagenet-a'
    assert fp['sketch']['class_list'] == 'the folders found'
    assert fp['r_1000way']['class_restriction'].startswith('argmax over all')
    # 1000-way (here: over all 10 classes) can only lose: a prediction
    # outside the subset counts as wrong
    assert row['r_top1_1000way'] <= row['r_top1'] + 1e-9
    assert row['a_top1_1000way'] <= row['a_top1'] + 1e-9
    # each result's per-image outcomes lie beside it and reproduce every
    # metric they name exactly
    stored = {}
    for name in results:
        path = str(out / 'results' / f'{name}.json')
        with open(path) as f:
            result = json.load(f)
        outcomes = read_outcomes(path, result['outcomes'])
        stored[name] = outcomes
        for key, entry in outcomes.meta['metrics'].items():
            assert recompute(outcomes, entry) == pytest.approx(
                result['metrics'][key], rel=1e-6), (name, key)
    assert set(stored['linear'].meta['metrics']) == {'accuracy/top1'}
    for name in ('sketch', 'r', 'a', 'r_1000way', 'a_1000way'):
        assert set(stored[f'robustness.{name}'].meta['metrics']) == {
            'accuracy/top1'}
    # ImageNet-C: one array per pass over one image list (each pass holds
    # the same images: paths under the pass's folder), the 75 benchmark
    # passes in mCE's order
    c_out = stored['robustness.c']
    assert set(c_out.meta['metrics']) == {
        'imagenet-c/mCE', 'imagenet-c/relative_mCE', 'imagenet-c/mean_error'}
    passes = [f'{c}/{s}' for c in BENCHMARK_CORRUPTIONS for s in SEVERITIES]
    assert c_out.meta['metrics']['imagenet-c/mCE']['passes'] == passes
    assert set(passes) <= set(c_out.arrays)
    assert c_out.images == image_files(
        f'{demo_data}/imagenet-c/gaussian_noise/1')
    assert set(c_out.meta['images_per_pass'].values()) == {
        len(c_out.images)}
    assert stored['robustness.r'].images == image_files(
        f'{demo_data}/imagenet-r')
    assert stored['robustness.a_1000way'].images == image_files(
        f'{demo_data}/imagenet-a')
    # the 1000-way outcome is a hit of the unrestricted argmax only
    assert not (stored['robustness.r_1000way'].arrays['top1']
                & ~stored['robustness.r'].arrays['top1']).any()
    text = (out / 'report.md').read_text()
    assert '**Demo data**' in text
    # every header names its protocol
    assert '| IN-C mCE (AlexNet-norm., crop 224) |' in text
    assert 'IN-C mean error (unnorm., resize 256 + crop 224)' in text
    assert 'IN-R top-1 (1000-way)' in text
    # every measured cell with its interval: the R top-1 as the exact
    # interval of its hits, the mCE line and the ImageNet-C cells too
    hits = stored['robustness.r'].arrays['top1']
    lo, hi = clopper_pearson(int(hits.sum()), len(hits))
    assert f'{row["r_top1"]:.2f} [{100 * lo:.2f}, {100 * hi:.2f}]' in text
    assert re.search(r'- mCE \(AlexNet-normalised, 15 corruptions\): '
                     r'[\d.]+ \[[\d.]+, [\d.]+\]', text)
    fog = [line for line in text.splitlines()
           if line.startswith('| fog |')]
    assert len(fog) == 2 and all(line.count('[') == 8 for line in fog)
    # The R/A-style sets hold a subset of the 10 classes: their metrics
    # came from logits restricted to those columns.
    assert 0 < len(os.listdir(f'{demo_data}/imagenet-r')) < 10
    # a second run into the same folder keeps the first one's results
    before = (out / 'report.json').read_text()
    assert robustness_report.main(args) == 2
    assert '--overwrite' in capsys.readouterr().err
    assert (out / 'report.json').read_text() == before


def test_paper_rows_sit_under_their_own_protocol():
    """The published Table 5 numbers are the authors' protocol: ImageNet-C
    unnormalised mean error after resize 256 + crop 224, A/R 1000-way.
    They must never appear under the official columns."""
    text = robustness_markdown(
        'ours', {'c_mce': 60.0, 'r_top1': 20.0, 'linear_top1': 71.0}, {},
        demo=False)
    header = next(line for line in text.splitlines()
                  if line.startswith('| Model |'))
    columns = [c.strip() for c in header.strip('|').split('|')]
    paper = next(line for line in text.splitlines()
                 if line.startswith('| bcssl-t_9x9_100e ('))
    cells = dict(zip(columns, (c.strip() for c in
                               paper.strip('|').split('|'))))
    assert cells['IN-C mean error (unnorm., resize 256 + crop 224)'] == \
        '59.39'
    assert cells['IN-C mCE (AlexNet-norm., crop 224)'] == '–'
    assert cells['IN-R top-1 (1000-way)'] == '22.79'
    assert cells['IN-R top-1 (200-class)'] == '–'
    assert cells['IN-A top-1 (1000-way)'] == '4.66'
    # the published linear number is DINO-style best-epoch; the clean run
    # of one checkpoint is not
    assert cells['Linear top-1 (best epoch)'] == '75.00'
    assert cells['Linear top-1 (last epoch)'] == '–'
    assert cells['k-NN top-1'] == '70.30'
    ours = next(line for line in text.splitlines() if 'this run' in line)
    assert '60.00' in ours


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
        config, ckpt, '--model-from', NARROW_PROBE, '--work-dir',
        str(tmp_path / 'ok'), '--out',
        str(tmp_path / 'r.json'), '--cfg-options', *opts
    ])
    assert code == 0
    result = json.loads((tmp_path / 'r.json').read_text())
    assert 'accuracy/top1' in result['metrics']
    # the backbone the probe was trained from, as its training run recorded
    # it (no pre-trained weights: init_cfg=None), not the probe config's
    # default init_cfg
    assert result['fingerprint']['checkpoint']['backbone_source'] == dict(
        file=None, sha256=None, weights='random init',
        named_by='training config')
    outcomes = read_outcomes(str(tmp_path / 'r.json'), result['outcomes'])
    assert outcomes.images == image_files(f'{demo_data}/imagenet-r')
    assert 100 * outcomes.arrays['top1'].mean() == pytest.approx(
        result['metrics']['accuracy/top1'], rel=1e-6)
    assert result['fingerprint']['protocol']['class_restriction'].startswith(
        'logits restricted to the')
    capsys.readouterr()
    code = test_api.main([
        config, ckpt, '--work-dir',
        str(tmp_path / 'bad'), '--cfg-options', *opts
    ])
    assert code == 2
    err = capsys.readouterr().err
    assert 'does not fit the model' in err
    # the first tensor that does not fit: the narrow stem
    assert 'backbone.downsample_layers.0.0.weight: checkpoint (32, 3, 4, 4)' \
        ' vs model (96, 3, 4, 4)' in err
    assert '--model-from' in err
