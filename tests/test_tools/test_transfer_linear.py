"""tools/transfer_linear.py end to end: two models, folder data sets with
and without a val split, the demo set, the summary; bad registries and
layouts."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from mmbcssl.cli import transfer_linear
from mmbcssl.evaluation import transfer
from mmbcssl.evaluation.outcomes import read_outcomes
from mmbcssl.evaluation.statistics import statistic
from tests.conftest import REPO_ROOT
from tests.test_tools.test_knn_eval import _save_random_init

TINY = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'tiny_classifier.py')
SMALL = ['--img-size', '32', '--resize', '36', '--num-workers', '0',
         '--batch-size', '32']
COLOURS = dict(red=(200, 40, 40), green=(40, 200, 40), blue=(40, 40, 200))


def _colour_set(root, splits):
    """Noisy images whose class is their colour: random-init conv features
    keep the mean colour, so a linear classifier must separate them."""
    rng = np.random.default_rng(0)
    for split, n in splits.items():
        for name, rgb in COLOURS.items():
            os.makedirs(osp.join(root, split, name))
            for i in range(n):
                img = np.clip(
                    np.array(rgb) + rng.normal(0, 40, (40, 40, 3)), 0, 255)
                Image.fromarray(img.astype(np.uint8)).save(
                    osp.join(root, split, name, f'{i}.png'))


def _first_image(folder):
    """``<class>/<file>`` of the first image of a class-folder split."""
    first = sorted(os.listdir(folder))[0]
    return f'{first}/{sorted(os.listdir(osp.join(folder, first)))[0]}'


def _registry(path, data_root, body):
    with open(path, 'w') as f:
        f.write(f'data_root = {data_root!r}\ndatasets = dict({body})\n')
    return str(path)


@pytest.fixture(scope='module')
def colour_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('transfer'))
    _colour_set(osp.join(root, 'colours'), dict(train=12, test=6))
    _colour_set(osp.join(root, 'colours_val'),
                dict(train=8, val=4, test=6))
    return root


def test_two_models_on_three_sets(colour_root, demo_data, tmp_path):
    registry = _registry(
        tmp_path / 'reg.py', colour_root,
        "colours=dict(root='colours', metric='accuracy'), "
        "colours_val=dict(root='colours_val', val='val', metric='roc_auc'), "
        f"demo=dict(root={demo_data + '/imagenet'!r}, test='val', "
        "metric='map_11point')")
    # the second model: other random weights, given as a checkpoint
    ckpt = _save_random_init(tmp_path / 'other.pth', TINY, seed=1)
    torch.manual_seed(0)
    out = tmp_path / 'out'
    code = transfer_linear.main([
        registry, '--model', TINY, '--model', TINY, ckpt, '--name', 'seed0',
        '--name', 'seed1', '--out-dir', str(out), *SMALL
    ])
    assert code == 0
    data = json.loads((out / 'results.json').read_text())
    results, summary = data['results'], data['summary']
    for model in ('seed0', 'seed1'):
        r = results[model]
        # colour is linearly decodable from random conv features
        assert r['colours']['score'] > 90, r['colours']
        assert r['colours_val']['score'] > 95, r['colours_val']
        # hold-out: 20 % of the 36 training images for the search
        assert (r['colours']['num_train'], r['colours']['num_val']) == (28,
                                                                        8)
        assert (r['colours_val']['num_train'],
                r['colours_val']['num_val']) == (24, 12)
        assert 0 <= r['demo']['score'] <= 100
        assert summary['average'][model] == pytest.approx(
            np.mean([r[s]['score'] for s in ('colours', 'colours_val',
                                             'demo')]))
    v = summary['versus']['seed1']
    assert v['wins'] + v['ties'] + v['losses'] == 3
    # per model, the test images' outcomes beside results.json, named by
    # it; 'transfer_mean' gives the average back from them alone
    for model in ('seed0', 'seed1'):
        record = data['outcomes'][model]
        assert record['file'] == f'results.{model}.outcomes.npz'
        assert (out / record['file']).is_file()
        outcomes = read_outcomes(str(out / 'results.json'), record)
        assert len(outcomes.images) == 18 + 18 + 40
        assert outcomes.images[0] == 'colours/test/blue/0.png'
        assert outcomes.images[36] == 'demo/val/' + _first_image(
            demo_data + '/imagenet/val')
        assert np.bincount(outcomes.arrays['set']).tolist() == [18, 18, 40]
        assert [s['metric'] for s in outcomes.meta['sets']] == [
            'accuracy', 'roc_auc', 'map_11point']
        # probabilities only for the sets scored by ranking
        sizes = np.diff(outcomes.arrays['probs.offsets'])
        assert sizes.tolist() == [0] * 18 + [3] * 18 + [10] * 40
        entry = dict(outcomes.meta['metrics']['average'])
        assert entry == dict(statistic='transfer_mean', strata='set')
        fn = statistic(entry.pop('statistic'))
        assert fn(outcomes, None, **entry) == pytest.approx(
            summary['average'][model], rel=1e-12, abs=0)
    assert data['outcomes']['seed0']['images_sha256'] == \
        data['outcomes']['seed1']['images_sha256']
    text = (out / 'summary.md').read_text()
    assert '| data set | metric | seed0 | seed1 |' in text
    assert 'seed0 against seed1:' in text
    assert '**average over every set of reg.py**' in text
    # each result carries its fingerprint; both models were measured the
    # same way, so nothing is flagged
    fps = [results[m]['colours']['fingerprint'] for m in ('seed0', 'seed1')]
    assert fps[0]['protocol_id'] == fps[1]['protocol_id']
    assert fps[0]['protocol']['images'] == dict(train=28, val=8, test=18)
    assert fps[1]['checkpoint']['weights'] is None  # a plain weight file
    assert fps[0]['checkpoint']['weights'] == 'random init'
    assert '†' not in text
    # the results of this run are kept: a second run is refused
    before = (out / 'results.json').read_text()
    assert transfer_linear.main([
        registry, '--model', TINY, '--out-dir', str(out), *SMALL]) == 2
    assert (out / 'results.json').read_text() == before


def test_summary_flags_a_cell_of_another_protocol():
    def result(images):
        from mmbcssl.evaluation.fingerprint import make_fingerprint
        return dict(score=50.0, converged=True, fingerprint=make_fingerprint(
            dict(task='transfer-linear', images=images)))

    results = {'a': {'s': result(10)}, 'b': {'s': result(10)},
               'c': {'s': result(9)}}
    summary = dict(average=dict(a=50., b=50., c=50.), versus={})
    text = transfer_linear.format_summary(
        results, ['a', 'b', 'c'], {'s': dict(metric='accuracy')}, summary,
        'p')
    assert '| s | accuracy | 50.00 | 50.00 | 50.00† |' in text
    assert 's / c: images' in text


def test_bad_registries_and_layouts(colour_root, tmp_path, capsys):
    def run(body, *extra):
        reg = _registry(tmp_path / f'r{len(os.listdir(tmp_path))}.py',
                        colour_root, body)
        code = transfer_linear.main([reg, '--model', TINY, '--out-dir',
                                     str(tmp_path / 'o'), *SMALL, *extra])
        return code, capsys.readouterr().err

    code, err = run("a=dict(root='colours', metric='accuracy')", '--sets',
                    'b')
    assert code == 2 and 'unknown data set(s) b' in err and 'has: a' in err
    code, err = run("a=dict(root='colours', metric='top5')")
    assert code == 2 and 'a.metric must be one of accuracy' in err
    code, err = run("a=dict(root='colours', val='val', metric='accuracy')")
    assert code == 2 and 'colours/val' in err and '<class>/<image>' in err
    # a test split with a class folder missing: labels would shift
    os.makedirs(tmp_path / 'broken' / 'train' / 'x')
    os.makedirs(tmp_path / 'broken' / 'train' / 'y')
    os.makedirs(tmp_path / 'broken' / 'test' / 'y')
    code, err = run(f"a=dict(root={str(tmp_path / 'broken')!r}, "
                    "metric='accuracy')")
    assert code == 2 and "missing ['x']" in err


def test_shipped_registries_read():
    full = transfer.read_registry(
        osp.join(REPO_ROOT, 'configs', 'transfer', 'datasets.py'))
    assert full['voc2007']['metric'] == 'map_11point'
    assert full['hateful_memes']['metric'] == 'roc_auc'
    assert full['fgvc_aircraft']['root'] == 'data/transfer/fgvc_aircraft'
    demo = transfer.read_registry(
        osp.join(REPO_ROOT, 'configs', 'transfer', 'demo.py'))
    assert {e['metric'] for e in demo.values()} == set(
        transfer.METRICS)


def test_presets_name_the_sets_a_mean_is_over():
    registry = osp.join(REPO_ROOT, 'configs', 'transfer', 'datasets.py')
    full = transfer.read_registry(registry)
    for preset, n in (('clip23', 23), ('esvit18', 18)):
        sets, label = transfer.select_sets(registry, preset, None)
        assert len(sets) == len(set(sets)) == n
        assert set(sets) <= set(full)
        assert label == f'{preset} ({n} sets)'
    esvit, _ = transfer.select_sets(registry, 'esvit18', None)
    clip, _ = transfer.select_sets(registry, 'clip23', None)
    assert 'ucf101' in esvit and 'ucf101' not in clip
    assert set(esvit) - {'ucf101'} <= set(clip)
    assert full['ucf101']['metric'] == 'accuracy'
    with pytest.raises(transfer.UserError, match='has: clip23'):
        transfer.select_sets(registry, 'nope', None)


# EsViT's Table 10 (Li et al. 2021, arXiv 2106.09785, appendix C.5): the
# 18 sets and the metric of each.
ESVIT_TABLE_10 = dict(
    food101='accuracy', cifar10='accuracy', cifar100='accuracy',
    sun397='accuracy', stanford_cars='accuracy',
    fgvc_aircraft='mean_per_class', voc2007='map_11point', dtd='accuracy',
    oxford_pets='mean_per_class', caltech101='mean_per_class',
    flowers102='mean_per_class', mnist='accuracy', fer2013='accuracy',
    stl10='accuracy', gtsrb='accuracy', patch_camelyon='accuracy',
    ucf101='accuracy', hateful_memes='roc_auc')


def test_esvit18_is_esvit_table_10():
    registry = osp.join(REPO_ROOT, 'configs', 'transfer', 'datasets.py')
    sets, _ = transfer.select_sets(registry, 'esvit18', None)
    assert sets == list(ESVIT_TABLE_10)
    chosen = transfer.read_registry(registry, sets)
    assert {n: e['metric'] for n, e in chosen.items()} == ESVIT_TABLE_10
    # EuroSAT and RESISC45 stay in the registry, outside the preset
    full = transfer.read_registry(registry)
    assert {'eurosat', 'resisc45'} <= set(full) - set(sets)


@pytest.mark.parametrize('config', [
    'linear_swin-t-last4_dino-100e-pre_8xb128-coslr-100e_in1k.py',
    'linear_vit-s16-last4_dino-100e-pre_8xb128-coslr-100e_in1k.py'
])
def test_a_last_4_blocks_probe_config_is_refused(config, tmp_path, capsys):
    """The transfer suite uses the last layer's feature only (EsViT,
    appendix C.5); the linear probes' last-4-blocks feature is refused
    before any data is read."""
    registry = osp.join(REPO_ROOT, 'configs', 'transfer', 'demo.py')
    code = transfer_linear.main([
        registry, '--model',
        osp.join(REPO_ROOT, 'configs', 'linear', config), '--out-dir',
        str(tmp_path / 'o'), *SMALL])
    assert code == 2
    err = capsys.readouterr().err
    assert 'concatenates the last 4 blocks' in err
    assert 'last layer' in err and 'configs/_base_/models/swin-t.py' in err
    assert not (tmp_path / 'o').exists()


def test_the_last_layer_feature_passes_the_check():
    from mmbcssl.evaluation.transfer import check_last_layer_feature
    check_last_layer_feature(dict(backbone=dict(type='SwinTransformer')))
    check_last_layer_feature(dict(backbone=dict(
        type='SwinTransformerLastBlocks', num_last_blocks=1)))
