"""tools/knn_eval.py: random-init baseline, extracted weights, the same
result from two processes through tools/dist_knn_eval.sh, bad input, the
per-image outcomes beside the result."""
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

import mmbcssl  # noqa: F401
from mmbcssl.apis import init_backbone
from mmbcssl.cli import knn_eval
from tests.conftest import REPO_ROOT, free_port

# BC-SSL-T's config on a narrow backbone: what is tested here does not
# depend on the width
CONFIG = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'narrow_bcssl.py')
SMALL = ['--img-size', '32', '--resize', '36', '--ks', '1', '5',
         '--batch-size', '40', '--num-workers', '0']


def knn_outcomes(result_path):
    """(result, outcomes) of a k-NN result file, the outcomes read through
    the record the result holds; checks that they reproduce every top-1
    metric exactly and that only the top-1 metrics have one."""
    from mmbcssl.evaluation.outcomes import read_outcomes
    with open(result_path) as f:
        result = json.load(f)
    outcomes = read_outcomes(str(result_path), result['outcomes'])
    entries = outcomes.meta['metrics']
    assert sorted(entries) == sorted(
        k for k in result['metrics'] if k.endswith('_top1'))
    for key, entry in entries.items():
        assert recompute(outcomes, entry) == pytest.approx(
            result['metrics'][key], rel=1e-12, abs=0), key
    return result, outcomes


def recompute(outcomes, entry):
    """``statistic(entry['statistic'])(outcomes, None, **params)``; the
    'accuracy' statistic is the contract's: scale x the mean of its one
    boolean pass."""
    from mmbcssl.evaluation.statistics import statistic
    params = {k: v for k, v in entry.items() if k != 'statistic'}
    if entry['statistic'] == 'accuracy':
        (name, ) = params['arrays']
        assert outcomes.arrays[name].dtype == bool
        return params['scale'] * outcomes.arrays[name].mean()
    return statistic(entry['statistic'])(outcomes, None, **params)


def _val_keys(root, split='val'):
    """``<split>/<class>/<file>`` of every image, classes and files in
    sorted order (mmpretrain's folder order)."""
    classes = sorted(os.listdir(osp.join(root, split)))
    return [f'{split}/{c}/{f}' for c in classes
            for f in sorted(os.listdir(osp.join(root, split, c)))]


def _save_random_init(path, config=CONFIG, seed=0):
    """The backbone's random initialisation under ``seed``, saved as an
    extracted ``backbone.*`` file."""
    model = init_backbone(config, None, seed=seed)
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               model['backbone'].state_dict().items()}},
               str(path))
    return str(path)


def test_random_init_then_same_weights_from_a_checkpoint(demo_data,
                                                         tmp_path):
    root = osp.join(demo_data, 'imagenet')
    ckpt = _save_random_init(tmp_path / 'bb.pth', seed=0)
    outs = []
    for extra in ([], ['--checkpoint', ckpt]):
        out = str(tmp_path / f'm{len(outs)}.json')
        # without a checkpoint: the random init of --seed (default 0)
        torch.manual_seed(123)  # the global state must not matter
        assert knn_eval.main([CONFIG, '--data-root', root, '--out', out,
                              *SMALL, *extra]) == 0
        with open(out) as f:
            outs.append(json.load(f))
    metrics = [o['metrics'] for o in outs]
    assert set(metrics[0]) == {'knn/k1_top1', 'knn/k1_top5', 'knn/k5_top1',
                               'knn/k5_top5'}
    assert metrics[0] == metrics[1]
    assert 0 <= metrics[0]['knn/k5_top1'] <= 100
    # the fingerprint says how the numbers were made
    random_fp, ckpt_fp = (o['fingerprint'] for o in outs)
    assert random_fp['checkpoint']['weights'] == 'random init'
    assert ckpt_fp['checkpoint']['sha256'] == hashlib.sha256(
        open(ckpt, 'rb').read()).hexdigest()
    proto = ckpt_fp['protocol']
    assert proto['ks'] == [1, 5] and proto['temperature'] == 0.07
    assert proto['transform'] == [
        'ResizeEdge({"backend": "pillow", "edge": "short", '
        '"interpolation": "bicubic", "scale": 36})', 'CenterCrop(32)']
    assert proto['images'] == dict(train=80, val=40)
    # same protocol, other weights: one column of a table
    assert random_fp['protocol_id'] == ckpt_fp['protocol_id']
    assert ckpt_fp['run']['seed'] == 0 and ckpt_fp['run']['world_size'] == 1


