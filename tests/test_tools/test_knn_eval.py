"""tools/knn_eval.py: random-init baseline, extracted weights, bad input."""
import json
import os.path as osp

import torch

import mmbcssl  # noqa: F401
from mmbcssl.apis import knn_eval
from tests.conftest import REPO_ROOT

CONFIG = osp.join(REPO_ROOT, 'configs', '_base_', 'models', 'bcssl-t_9x9.py')
SMALL = ['--img-size', '32', '--resize', '36', '--ks', '1', '5',
         '--batch-size', '40']


def test_random_init_then_same_weights_from_a_checkpoint(demo_data,
                                                         tmp_path):
    root = osp.join(demo_data, 'imagenet')
    torch.manual_seed(0)
    model = knn_eval.build_feature_model(CONFIG, None)
    ckpt = str(tmp_path / 'bb.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               model['backbone'].state_dict().items()}},
               ckpt)
    outs = []
    for extra in ([], ['--checkpoint', ckpt]):
        out = str(tmp_path / f'm{len(outs)}.json')
        if not extra:
            torch.manual_seed(0)  # the same random init as the saved one
        assert knn_eval.main([CONFIG, '--data-root', root, '--out', out,
                              *SMALL, *extra]) == 0
        with open(out) as f:
            outs.append(json.load(f))
    assert set(outs[0]) == {'knn/k1_top1', 'knn/k1_top5', 'knn/k5_top1',
                            'knn/k5_top5'}
    assert outs[0] == outs[1]
    assert 0 <= outs[0]['knn/k5_top1'] <= 100


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
