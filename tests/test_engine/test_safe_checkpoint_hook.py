"""Checkpoints survive a save that is killed or runs out of disk, stale
temporary files go away, files get the user's umask and NaN weights are
never written. Every fault is real: a SIGKILL of a real training process, a
real full file system, real NaN values on disk."""
import glob
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

from mmbcssl.cli import train as train_api
from tests.conftest import REPO_ROOT

CONFIG = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'tiny_classifier.py')

# Imported by the training subprocess before tools/train.py runs: the save
# of one checkpoint stops after its bytes are in the temporary file, before
# the rename, and announces it, so that the test can SIGKILL the process in
# the middle of the save, deterministically.
SLOW_SAVE = '''
import os, time
_fsync = os.fsync
def fsync(fd):
    path = os.readlink(f'/proc/self/fd/{fd}')
    if os.path.basename(path).startswith('.' + os.environ['SLOW_SAVE'] + '.'):
        with open(os.environ['SLOW_SAVE_MARK'], 'w') as f:
            f.write(path)
        time.sleep(600)
    return _fsync(fd)
os.fsync = fsync
'''

# The same, one step later: the new checkpoint is renamed into place and
# last_checkpoint names it, and the process stops just before it deletes
# the checkpoint that the save retires.
SLOW_REMOVE = '''
import os, time
_remove = os.remove
def remove(path, *args, **kwargs):
    if os.path.basename(str(path)) == os.environ['SLOW_REMOVE']:
        with open(os.environ['SLOW_SAVE_MARK'], 'w') as f:
            f.write(str(path))
        time.sleep(600)
    return _remove(path, *args, **kwargs)
os.remove = remove
'''


def _options(root, max_iters, keep):
    return [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'train_cfg.max_iters={max_iters}', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=1',
        f'default_hooks.checkpoint.max_keep_ckpts={keep}'
    ]


def _checkpoints(work):
    return sorted(f for f in os.listdir(work) if f.endswith('.pth'))


def _parts(work):
    return sorted(glob.glob(osp.join(work, '.*.part')))