def test_outcomes_beside_the_result_pair_runs_of_two_checkpoints(
        demo_data, tmp_path):
    """--out x.json also writes x.outcomes.npz: for each k, which val
    images were right at top-1, keyed by the val images' paths; its
    record in x.json binds it; it reproduces every top-1 metric; the runs
    of two checkpoints on the same val set share the image list."""
    root = osp.join(demo_data, 'imagenet')
    runs = []
    for seed in (0, 1):
        ckpt = _save_random_init(tmp_path / f'bb{seed}.pth', seed=seed)
        out = tmp_path / f'seed{seed}.json'
        assert knn_eval.main([CONFIG, '--data-root', root, '--checkpoint',
                              ckpt, *SMALL, '--out', str(out)]) == 0
        assert (tmp_path / f'seed{seed}.outcomes.npz').is_file()
        runs.append(knn_outcomes(out))
    (result, outcomes), (other, other_outcomes) = runs
    assert result['outcomes']['file'] == 'seed0.outcomes.npz'
    assert result['outcomes']['num_images'] == 40
    assert outcomes.kind == 'correct'
    assert sorted(outcomes.arrays) == ['k1', 'k5']
    assert outcomes.meta['metrics']['knn/k5_top1'] == dict(
        statistic='accuracy', arrays=['k5'], scale=100.0)
    # the val images, in data set order, by their path under the root
    first = sorted(os.listdir(osp.join(root, 'val')))[0]
    image = sorted(os.listdir(osp.join(root, 'val', first)))[0]
    assert outcomes.images[0] == f'val/{first}/{image}'
    assert outcomes.images == _val_keys(root)
    assert other['outcomes']['images_sha256'] == \
        result['outcomes']['images_sha256']
    assert other['outcomes']['sha256'] != result['outcomes']['sha256']


def test_random_init_is_seeded():
    def weights(seed):
        torch.manual_seed(99)  # whatever came before
        before = torch.get_rng_state()
        model = init_backbone(CONFIG, None, seed)
        # the caller's random state is untouched
        assert torch.equal(torch.get_rng_state(), before)
        return model['backbone'].state_dict()

    a, b, c = weights(0), weights(0), weights(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_two_processes_give_the_single_process_result(demo_data, tmp_path):
    """torchrun -> 2 gloo processes, each extracting half of the images;
    the gathered bank is in data set order, so the metrics are those of
    one process."""
    root = osp.join(demo_data, 'imagenet')
    ckpt = _save_random_init(tmp_path / 'bb.pth', seed=0)
    args = ['--data-root', root, '--checkpoint', ckpt, *SMALL]
    two = str(tmp_path / 'two.json')
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1')
    # the 2-process run starts first; the single-process one runs here
    # while it imports
    proc = subprocess.Popen(
        ['bash', osp.join(REPO_ROOT, 'tools', 'dist_knn_eval.sh'), CONFIG,
         '2', *args, '--out', two],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=REPO_ROOT, env=env)
    one = str(tmp_path / 'one.json')
    assert knn_eval.main([CONFIG, *args, '--out', one]) == 0
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, (out + err)[-3000:]
    assert '2 process(es)' in out
    with open(one) as f, open(two) as g:
        single, dist = json.load(f)['metrics'], json.load(g)['metrics']
    assert set(single) == set(dist)
    # the gathered rows are the images in data set order
    assert knn_outcomes(two)[1].images == knn_outcomes(one)[1].images \
        == _val_keys(root)
    n_val = sum(len(files) for _, _, files in os.walk(osp.join(root, 'val')))
    for key in single:
        # the same images and weights; batches of another size may round
        # a feature differently, which can move at most a neighbour: allow
        # one val image either way
        assert abs(single[key] - dist[key]) <= 100 / n_val + 1e-6, key


def test_mismatched_checkpoint_is_refused(demo_data, tmp_path, capsys):
    ckpt = str(tmp_path / 'other.pth')
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}},
               ckpt)
    code = knn_eval.main([CONFIG, '--data-root',
                          osp.join(demo_data, 'imagenet'), '--checkpoint',
                          ckpt, *SMALL])
    assert code == 2
    assert 'missing' in capsys.readouterr().err


