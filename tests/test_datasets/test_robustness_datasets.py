"""ImageNet-A/R and ImageNet-C data sets, SubsetAccuracy and the C loop, on
tiny trees written in the real layouts."""
import json
import os
import os.path as osp
from importlib import resources

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.registry import TRANSFORMS
from PIL import Image

import mmbcssl  # noqa: F401
from mmbcssl.datasets import ImageNetC, ImageNetSubset
from mmbcssl.evaluation.metrics import SubsetAccuracy
from mmbcssl.evaluation.robustness import (BENCHMARK_CORRUPTIONS,
                                           corruption_errors)
from mmbcssl.evaluation.statistics import compute
from mmbcssl.utils.data_checks import DataLayoutError

BASE = ['n00000001', 'n00000002', 'n00000003', 'n00000004', 'n00000005']


def _write_tree(root, wnids, per_class=2, size=8):
    rng = np.random.default_rng(0)
    for w in wnids:
        d = root / w
        d.mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (size, size, 3), np.uint8)
            Image.fromarray(img).save(d / f'{w}_{i}.JPEG')


def test_subset_labels_and_class_indices(tmp_path):
    _write_tree(tmp_path, ['n00000004', 'n00000002'])
    ds = ImageNetSubset(data_root=str(tmp_path), base_classes=BASE)
    assert ds.metainfo['classes'] == ('n00000002', 'n00000004')
    assert ds.metainfo['class_indices'] == (1, 3)
    labels = sorted(ds.get_data_info(i)['gt_label'] for i in range(len(ds)))
    assert labels == [0, 0, 1, 1]
    info = ds.get_data_info(0)
    assert osp.basename(osp.dirname(info['img_path'])) == \
        ds.metainfo['classes'][info['gt_label']]


def test_official_imagenet_a_indices_are_reproduced(tmp_path):
    """From the 200 wnid folder names alone we recover timm's index list."""
    info = resources.files('timm.data._info')
    wnids = info.joinpath('imagenet_a_synsets.txt').read_text().split()
    official = [int(x) for x in
                info.joinpath('imagenet_a_indices.txt').read_text().split()]
    for w in wnids:
        (tmp_path / w).mkdir()
        Image.new('RGB', (4, 4)).save(tmp_path / w / 'x.jpg')
    ds = ImageNetSubset(data_root=str(tmp_path))  # base: ImageNet-1k
    assert list(ds.metainfo['class_indices']) == official


def _official_tree(root, name):
    wnids = resources.files('timm.data._info').joinpath(
        f'imagenet_{name}_synsets.txt').read_text().split()
    for w in wnids:
        (root / w).mkdir(parents=True)
        Image.new('RGB', (4, 4)).save(root / w / 'x.jpg')
    return wnids


@pytest.mark.parametrize('name', ['a', 'r'])
def test_official_class_list_names_every_missing_folder(tmp_path, name):
    """With the official 200-wnid list, a partial copy is refused and the
    missing folders are named, instead of being scored on fewer classes."""
    import shutil
    wnids = _official_tree(tmp_path, name)
    assert len(wnids) == 200
    full = ImageNetSubset(data_root=str(tmp_path),
                          subset_classes=f'imagenet-{name}')
    official = [int(x) for x in resources.files('timm.data._info').joinpath(
        f'imagenet_{name}_indices.txt').read_text().split()]
    assert list(full.metainfo['class_indices']) == official
    gone = [wnids[7], wnids[150]]
    for w in gone:
        shutil.rmtree(tmp_path / w)
    # taken from the folders, the copy would be a 198-class set
    assert len(ImageNetSubset(data_root=str(tmp_path)).metainfo[
        'class_indices']) == 198
    with pytest.raises(DataLayoutError) as err:
        ImageNetSubset(data_root=str(tmp_path),
                       subset_classes=f'imagenet-{name}')
    message = str(err.value)
    assert f'2 of the 200 classes of imagenet-{name} have no folder' in \
        message
    assert f'{gone[0]}, {gone[1]}' in message


def test_a_folder_outside_the_official_list_is_an_error(tmp_path):
    a = set(_official_tree(tmp_path, 'a'))
    r_only = sorted(set(resources.files('timm.data._info').joinpath(
        'imagenet_r_synsets.txt').read_text().split()) - a)[0]
    (tmp_path / r_only).mkdir()
    Image.new('RGB', (4, 4)).save(tmp_path / r_only / 'x.jpg')
    with pytest.raises(DataLayoutError,
                       match=f'{r_only} are not classes of imagenet-a'):
        ImageNetSubset(data_root=str(tmp_path), subset_classes='imagenet-a')