def _start_killable_run(demo_data, tmp_path, keep, at='write'):
    """tools/train.py with max_keep_ckpts=``keep``, started so that it
    stops in the first save that retires an older checkpoint: in the
    middle of writing the new one (``at='write'``), or after its rename,
    just before deleting the old one (``at='remove'``). Returns the process
    and what the checks need."""
    root = osp.join(demo_data, 'imagenet')
    tmp_path.mkdir()
    work = str(tmp_path / 'work')
    (tmp_path / 'slow_save.py').write_text(
        SLOW_SAVE if at == 'write' else SLOW_REMOVE)
    mark = str(tmp_path / 'saving')
    killed = f'iter_{keep + 1}.pth'  # the first save that retires one
    env = dict(os.environ, SLOW_SAVE=killed, SLOW_SAVE_MARK=mark,
               SLOW_REMOVE='iter_1.pth',
               PYTHONPATH=f'{tmp_path}{os.pathsep}{REPO_ROOT}',
               OMP_NUM_THREADS='1')
    argv = [CONFIG, '--work-dir', work, '--no-validate', '--cfg-options',
            *_options(root, keep + 1, keep)]
    runner = ('import runpy, sys, slow_save; sys.argv = sys.argv[1:]; '
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    log = tmp_path / 'train.log'
    with open(log, 'wb') as out:
        proc = subprocess.Popen(
            [sys.executable, '-c', runner,
             osp.join(REPO_ROOT, 'tools', 'train.py'), *argv],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    return dict(proc=proc, mark=mark, log=log, work=work, argv=argv,
                keep=keep)


def _kill_when_marked(runs):
    deadline = time.time() + 180
    for run in runs:
        proc = run['proc']
        while not osp.exists(run['mark']) and proc.poll() is None \
                and time.time() < deadline:
            time.sleep(0.2)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_sigkill_mid_save_keeps_every_checkpoint(demo_data, tmp_path):
    """max_keep_ckpts 1 and 2, side by side: each run is SIGKILLed while
    it writes the checkpoint whose save would retire the oldest."""
    runs = [_start_killable_run(demo_data, tmp_path / f'keep{keep}', keep)
            for keep in (1, 2)]
    _kill_when_marked(runs)
    for run in runs:
        keep, work = run['keep'], run['work']
        assert osp.exists(run['mark']), run['log'].read_text()[-3000:]
        assert run['proc'].returncode == -signal.SIGKILL

        # all `keep` earlier checkpoints are there and load, and the work
        # dir points at the newest of them
        assert _checkpoints(work) == [
            f'iter_{i}.pth' for i in range(1, keep + 1)]
        for name in _checkpoints(work):
            assert _load_checkpoint(osp.join(work, name))['meta']['iter'] \
                == int(name[5:-4])
        with open(osp.join(work, 'last_checkpoint')) as f:
            assert f.read().strip() == osp.join(work, f'iter_{keep}.pth')
        assert [osp.basename(p).split('.pth')[0] for p in _parts(work)] == \
            [f'.iter_{keep + 1}']  # the killed write

        # resuming continues from it, cleans the stale file and keeps
        # `keep`
        assert train_api.main([*run['argv'], '--resume']) == 0
        assert _parts(work) == []
        assert _checkpoints(work) == [
            f'iter_{i}.pth' for i in range(2, keep + 2)]


def test_sigkill_between_rename_and_delete_leaves_no_extra_checkpoint(
        demo_data, tmp_path):
    """max_keep_ckpts 1 and 2: SIGKILL after the new checkpoint and
    last_checkpoint are in place, before the retired one is deleted. The
    resumed run no longer lists the retired file (its recorded steps came
    from the new checkpoint), so it is found on disk at the next save."""
    runs = [_start_killable_run(demo_data, tmp_path / f'keep{keep}', keep,
                                at='remove') for keep in (1, 2)]
    _kill_when_marked(runs)
    root = osp.join(demo_data, 'imagenet')
    for run in runs:
        keep, work = run['keep'], run['work']
        assert osp.exists(run['mark']), run['log'].read_text()[-3000:]
        assert run['proc'].returncode == -signal.SIGKILL
        # one checkpoint too many, and last_checkpoint names the new one
        assert _checkpoints(work) == [
            f'iter_{i}.pth' for i in range(1, keep + 2)]
        with open(osp.join(work, 'last_checkpoint')) as f:
            assert f.read().strip() == osp.join(work, f'iter_{keep + 1}.pth')

        # the resumed run saves one more and keeps exactly `keep`
        argv = [*run['argv'][:-len(_options(root, 0, 0))],
                *_options(root, keep + 2, keep), '--resume']
        assert train_api.main(argv) == 0
        assert _checkpoints(work) == [
            f'iter_{i}.pth' for i in range(3, keep + 3)]
        logs = ''.join(open(p).read()
                       for p in glob.glob(osp.join(work, '*', '*.log')))
        assert f'removed {osp.join(work, "iter_1.pth")}: older than the ' \
            f'newest {keep} checkpoints (max_keep_ckpts)' in logs


def test_cleanup_on_disk_touches_only_this_runs_old_checkpoints(tmp_path):
    """The files named like this run's checkpoints, numbered up to the
    step just saved, beyond the newest max_keep_ckpts, and not the one
    last_checkpoint names: nothing else."""
    from mmbcssl.engine.hooks import SafeCheckpointHook
    from mmengine.fileio.backends import LocalBackend
    names = ['iter_1.pth', 'iter_2.pth', 'iter_3.pth', 'iter_5.pth',
             'iter_8.pth', 'iter_9.pth', 'iter_12.pth', 'epoch_3.pth',
             'best_accuracy_top1_iter_4.pth', 'iter_5.pth.bak', 'notes.txt',
             'xiter_6.pth', '.iter_6.pth.abc.part']
    for name in names:
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / 'iter_7.pth').mkdir()  # not a file: left alone
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'sub' / 'iter_1.pth').write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))

    class Runner:
        work_dir = str(tmp_path)

    hook = SafeCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=2)
    hook.file_backend, hook.out_dir = LocalBackend(), str(tmp_path)
    hook.last_ckpt = str(tmp_path / 'iter_9.pth')
    removed = hook._remove_outdated_on_disk(Runner, 9)
    assert sorted(osp.basename(p) for p in removed) == [
        'iter_1.pth', 'iter_3.pth', 'iter_5.pth']
    assert sorted(os.listdir(tmp_path)) == sorted(
        set(names) - {'iter_1.pth', 'iter_3.pth', 'iter_5.pth'}
        | {'iter_7.pth', 'sub', 'last_checkpoint'})
    assert os.listdir(tmp_path / 'sub') == ['iter_1.pth']
    # max_keep_ckpts=-1 (keep all): nothing
    hook.max_keep_ckpts = -1
    assert hook._remove_outdated_on_disk(Runner, 12) == []