def test_missing_data_root(tmp_path, capsys):
    assert knn_eval.main([CONFIG, '--data-root', str(tmp_path)]) == 2
    assert 'train' in capsys.readouterr().err


def test_folder_without_class_folders_is_one_line(tmp_path, capsys):
    for split in ('train', 'val'):
        (tmp_path / split).mkdir()
        (tmp_path / split / 'loose.JPEG').write_bytes(b'x')
    assert knn_eval.main([CONFIG, '--data-root', str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err
    assert 'class' in err


def test_existing_output_is_kept(demo_data, tmp_path, capsys):
    out = tmp_path / 'knn.json'
    out.write_text('{"earlier": 1}')
    code = knn_eval.main([CONFIG, '--data-root',
                          osp.join(demo_data, 'imagenet'), '--out',
                          str(out), *SMALL])
    assert code == 2
    assert '--overwrite' in capsys.readouterr().err
    assert out.read_text() == '{"earlier": 1}'


def test_bad_images_are_skipped_and_counted(demo_data, tmp_path, capsys):
    """--skip-bad-images: one zero-byte and one non-image file among the
    val images are left out, reported, and the result says so; without
    the option the first one stops the run, naming the file."""
    import shutil
    root = tmp_path / 'imagenet'
    shutil.copytree(osp.join(demo_data, 'imagenet'), root)
    val = root / 'val'
    first = sorted(os.listdir(val))[0]
    files = sorted(os.listdir(val / first))
    (val / first / files[0]).write_bytes(b'')
    (val / first / files[1]).write_text('not an image')
    args = [CONFIG, '--data-root', str(root), *SMALL]
    assert knn_eval.main(args) == 2
    err = capsys.readouterr().err
    assert 'cannot read image' in err and files[0] in err
    out = tmp_path / 'knn.json'
    # 2 of 120 is more than the default share (1 %)
    assert knn_eval.main(args + ['--skip-bad-images']) == 2
    assert '2 of 120 images are unreadable' in capsys.readouterr().err
    assert knn_eval.main(args + ['--skip-bad-images', '--max-bad-share',
                                 '0.05', '--out', str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result['skipped']) == 2
    assert result['fingerprint']['protocol']['images'] == dict(train=80,
                                                               val=38)
    assert result['fingerprint']['protocol']['skipped_images'] == 2
    assert '2 unreadable images left out' in capsys.readouterr().out
    # the outcomes are those of the 38 images classified, in order
    _, outcomes = knn_outcomes(out)
    keys = _val_keys(str(root))
    assert outcomes.images == [
        k for k in keys if k not in (f'val/{first}/{files[0]}',
                                     f'val/{first}/{files[1]}')]
    assert len(outcomes.images) == 38


def _cached_knn(demo_data, tmp_path):
    """(root, checkpoint, cache dir, run): ``run(name)`` is a k-NN run of
    a random-init backbone through a feature cache of 32-image shards and
    returns its metrics."""
    root = osp.join(demo_data, 'imagenet')
    ckpt = _save_random_init(tmp_path / 'bb.pth', seed=0)
    cache = tmp_path / 'cache'
    base = [CONFIG, '--data-root', root, '--checkpoint', ckpt, *SMALL,
            '--feature-cache', str(cache), '--shard-size', '32']

    def run(name):
        out = tmp_path / f'{name}.json'
        assert knn_eval.main(base + ['--out', str(out)]) == 0
        return json.loads(out.read_text())['metrics']

    return root, ckpt, cache, run


def test_feature_cache_is_shared_resumable_and_repairs(demo_data, tmp_path,
                                                       capsys):
    """--feature-cache: a second run reuses every shard and gives the same
    numbers; a shard deleted (an interrupted extraction) is extracted
    again; a corrupt shard is recomputed with a warning."""
    from mmbcssl.evaluation.feature_cache import FeatureCache
    root, ckpt, cache, run = _cached_knn(demo_data, tmp_path)

    plain = tmp_path / 'plain.json'
    assert knn_eval.main([CONFIG, '--data-root', root, '--checkpoint', ckpt,
                          *SMALL, '--out', str(plain)]) == 0
    first = run('first')
    assert first == json.loads(plain.read_text())['metrics']
    # read from cache shards, the rows are the images of the plain run
    _, direct = knn_outcomes(plain)
    _, cached = knn_outcomes(tmp_path / 'first.json')
    assert cached.images == direct.images == _val_keys(root)
    for k in direct.arrays:
        assert (cached.arrays[k] == direct.arrays[k]).all()
    shards = sorted(cache.rglob('shard_*.pt'))
    assert len(shards) == 3 + 2  # 80 train / 32, 40 val / 32
    assert 'reused, 5 extracted' in capsys.readouterr().out
    assert run('second') == first
    assert '5 shards reused, 0 extracted' in capsys.readouterr().out
    shards[1].unlink()  # as if the run had stopped before it
    shards[3].write_bytes(b'not a tensor file')
    assert run('third') == first
    out = capsys.readouterr().out
    assert '3 shards reused, 2 extracted' in out
    assert FeatureCache(str(cache)).size_bytes() > 0


def test_feature_cache_shard_with_changed_bytes_is_extracted_again(
        demo_data, tmp_path, capsys, monkeypatch):
    """A shard whose bytes changed on disk, its size kept (64 bytes of its
    features record flipped): its SHA-256 no longer matches the one
    written with it, so it is extracted again, with a warning, and the
    numbers are those of a clean cache."""
    import zipfile
    _, _, cache, run = _cached_knn(demo_data, tmp_path)

    first = run('first')
    shard = sorted(cache.rglob('shard_*.pt'))[1]
    clean = shard.read_bytes()
    with zipfile.ZipFile(shard) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    data = bytearray(clean)
    # the record's bytes start after its local header (30 bytes, the name
    # and the extra field); flip 64 bytes in their middle
    name_len, extra_len = (int.from_bytes(data[info.header_offset + i:
                                               info.header_offset + i + 2],
                                          'little') for i in (26, 28))
    middle = (info.header_offset + 30 + name_len + extra_len +
              info.file_size // 2)
    for i in range(middle, middle + 64):
        data[i] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert shard.stat().st_size == len(clean)
    capsys.readouterr()
    # the cache's warnings, whichever stream the current logger writes to
    from mmbcssl.evaluation import feature_cache
    warned = []

    def spy(msg, *args, **kwargs):
        warned.append(msg)
        return print_log(msg, *args, **kwargs)

    print_log = feature_cache.print_log
    monkeypatch.setattr(feature_cache, 'print_log', spy)
    assert run('second') == first
    captured = capsys.readouterr()
    log = '\n'.join(warned + [captured.out, captured.err])
    assert f'cached feature file {shard} is unreadable or corrupt' in log
    assert 'SHA-256' in log and 'extracting it again' in log
    assert '4 shards reused, 1 extracted' in log
    assert shard.read_bytes() == clean  # extracted again, the same bytes
    assert (shard.parent / (shard.name + '.sha256')).read_text() == \
        f'{hashlib.sha256(clean).hexdigest()}  {shard.name}\n'


def test_nonfinite_features_are_refused(demo_data):
    """A backbone that outputs NaN (a weight set to NaN): extraction stops
    with one line naming how many rows and the first image, so nothing is
    computed from the features."""
    from mmengine.config import Config

    from mmbcssl.evaluation.features import (FeatureTransform,
                                             extract_features, knn_dataset)
    from mmbcssl.fileio import NonFiniteError
    model = init_backbone(CONFIG, None, seed=0)
    with torch.no_grad():
        next(model['backbone'].parameters()).fill_(float('nan'))
    transform = FeatureTransform.from_config(Config.fromfile(CONFIG), 36, 32)
    val = knn_dataset(osp.join(demo_data, 'imagenet'), 'val', 32, 36)
    first = val.get_data_info(0)['img_path']
    with pytest.raises(NonFiniteError) as e:
        extract_features(model, val, 40, transform=transform)
    assert str(e.value).startswith(
        f'{len(val)} of {len(val)} feature rows hold NaN/Inf (the first: '
        f'image {first});')


def test_knn_on_a_robustness_subset(demo_data, tmp_path):
    """--query: the demo's R-style set classified against the ImageNet-
    style train bank, votes restricted to its classes; equal to the same
    arithmetic done by hand on the extracted features."""
    from mmengine.config import Config

    from mmbcssl.evaluation.features import (FeatureTransform,
                                             extract_features, knn_dataset)
    from mmbcssl.evaluation.knn import (bank_classes, knn_classify,
                                        query_dataset)
    from mmbcssl.evaluation.outcomes import dataset_image_keys
    root = osp.join(demo_data, 'imagenet')
    ckpt = _save_random_init(tmp_path / 'bb.pth', seed=0)
    out = tmp_path / 'r.json'
    assert knn_eval.main([CONFIG, '--data-root', root, '--checkpoint', ckpt,
                          *SMALL, '--query', f'{demo_data}/imagenet-r',
                          '--query-classes', 'imagenet-r',
                          '--out', str(out)]) == 0
    result = json.loads(out.read_text())
    proto = result['fingerprint']['protocol']
    assert proto['query'] == 'imagenet-r'
    # checked against the official ImageNet-R list (the demo's R-style set
    # holds the demo classes of that list)
    assert proto['query_classes'] == 'imagenet-r'
    assert proto['class_restriction'].startswith('votes restricted')
    n_r = sum(len(f) for _, _, f in os.walk(f'{demo_data}/imagenet-r'))
    assert proto['images'] == dict(train=80, query=n_r)

    model = init_backbone(CONFIG, ckpt)
    transform = FeatureTransform.from_config(Config.fromfile(CONFIG), 36, 32)
    train = knn_dataset(root, 'train', 32, 36)
    bank, bank_y = extract_features(model, train, 40, normalize=True,
                                    dtype=torch.float16, transform=transform)
    classes = bank_classes(train)
    query = query_dataset(f'{demo_data}/imagenet-r', transform, classes)
    q, q_y = extract_features(model, query, 40, normalize=True,
                              dtype=torch.float16, transform=transform)
    cols = list(query.metainfo['class_indices'])
    scores = knn_classify(bank, bank_y, q, 10, ks=[5],
                          bank_dtype=torch.float16, normalized=True)[5]
    hits = scores[:, cols].argmax(1) == q_y
    expected = 100 * hits.double().mean()
    assert result['metrics']['knn/k5_top1'] == pytest.approx(
        float(expected))
    # per image: the restricted votes' top-1, keyed under the set's root
    _, outcomes = knn_outcomes(out)
    assert (outcomes.arrays['k5'] == hits.numpy()).all()
    assert outcomes.images == dataset_image_keys(query)
    assert outcomes.images[0].startswith('n') and len(
        outcomes.images) == n_r
    # max_queries keeps evenly spaced images
    assert len(query_dataset(f'{demo_data}/imagenet-r', transform, classes,
                             max_queries=3)) == min(3, n_r)
