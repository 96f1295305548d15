"""KNNMonitorHook: the teacher's k-NN curve during pre-training is what
tools/knn_eval.py reports for the same weights, both through run_knn;
modes are restored; the distributed feature gather returns the
single-process bank."""
import json
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.visualization import Visualizer
from mmpretrain.registry import MODELS

import mmbcssl  # noqa: F401
from mmbcssl.apis import init_backbone
from mmbcssl.cli import knn_eval
from mmbcssl.engine.hooks import KNNMonitorHook, knn_monitor_hook
from mmbcssl.evaluation.features import (FeatureTransform, extract_features,
                                         knn_dataset)
from mmbcssl.utils.data_checks import DataLayoutError
from tests.conftest import REPO_ROOT, free_port

DINO_DEMO = osp.join(REPO_ROOT, 'configs', 'dino', 'bcssl-t_9x9_100e_demo.py')
# BC-SSL-T's config on a narrow backbone, and the DINO demo on the same
# one: the hook's mechanics do not depend on the width
BACKBONE_CFG = osp.join(REPO_ROOT, 'tests', 'data', 'configs',
                        'narrow_bcssl.py')
SIZES = dict(img_size=32, resize=36, ks=(1, 5), batch_size=40)
IMAGENET = FeatureTransform.from_config(Config.fromfile(BACKBONE_CFG), 36, 32)


def _runner(model, work_dir, epoch, max_epochs=3):
    return SimpleNamespace(
        model=model, epoch=epoch, max_epochs=max_epochs, work_dir=work_dir,
        cfg=Config.fromfile(DINO_DEMO),
        message_hub=MessageHub.get_instance('knn_hook_test'),
        visualizer=Visualizer.get_instance('knn_hook_test'))


def _dino():
    cfg = Config.fromfile(DINO_DEMO)
    narrow = Config.fromfile(BACKBONE_CFG).model.backbone.arch
    cfg.model.backbone.arch = narrow
    cfg.model.head.in_channels = narrow.channels[-1]
    model = MODELS.build(cfg.model)
    model.init_weights()
    # a teacher that differs from the student, as after some training
    with torch.no_grad():
        for p in model.teacher.backbone.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


def _spy(monkeypatch, module):
    """Record the results of ``module.run_knn``."""
    results = []

    def spy(*args, **kwargs):
        results.append(run_knn(*args, **kwargs))
        return results[-1]

    run_knn = module.run_knn
    monkeypatch.setattr(module, 'run_knn', spy)
    return results


def test_curve_equals_knn_eval_through_run_knn_and_modes_are_restored(
        demo_data, tmp_path, monkeypatch):
    root = osp.join(demo_data, 'imagenet')
    model = _dino()
    model.train()
    hook_calls = _spy(monkeypatch, knn_monitor_hook)
    cli_calls = _spy(monkeypatch, knn_eval)
    hook = KNNMonitorHook(root, interval=2, num_workers=0, **SIZES)
    hook.before_train(_runner(model, str(tmp_path), 0))
    hook.after_train_epoch(_runner(model, str(tmp_path), 0))  # epoch 1: no
    curve_file = tmp_path / 'knn_curve.json'
    assert not curve_file.exists()
    hook.after_train_epoch(_runner(model, str(tmp_path), 1))  # epoch 2
    assert all(m.training for m in model.teacher.modules())
    curve = json.loads(curve_file.read_text())
    assert [p['epoch'] for p in curve] == [2]

    # tools/knn_eval.py on the same teacher weights gives the same numbers
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': {
        f'teacher.backbone.{k}': v
        for k, v in model.teacher.backbone.state_dict().items()
    }}, ckpt)
    out = str(tmp_path / 'knn.json')
    assert knn_eval.main([
        BACKBONE_CFG, '--data-root', root, '--checkpoint', ckpt, '--out', out,
        '--img-size', '32', '--resize', '36', '--ks', '1', '5',
        '--batch-size', '40', '--num-workers', '0'
    ]) == 0
    with open(out) as f:
        expected = json.load(f)["metrics"]
    got = {k: v for k, v in curve[0].items() if k != 'epoch'}
    # one function, the same protocol and input: the same numbers, exactly
    assert len(hook_calls) == len(cli_calls) == 1
    assert got == expected == cli_calls[0].metrics == hook_calls[0].metrics
    assert hook_calls[0].protocol['transform'] == \
        cli_calls[0].protocol['transform']
    # the last epoch is always evaluated
    hook.after_train_epoch(_runner(model, str(tmp_path), 2))
    assert [p['epoch'] for p in json.loads(curve_file.read_text())] == [2, 3]


def test_misspelt_protocol_setting_is_refused():
    with pytest.raises(ValueError, match="unknown setting.*half_bank.*"
                       "accepted.*bank_dtype"):
        KNNMonitorHook('data/imagenet', half_bank=False)


def test_missing_data_root_fails_before_training(tmp_path):
    hook = KNNMonitorHook(str(tmp_path / 'nowhere'))
    with pytest.raises(DataLayoutError, match='train,val'):
        hook.before_train(_runner(None, str(tmp_path), 0))


def _extract_on_rank(rank, world, port, root, out_dir):
    # forked from the test process (no re-import): one thread each, as a
    # data worker, so the OpenMP pool of the parent is never touched
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
        world_size=world)
    torch.manual_seed(0)
    net = init_backbone(BACKBONE_CFG, None)
    feats, labels = extract_features(net, knn_dataset(root, 'val', 32, 36),
                                     batch_size=7, transform=IMAGENET)
    torch.save((feats, labels), osp.join(out_dir, f'rank{rank}.pt'))
    torch.distributed.destroy_process_group()


def test_distributed_extraction_equals_single_process(demo_data, tmp_path):
    """3 gloo processes (so the shards are uneven): every process ends with
    the single-process bank, in data set order."""
    root = osp.join(demo_data, 'imagenet')
    mp.start_processes(_extract_on_rank,
                       args=(3, free_port(), root, str(tmp_path)),
                       nprocs=3, start_method='fork')
    torch.manual_seed(0)
    net = init_backbone(BACKBONE_CFG, None)
    ref_f, ref_y = extract_features(net, knn_dataset(root, 'val', 32, 36),
                                    batch_size=7, transform=IMAGENET)
    assert len(ref_y) % 3 != 0  # uneven shards are exercised
    for rank in range(3):
        feats, labels = torch.load(tmp_path / f'rank{rank}.pt')
        torch.testing.assert_close(labels, ref_y, rtol=0, atol=0)
        torch.testing.assert_close(feats, ref_f, rtol=1e-5, atol=1e-5)