@pytest.fixture(scope='module')
def first_run(demo_data, tmp_path_factory):
    """A work dir after one iteration, with iter_1.pth."""
    root = osp.join(demo_data, 'imagenet')
    first = str(tmp_path_factory.mktemp('first'))
    assert train_api.main([CONFIG, '--work-dir', first, '--no-validate',
                           '--cfg-options', *_options(root, 1, 1)]) == 0
    return first


def test_disk_full_during_save_keeps_the_last_checkpoint(
        demo_data, tmp_path, unshare_tmpfs, first_run):
    """max_keep_ckpts=1: mmengine's own hook deletes iter_1 before writing
    iter_2; on a full disk that leaves no checkpoint at all."""
    root = osp.join(demo_data, 'imagenet')
    first = first_run
    size = osp.getsize(osp.join(first, 'iter_1.pth'))
    used = sum(osp.getsize(osp.join(d, f)) for d, _, fs in os.walk(first)
               for f in fs)
    # room for what is there and half a checkpoint more
    kib = (used + size // 2) // 1024 + 64
    disk, out = tmp_path / 'disk', tmp_path / 'after'
    disk.mkdir()
    # the disk fills up after tools/train.py checked its free space
    # (another process writing there): the check is switched off, so that
    # the save itself meets the full disk
    train = ('import sys; from mmbcssl.cli import train; '
             'train.check_checkpoint_space = lambda runner: None; '
             'sys.exit(train.main(sys.argv[1:]))')
    script = (f'mount -t tmpfs -o size={kib}k tmpfs {disk} && '
              f'cp -a {first}/. {disk}/ && '
              f'{sys.executable} -c "{train}" {CONFIG} '
              f'--work-dir {disk} --resume --no-validate --cfg-options '
              f'{" ".join(_options(root, 2, 1))}; rc=$?; '
              f'mkdir -p {out} && cp -a {disk}/. {out}/; exit $rc')
    proc = subprocess.run([*unshare_tmpfs, 'sh', '-c', script],
                          capture_output=True, text=True, cwd=REPO_ROOT,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT),
                          timeout=300)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert err[-1].startswith('error: no space left on the device while '
                              f'writing {disk}/iter_2.pth')
    assert 'Traceback' not in proc.stderr
    # the checkpoint from before is intact, nothing half-written is left
    assert _checkpoints(str(out)) == ['iter_1.pth']
    ckpt = _load_checkpoint(str(out / 'iter_1.pth'))
    assert ckpt['meta']['iter'] == 1
    assert _parts(str(out)) == []


@pytest.mark.parametrize('umask', [0o022, 0o027])
def test_checkpoint_mode_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = str(tmp_path / 'epoch_1.pth')
        save_checkpoint({'state_dict': {'w': torch.ones(1)}}, path)
        plain = str(tmp_path / 'plain')
        open(plain, 'w').close()
    finally:
        os.umask(old)
    mode = os.stat(path).st_mode & 0o777
    assert mode == 0o666 & ~umask == os.stat(plain).st_mode & 0o777


def test_nan_weights_are_never_written(demo_data, tmp_path, capsys,
                                       first_run):
    """A model loaded with a NaN in a BN running variance trains with
    finite losses (BN uses batch statistics) but would save NaN."""
    root = osp.join(demo_data, 'imagenet')
    ckpt = torch.load(osp.join(first_run, 'iter_1.pth'), weights_only=False)
    ckpt['state_dict']['backbone.bn1.running_var'][0] = float('nan')
    bad = str(tmp_path / 'nan.pth')
    torch.save({'state_dict': ckpt['state_dict']}, bad)

    work = str(tmp_path / 'work')
    code = train_api.main([CONFIG, '--work-dir', work, '--no-validate',
                           '--cfg-options', f'load_from={bad}',
                           *_options(root, 2, 1)])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.splitlines() == [err]
    assert 'NaN/Inf in 1 tensors (first: backbone.bn1.running_var)' in err
    assert 'no checkpoint was written' in err
    assert _checkpoints(work) == []


def test_unknown_hook_argument_is_refused_when_built():
    from mmbcssl.engine.hooks import SafeCheckpointHook
    from mmbcssl.utils.config_checks import ConfigError
    with pytest.raises(ConfigError, match="'intervl' .did you mean "
                       "'interval'"):
        SafeCheckpointHook(intervl=1)
    assert SafeCheckpointHook(interval=2, max_keep_ckpts=1).interval == 2


