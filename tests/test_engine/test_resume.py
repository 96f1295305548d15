"""Exact resumption of DINO training: a run interrupted after a mid-epoch
checkpoint and resumed with ``tools/train.py --resume`` computes the same
losses, bit for bit on CPU, as the run that was never interrupted. The same
resumption through mmengine's own loop does not (it restarts the epoch)."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from mmbcssl.cli import train as train_api
from tests.conftest import REPO_ROOT
from tests.data.recording_hooks import Interrupted

# The DINO demo recipe on a narrow BC-SSL: the resumption mechanics do not
# depend on the width.
DEMO = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'narrow_dino_demo.py')
ITERS_PER_EPOCH = 4  # 8 images, batch 2


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
        f'dict(type="RecordLossAndKillHook", raise_after={stop_after})]\n')
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


def _subprocess_config(tmp_path, demo_data, kill_after=-1, imports=True):
    """2 epochs of 4 iterations, 2 persistent data workers, a checkpoint
    every 2 iterations: iter_6.pth is in the middle of epoch 1. A
    subprocess imports the hooks module by name (``imports``); here it is
    registered already."""
    path = tmp_path / f'cfg_kill{kill_after}.py'
    path.write_text(
        f'_base_ = {DEMO!r}\n' +
        ("custom_imports = dict(imports=['mmbcssl', 'recording_hooks'], "
         'allow_failed_imports=False)\n' if imports else '') +
        'train_dataloader = dict(batch_size=2, num_workers=2, '
        'persistent_workers=True, dataset=dict('
        f'data_root={demo_data + "/imagenet"!r}, indices=8))\n'
        'train_cfg = dict(max_epochs=2)\n'
        'default_hooks = dict(checkpoint=dict(by_epoch=False, interval=2, '
        'max_keep_ckpts=-1))\n'
        'custom_hooks = [dict(type="DINOTeacherHook"), '
        'dict(type="RNGStateHook"), '
        f'dict(type="RecordLossAndKillHook", kill_after={kill_after})]\n')
    return str(path)


def _start_training(config, work, *extra):
    # the hooks module by its own name: a `tests` package of an installed
    # distribution could shadow the repository's
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=osp.join(REPO_ROOT, 'tests', 'data'))
    return subprocess.Popen(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), config,
         '--work-dir', work, *extra], cwd=REPO_ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(proc):
    _, err = proc.communicate(timeout=900)
    return proc.returncode, err or ''


def test_sigkill_and_resume_with_persistent_workers(demo_data, tmp_path):
    """A real SIGKILL in epoch 1 of a run whose 2 data workers persist
    across epochs, then --resume from the mid-epoch checkpoint: the same
    losses and, at the end, every tensor of the model, optimizer state
    included, equal to the uninterrupted run's."""
    from mmengine.runner.checkpoint import _load_checkpoint
    ref = str(tmp_path / 'ref')
    work = str(tmp_path / 'killed')
    # the uninterrupted and the killed run side by side (one thread each)
    ref_proc = _start_training(_subprocess_config(tmp_path, demo_data), ref)
    killed = _start_training(
        _subprocess_config(tmp_path, demo_data, kill_after=6), work)
    code, err = _finish(ref_proc)
    assert code == 0, err[-3000:]
    expected = _losses(ref)
    assert [i for i, _ in expected] == list(range(2 * ITERS_PER_EPOCH))

    code, err = _finish(killed)
    assert code == -9, err[-3000:]  # SIGKILL, not an exception
    assert osp.exists(osp.join(work, 'iter_6.pth'))
    assert not osp.exists(osp.join(work, 'iter_8.pth'))
    assert _losses(work) == expected[:7]
    # the resumed run, here (its import would cost as much as the run),
    # on one thread like the two above
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train_api.main([
            _subprocess_config(tmp_path, demo_data, imports=False),
            '--work-dir', work, '--resume']) == 0
    finally:
        torch.set_num_threads(threads)
    assert _losses(work)[7:] == expected[6:]  # iterations 6 and 7 again

    a = _load_checkpoint(osp.join(ref, 'iter_8.pth'), map_location='cpu')
    b = _load_checkpoint(osp.join(work, 'iter_8.pth'), map_location='cpu')
    differ = [k for k in a['state_dict']
              if not torch.equal(a['state_dict'][k], b['state_dict'][k])]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:3]}'
    for sa, sb in zip(a['optimizer']['state'].values(),
                      b['optimizer']['state'].values()):
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]),
                               torch.as_tensor(sb[k])), k