def test_non_wnid_folder_is_an_error(tmp_path):
    _write_tree(tmp_path, ['n00000001', 'holiday_photos'])
    with pytest.raises(DataLayoutError, match='holiday_photos'):
        ImageNetSubset(data_root=str(tmp_path), base_classes=BASE)


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(DataLayoutError, match='does not exist'):
        ImageNetSubset(data_root=str(tmp_path / 'nope'), base_classes=BASE)


def test_subset_accuracy_restricts_before_argmax():
    metric = SubsetAccuracy(topk=(1, ), class_indices=[1, 3])
    # Full argmax is column 0 (not in the subset) for the first sample.
    samples = [
        dict(pred_score=torch.tensor([9., 1., 0., 2., 0.]),
             gt_label=torch.tensor([1])),  # restricted argmax 1: right
        dict(pred_score=torch.tensor([0., 5., 0., 4., 7.]),
             gt_label=torch.tensor([1])),  # restricted argmax 0: wrong
    ]
    metric.process(None, samples)
    out = metric.compute_metrics(metric.results)
    assert out['top1'] == pytest.approx(50.0)
    assert out['error'] == pytest.approx(50.0)


def test_subset_accuracy_full_argmax_variant():
    """restrict_to_subset=False (the BC-SSL authors' variant): the argmax
    runs over every class, a label is its full column, so a prediction
    outside the subset is wrong."""
    metric = SubsetAccuracy(topk=(1, 2), class_indices=[1, 3],
                            restrict_to_subset=False)
    samples = [
        # full argmax 0 (outside the subset): wrong; top-2 {0, 3}: right
        dict(pred_score=torch.tensor([9., 1., 0., 2., 0.]),
             gt_label=torch.tensor([1])),
        # full argmax 1 = column of subset class 0: right
        dict(pred_score=torch.tensor([0., 8., 0., 4., 7.]),
             gt_label=torch.tensor([0])),
        # full argmax 4 (outside): wrong; top-2 {4, 1}: right
        dict(pred_score=torch.tensor([0., 5., 0., 4., 7.]),
             gt_label=torch.tensor([0])),
    ]
    metric.process(None, samples)
    out = metric.compute_metrics(metric.results)
    assert out['top1'] == pytest.approx(100 / 3)
    assert out['top2'] == pytest.approx(100)  # sample 3: top-2 {4, 1}
    # restricted to the subset, all three are right
    restricted = SubsetAccuracy(topk=(1, ), class_indices=[1, 3])
    restricted.process(None, samples)
    assert restricted.compute_metrics(
        restricted.results)['top1'] == pytest.approx(100)


def _c_tree(root, layout='flat', corruptions=BENCHMARK_CORRUPTIONS,
            severities=range(1, 6)):
    for c in corruptions:
        for s in severities:
            base = root / c / str(s) if layout == 'flat' else \
                root / 'noise' / c / str(s)
            _write_tree(base, BASE[:2], per_class=1)


@pytest.mark.parametrize('layout', ['flat', 'nested'])
def test_imagenet_c_layouts(tmp_path, layout):
    _c_tree(tmp_path, layout, corruptions=['gaussian_noise'], severities=[3])
    ds = ImageNetC(str(tmp_path), 'gaussian_noise', 3, base_classes=BASE)
    assert len(ds) == 2 and ds.metainfo['class_indices'] == (0, 1)
    with pytest.raises(DataLayoutError, match='fog/2'):
        ImageNetC(str(tmp_path), 'fog', 2, base_classes=BASE)
    with pytest.raises(ValueError, match='severity'):
        ImageNetC(str(tmp_path), 'gaussian_noise', 6, base_classes=BASE)


def _c_runner(tmp_path, root, num_workers=0, extra=(), **loop_kwargs):
    cfg = Config.fromfile(
        osp.join(osp.dirname(__file__), '..', 'data', 'configs',
                 'tiny_classifier.py'))
    cfg.model.head.num_classes = len(BASE)
    cfg.data_preprocessor.num_classes = len(BASE)
    cfg.test_dataloader = dict(
        batch_size=4, num_workers=num_workers,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='ImageNetC', data_root=str(root),
                     corruption='gaussian_noise', severity=1,
                     base_classes=BASE,
                     pipeline=[dict(type='LoadImageFromFile'), *extra,
                               dict(type='PackInputs')]))
    cfg.test_evaluator = dict(type='SubsetAccuracy', topk=(1, ))
    cfg.test_cfg = dict(type='ImageNetCTestLoop', **loop_kwargs)
    cfg.work_dir = str(tmp_path / 'work')
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'val_dataloader', 'val_cfg', 'val_evaluator',
                'param_scheduler'):
        cfg.pop(key, None)
    return Runner.from_cfg(cfg)


