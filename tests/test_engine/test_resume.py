"""Exact resumption of DINO training: a run interrupted after a mid-epoch
checkpoint and resumed with ``tools/train.py --resume`` computes the same
losses, bit for bit on CPU, as the run that was never interrupted. The same
resumption through mmengine's own loop does not (it restarts the epoch)."""
import json
import os.path as osp

import pytest
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from mmbcssl.cli import train as train_api
from tests.conftest import REPO_ROOT

DEMO = osp.join(REPO_ROOT, 'configs', 'dino', 'bcssl-t_9x9_100e_demo.py')
ITERS_PER_EPOCH = 4  # 8 images, batch 2


class Interrupted(Exception):
    pass


@HOOKS.register_module(force=True)
class LossRecorderForTest(Hook):
    """Appends each iteration's loss to ``<work_dir>/losses.json``; raises
    after iteration ``stop_after`` (0-based) to simulate a crash."""
    priority = 'NORMAL'

    def __init__(self, stop_after: int = -1) -> None:
        self.stop_after = stop_after

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        path = osp.join(runner.work_dir, 'losses.json')
        losses = json.load(open(path)) if osp.exists(path) else []
        losses.append([runner.iter, float(outputs['loss'])])
        with open(path, 'w') as f:
            json.dump(losses, f)
        if runner.iter == self.stop_after:
            raise Interrupted(f'stopped after iteration {runner.iter}')


def _config(tmp_path, demo_data, stop_after=-1, loop=None, workers=0):
    path = tmp_path / f'cfg_{stop_after}_{loop}.py'
    loop_arg = f", type='{loop}'" if loop else ''
    path.write_text(
        f'_base_ = {DEMO!r}\n'
        f'train_dataloader = dict(batch_size=2, num_workers={workers}, '
        'dataset=dict('
        f'data_root={demo_data + "/imagenet"!r}, indices=8))\n'
        f'train_cfg = dict(max_epochs=2{loop_arg})\n'
        # a checkpoint every 2 iterations: the first is mid-epoch
        'default_hooks = dict(checkpoint=dict(by_epoch=False, interval=2))\n'
        'custom_hooks = [dict(type="DINOTeacherHook"), '
        'dict(type="RNGStateHook"), '
        f'dict(type="LossRecorderForTest", stop_after={stop_after})]\n')
    return str(path)


def _losses(work):
    return json.load(open(osp.join(work, 'losses.json')))


@pytest.mark.parametrize('workers', [
    0,
    # the same with augmentation in 2 data-loader workers (passes; slower,
    # and the mechanism is the one tested above)
    pytest.param(2, marks=pytest.mark.slow),
])
def test_resumed_mid_epoch_equals_uninterrupted(demo_data, tmp_path,
                                                workers):
    ref = str(tmp_path / 'ref')
    assert train_api.main([_config(tmp_path, demo_data, workers=workers),
                           '--work-dir', ref]) == 0
    expected = _losses(ref)
    assert [i for i, _ in expected] == list(range(2 * ITERS_PER_EPOCH))

    # crash in iteration 2 of epoch 0, after the checkpoint at 2 iterations
    work = str(tmp_path / 'crash')
    with pytest.raises(Interrupted):
        train_api.main([_config(tmp_path, demo_data, stop_after=2,
                                workers=workers), '--work-dir', work])
    assert osp.exists(osp.join(work, 'iter_2.pth'))
    before = _losses(work)
    assert before == expected[:3]
    # resume (the latest checkpoint of the work dir): iterations 2..7
    assert train_api.main([_config(tmp_path, demo_data, workers=workers),
                           '--work-dir', work, '--resume']) == 0
    resumed = _losses(work)[3:]
    assert resumed == expected[2:]  # same iterations, same losses, exactly

    # mmengine's loop from the same checkpoint replays epoch 0 from its
    # first batch: other batches at those iterations, two epochs late
    plain = str(tmp_path / 'plain')
    with pytest.raises(Interrupted):
        train_api.main([_config(tmp_path, demo_data, stop_after=2,
                                loop='EpochBasedTrainLoop'),
                        '--work-dir', plain])
    assert train_api.main([_config(tmp_path, demo_data,
                                   loop='EpochBasedTrainLoop'),
                           '--work-dir', plain, '--resume']) == 0
    replayed = _losses(plain)[3:]
    assert len(replayed) == ITERS_PER_EPOCH + 2 + 2  # 10 iterations in all
    assert replayed[:len(resumed)] != resumed