def test_stale_parts_only_of_this_folder_are_removed(tmp_path):
    from mmbcssl.fileio import remove_stale_temp_files
    keep = tmp_path / 'sub'
    keep.mkdir()
    for name in ('.epoch_1.pth.abc.part', '.last_checkpoint.x.part'):
        (tmp_path / name).write_bytes(b'x')
    (keep / '.epoch_2.pth.abc.part').write_bytes(b'x')
    (tmp_path / 'epoch_1.pth').write_bytes(b'x')
    removed = remove_stale_temp_files(str(tmp_path))
    assert sorted(osp.basename(p) for p in removed) == [
        '.epoch_1.pth.abc.part', '.last_checkpoint.x.part']
    assert sorted(os.listdir(tmp_path)) == ['epoch_1.pth', 'sub']
    assert os.listdir(keep) == ['.epoch_2.pth.abc.part']
    shutil.rmtree(keep)


def test_rng_states_are_gathered_on_every_rank_not_in_the_save(
        monkeypatch, tmp_path):
    """mmengine calls before_save_checkpoint on rank 0 only, so a gather
    there hangs a distributed run. RNGStateHook gathers in
    collect_for_checkpoint, which SafeCheckpointHook calls on every rank
    before each save (the 2-process run: test_entry_tools.py,
    test_dino_demo_on_two_processes_and_a_dead_rank); without it, a
    distributed save holds no states and does no collective."""
    from mmbcssl.engine.hooks import rng_state_hook
    gathers = []

    def gather(obj):
        gathers.append(obj)
        return [obj, obj]

    monkeypatch.setattr(rng_state_hook.dist, 'all_gather_object', gather)
    monkeypatch.setattr(rng_state_hook.dist, 'get_world_size', lambda: 2)
    hook = rng_state_hook.RNGStateHook()

    class Runner:
        hooks = [hook]
        model = torch.nn.Linear(2, 2)

    from mmbcssl.engine.hooks import SafeCheckpointHook
    from mmengine.fileio.backends import LocalBackend
    saver = SafeCheckpointHook(interval=1)
    saver.file_backend, saver.out_dir = LocalBackend(), str(tmp_path)
    with saver._removals_after_save(Runner):
        checkpoint = {}
        hook.before_save_checkpoint(Runner, checkpoint)
    assert len(gathers) == 1 and len(checkpoint['rng_state']) == 2
    # the next save, from a hook that does not collect: nothing gathered
    checkpoint = {}
    hook.before_save_checkpoint(Runner, checkpoint)
    assert len(gathers) == 1 and 'rng_state' not in checkpoint


def test_checkpoint_size_estimate_matches_a_real_checkpoint(first_run):
    """The free-space check's estimate against the checkpoint tools/train.py
    wrote (SGD with momentum: weights + one buffer per parameter, meta and
    message hub): within the estimate's stated overhead."""
    from mmengine.config import Config

    from mmbcssl.utils.free_space import OVERHEAD, checkpoint_bytes
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(CONFIG)
    model = MODELS.build(cfg.model)
    estimate = checkpoint_bytes(model, cfg.optim_wrapper.optimizer)
    size = osp.getsize(osp.join(first_run, 'iter_1.pth'))
    assert estimate <= size <= estimate + OVERHEAD
    assert estimate > 0.9 * size
    # without the momentum buffers the estimate would be about half
    assert checkpoint_bytes(model, dict(type='SGD')) < 0.6 * size


def test_checkpoint_size_estimate_counts_adam_state(tmp_path):
    """AdamW keeps two tensors per trainable parameter: a real optimizer
    after one step, saved with mmengine, is within the estimate's
    overhead; frozen parameters get no state."""
    from mmbcssl.utils.free_space import OVERHEAD, checkpoint_bytes
    model = torch.nn.Sequential(torch.nn.Linear(64, 256),
                                torch.nn.Linear(256, 10))
    model[0].requires_grad_(False)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model(torch.randn(4, 64)).sum().backward()
    optimizer.step()
    path = str(tmp_path / 'ckpt.pth')
    save_checkpoint({'state_dict': model.state_dict(),
                     'optimizer': optimizer.state_dict()}, path)
    estimate = checkpoint_bytes(model, dict(type='AdamW', lr=1e-3))
    size = osp.getsize(path)
    assert estimate <= size <= estimate + OVERHEAD
    frozen = sum(p.numel() * 4 for p in model[0].parameters())
    trainable = sum(p.numel() * 4 for p in model[1].parameters())
    assert estimate == frozen + 3 * trainable
