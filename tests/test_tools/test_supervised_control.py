"""The demo's supervised control ranks above the random initialisation.

ResNet-18 trained with labels on the demo train split
(``configs/supervised/resnet18_1xb32-adamw-8e_in1k-demo.py``, as
``bash tools/demo.sh`` trains it), with seed 0 and with seed 1: the k-NN
top-1 (k=20) of each on the demo val set lies above the random
initialisations' (ResNet-18 and BC-SSL-T 9x9, seed 0) with the two 95%
exact (Clopper-Pearson) intervals apart. The k-NN is the demo suite's
(``configs/suites/demo.py``, its ``knn`` entry).
"""
import os.path as osp

import pytest
from mmengine.config import Config

from tests.conftest import REPO_ROOT

SUPERVISED = osp.join(REPO_ROOT, 'configs', 'supervised',
                      'resnet18_1xb32-adamw-8e_in1k-demo.py')
RANDOM_INITS = (SUPERVISED,
                osp.join(REPO_ROOT, 'configs', 'dino',
                         'bcssl-t_9x9_100e_demo.py'))
DEMO_SUITE = osp.join(REPO_ROOT, 'configs', 'suites', 'demo.py')


@pytest.fixture(scope='module')
def demo_imagenet(tmp_path_factory):
    """The demo classification set at the demo's sizes (the other sets
    as small as they go: they are not read)."""
    from mmbcssl.datasets.demo import DemoSizes, make_demo_data
    out = str(tmp_path_factory.mktemp('demo_control'))
    make_demo_data(out, DemoSizes(coco_train=1, coco_val=1, coco_size=64,
                                  robust_per_class=1, c_per_class=1),
                   seed=0, log=lambda msg: None)
    return osp.join(out, 'imagenet')


def knn_top1(config, checkpoint, root):
    """(correct, total) of the demo suite's k-NN at k=20 on the val set."""
    from mmbcssl.apis import init_backbone
    from mmbcssl.apis.inference import load_model_config
    from mmbcssl.evaluation.features import FeatureTransform
    from mmbcssl.evaluation.knn import KNNProtocol, run_knn
    knn = Config.fromfile(DEMO_SUITE).knn
    cfg = load_model_config(config)
    transform = FeatureTransform.from_config(cfg, knn.resize, knn.img_size)
    model = init_backbone(cfg, checkpoint, seed=0, deploy=True)
    query = transform.dataset(root, 'val')
    result = run_knn(model, KNNProtocol(ks=(20, ),
                                        batch_size=knn.batch_size),
                     transform, transform.dataset(root, 'train'), query)
    total = len(query)
    return round(result.metrics['knn/k20_top1'] * total / 100), total


def interval(correct, total):
    from scipy.stats import binomtest
    ci = binomtest(correct, total).proportion_ci(confidence_level=0.95,
                                                 method='exact')
    return ci.low, ci.high


@pytest.fixture(scope='module')
def random_init_upper(demo_imagenet):
    """The highest upper 95% bound of the random initialisations."""
    return max(interval(*knn_top1(c, None, demo_imagenet))[1]
               for c in RANDOM_INITS)


@pytest.mark.parametrize('seed', [0, 1])
def test_supervised_control_beats_random_init(seed, demo_imagenet,
                                              random_init_upper, tmp_path):
    from mmbcssl.cli import train
    work = str(tmp_path / f'seed{seed}')
    assert train.main([
        SUPERVISED, '--work-dir', work, '--no-validate', '--cfg-options',
        f'randomness.seed={seed}',
        f'train_dataloader.dataset.data_root={demo_imagenet}'
    ]) == 0
    with open(osp.join(work, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    correct, total = knn_top1(SUPERVISED, checkpoint, demo_imagenet)
    low, _ = interval(correct, total)
    assert low > random_init_upper, (
        f'seed {seed}: k-NN top-1 {correct}/{total}, lower 95% bound '
        f'{low:.3f}, random init upper bound {random_init_upper:.3f}')