def test_c_loop_runs_every_corruption_and_reports_mce(tmp_path):
    root = tmp_path / 'imagenet-c'
    _c_tree(root)
    _c_tree(root, corruptions=['spatter'])  # extra: reported, not in mCE
    metrics = _c_runner(tmp_path, root, clean_error=0.2).test()
    ces = [metrics[f'imagenet-c/CE/{c}'] for c in BENCHMARK_CORRUPTIONS]
    assert metrics['imagenet-c/mCE'] == pytest.approx(np.mean(ces))
    assert 'imagenet-c/relative_mCE' in metrics
    assert 'imagenet-c/error/spatter' in metrics
    assert 'imagenet-c/CE/spatter' not in metrics


def test_c_loop_with_workers_equals_without(tmp_path):
    """One loader serves every pass (its batches never cross a pass);
    every pass must still score its own images, with and without
    workers."""
    root = tmp_path / 'imagenet-c'
    _c_tree(root, corruptions=['gaussian_noise', 'fog', 'snow'],
            severities=[1, 2])
    results = []
    for workers in (0, 2):
        results.append(_c_runner(tmp_path, root, num_workers=workers,
                                 allow_partial=True).test())
    assert results[0] == results[1]
    assert len([k for k in results[0] if 'partial_error/' in k]) == 3


def test_c_loop_lists_missing_and_partial_is_labelled(tmp_path):
    root = tmp_path / 'imagenet-c'
    _c_tree(root, corruptions=['gaussian_noise', 'fog'],
            severities=[1, 2])
    with pytest.raises(DataLayoutError) as info:
        _c_runner(tmp_path, root).test()  # the loop is built by test()
    assert 'fog/3' in str(info.value) and 'snow/1' in str(info.value)
    metrics = _c_runner(tmp_path, root, allow_partial=True).test()
    assert metrics['imagenet-c/partial'] == 1.0
    assert 'imagenet-c/mCE' not in metrics
    assert 'imagenet-c/partial_error/fog' in metrics


@TRANSFORMS.register_module(force=True)
class RecordPidForTest:
    """Appends the pid of the process that loads each image to a file."""

    def __init__(self, path):
        self.path = path

    def __call__(self, results):
        with open(self.path, 'a') as f:
            f.write(f'{os.getpid()}\n')
        return results


def test_c_loop_starts_its_workers_once(tmp_path):
    """2 workers for 6 passes: 2 worker processes load every image (a
    loader per pass would start 12)."""
    root = tmp_path / 'imagenet-c'
    _c_tree(root, corruptions=['gaussian_noise', 'fog', 'snow'],
            severities=[1, 2])
    pids = tmp_path / 'pids.txt'
    _c_runner(tmp_path, root, num_workers=2, allow_partial=True,
              extra=[dict(type='RecordPidForTest', path=str(pids))]).test()
    seen = pids.read_text().split()
    assert len(seen) == 6 * 2  # every image once
    assert len(set(seen)) == 2 and str(os.getpid()) not in seen


