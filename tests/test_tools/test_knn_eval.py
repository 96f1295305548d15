"""tools/knn_eval.py: random-init baseline, extracted weights, the same
result from two processes through tools/dist_knn_eval.sh, bad input."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import torch

import mmbcssl  # noqa: F401
from mmbcssl.apis import init_backbone
from mmbcssl.cli import knn_eval
from tests.conftest import REPO_ROOT

CONFIG = osp.join(REPO_ROOT, 'configs', '_base_', 'models', 'bcssl-t_9x9.py')
SMALL = ['--img-size', '32', '--resize', '36', '--ks', '1', '5',
         '--batch-size', '40', '--num-workers', '0']


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
    assert set(outs[0]) == {'knn/k1_top1', 'knn/k1_top5', 'knn/k5_top1',
                            'knn/k5_top5'}
    assert outs[0] == outs[1]
    assert 0 <= outs[0]['knn/k5_top1'] <= 100


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
    one = str(tmp_path / 'one.json')
    assert knn_eval.main([CONFIG, *args, '--out', one]) == 0
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    two = str(tmp_path / 'two.json')
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(port),
               OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools', 'dist_knn_eval.sh'), CONFIG,
         '2', *args, '--out', two],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert '2 process(es)' in proc.stdout
    with open(one) as f, open(two) as g:
        single, dist = json.load(f), json.load(g)
    assert set(single) == set(dist)
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