def test_pass_batches_shard_like_mmengine_default_sampler():
    """Each process's share of each pass is DefaultSampler's (no shuffle,
    round up), so the evaluator gathers and truncates as it would."""
    from mmengine.dataset import DefaultSampler

    from mmbcssl.engine.runner.pass_batches import PassBatchSampler
    lengths = [5, 3, 8]
    for world in (1, 2, 3):
        for rank in range(world):
            sampler = PassBatchSampler(lengths, batch_size=2, rank=rank,
                                       world_size=world)
            offset = 0
            for k, n in enumerate(lengths):
                ref = DefaultSampler(list(range(n)), shuffle=False,
                                     round_up=True)
                ref.rank, ref.world_size = rank, world
                ref.num_samples = -(-n // world)
                ref.total_size = ref.num_samples * world
                mine = [i - offset for b, p in zip(sampler.batches,
                                                   sampler.pass_of_batch)
                        if p == k for i in b]
                assert mine == list(ref), (world, rank, k)
                assert all(len(b) <= 2 for b in sampler.batches)
                offset += n


def test_c_loop_continues_after_an_interruption(tmp_path, monkeypatch):
    """With pass_results_dir, a run stopped after some passes continues
    with the rest, and its metrics equal an uninterrupted run's."""
    from mmbcssl.engine.runner import imagenet_c_loop
    root = tmp_path / 'imagenet-c'
    _c_tree(root, corruptions=['gaussian_noise', 'fog', 'snow'],
            severities=[1, 2])
    runner = _c_runner(tmp_path, root, allow_partial=True)
    full = runner.test()
    full_outcomes = runner.test_loop.outcomes
    store = tmp_path / 'passes'
    real_end = imagenet_c_loop.ImageNetCTestLoop._end_pass
    ended = []

    def stop_after_three(self, todo, k, *args):
        real_end(self, todo, k, *args)
        ended.append(todo[k])
        if len(ended) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(imagenet_c_loop.ImageNetCTestLoop, '_end_pass',
                        stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        _c_runner(tmp_path, root, allow_partial=True,
                  pass_results_dir=str(store)).test()
    assert len(list(store.rglob('*.json'))) == 3
    monkeypatch.setattr(imagenet_c_loop.ImageNetCTestLoop, '_end_pass',
                        real_end)
    resumed_passes = []
    monkeypatch.setattr(
        imagenet_c_loop.ImageNetCTestLoop, '_end_pass',
        lambda self, todo, k, *a: (resumed_passes.append(todo[k]),
                                   real_end(self, todo, k, *a)))
    runner = _c_runner(tmp_path, root, allow_partial=True,
                       pass_results_dir=str(store))
    again = runner.test()
    assert len(resumed_passes) == 3 and not set(resumed_passes) & set(ended)
    assert again == full
    # the finished passes' per-image outcomes were kept with them: the
    # resumed run has every pass's, the uninterrupted run's
    outcomes = runner.test_loop.outcomes
    assert outcomes.images == full_outcomes.images
    assert sorted(outcomes.arrays) == sorted(full_outcomes.arrays) == [
        f'{c}/{s}' for c in ('fog', 'gaussian_noise', 'snow')
        for s in (1, 2)]
    for name, hits in full_outcomes.arrays.items():
        assert outcomes.arrays[name].tolist() == hits.tolist()
    # a kept pass without outcomes (an older run's) is run again
    for path in store.rglob('*.json'):
        kept = json.loads(path.read_text())
        kept.pop('outcomes')
        path.write_text(json.dumps(kept))
    resumed_passes.clear()
    runner = _c_runner(tmp_path, root, allow_partial=True,
                       pass_results_dir=str(store))
    assert runner.test() == full and len(resumed_passes) == 6
    assert sorted(runner.test_loop.outcomes.arrays) == sorted(
        full_outcomes.arrays)


def test_c_loop_outcomes_reproduce_mce_and_need_one_image_list(tmp_path):
    """Per pass, which images were right: the pass errors they give, put
    through corruption_errors, are the loop's mCE, relative mCE and mean
    error. Passes holding other images give no outcomes (a warning)."""
    root = tmp_path / 'imagenet-c'
    _c_tree(root)
    runner = _c_runner(tmp_path, root, clean_error=0.2)
    metrics = runner.test()
    outcomes = runner.test_loop.outcomes
    assert outcomes.images == [f'{c}/{c}_0.JPEG' for c in BASE[:2]]
    passes = [f'{c}/{s}' for c in BENCHMARK_CORRUPTIONS for s in range(1, 6)]
    assert sorted(outcomes.arrays) == sorted(passes)
    errors = {}
    for name in passes:
        c, s = name.split('/')
        errors.setdefault(c, {})[int(s)] = 1 - outcomes.arrays[name].mean()
    recomputed = corruption_errors(errors, 0.2)
    for which in ('mCE', 'relative_mCE', 'mean_error'):
        entry = outcomes.meta['metrics'][f'imagenet-c/{which}']
        assert entry['statistic'] == 'imagenet_c'
        assert entry['which'] == which and entry['passes'] == passes
        assert entry['clean'] is None
        assert recomputed[which] == pytest.approx(
            metrics[f'imagenet-c/{which}'], rel=1e-6)
        # and through the statistic the report computes intervals with
        assert compute(outcomes, f'imagenet-c/{which}') == pytest.approx(
            metrics[f'imagenet-c/{which}'], rel=1e-6)
    assert outcomes.meta['metrics']['imagenet-c/relative_mCE'][
        'clean_error'] == 0.2
    assert outcomes.meta['images_per_pass']['snow/3'] == 2
    # one pass with an image more: no common image list
    _write_tree(root / 'fog' / '2', BASE[2:3], per_class=1)
    runner = _c_runner(tmp_path, root, clean_error=0.2)
    assert runner.test()['imagenet-c/mCE'] > 0
    assert runner.test_loop.outcomes is None
