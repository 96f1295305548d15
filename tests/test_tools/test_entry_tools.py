"""tools/train.py, tools/test.py and tools/dist_train.sh, run for real on a
tiny config and the generated demo data. (tools/train.py as a command of its
own: the SIGKILL test in tests/test_engine/test_resume.py and the torchrun
launches here.)"""
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmbcssl.cli import test as test_api
from mmbcssl.cli import train as train_api
from tests.conftest import REPO_ROOT, free_port

CONFIG = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'tiny_classifier.py')


def _data_options(root):
    return [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
    ]


@pytest.fixture(scope='module')
def trained(demo_data, tmp_path_factory):
    """One 2-iteration training run through tools/train.py's main()."""
    work_dir = str(tmp_path_factory.mktemp('train'))
    root = osp.join(demo_data, 'imagenet')
    code = train_api.main(
        [CONFIG, '--work-dir', work_dir, '--cfg-options',
         *_data_options(root)])
    assert code == 0
    return work_dir, root


def test_train_writes_a_loadable_checkpoint(trained):
    work_dir, _ = trained
    ckpt_path = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt_path)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read().strip().endswith('iter_2.pth')
    # Safe loading (no --trust-checkpoint) of what the runner saved,
    # message hub included.
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = _load_checkpoint(ckpt_path, map_location='cpu')
    assert ckpt['meta']['iter'] == 2
    assert 'message_hub' in ckpt and 'optimizer' in ckpt


def test_test_tool_reports_metrics(trained, tmp_path, capsys):
    work_dir, root = trained
    out = str(tmp_path / 'metrics.json')
    dump = str(tmp_path / 'preds.pkl')
    code = test_api.main([
        CONFIG, osp.join(work_dir, 'iter_2.pth'), '--work-dir',
        str(tmp_path), '--out', out, '--dump', dump, '--cfg-options',
        *_data_options(root)
    ])
    assert code == 0
    with open(out) as f:
        result = json.load(f)
    assert 0 <= result['metrics']['accuracy/top1'] <= 100
    assert osp.getsize(dump) > 0
    # the protocol fingerprint: what was evaluated, how, with what
    fp = result['fingerprint']
    ckpt = osp.join(work_dir, 'iter_2.pth')
    assert fp['checkpoint']['sha256'] == hashlib.sha256(
        open(ckpt, 'rb').read()).hexdigest()
    proto = fp['protocol']
    assert proto['task'] == 'classification'
    assert proto['class_restriction'] == 'none'
    assert proto['transform'] == [
        'ResizeEdge({"edge": "short", "scale": 36})', 'CenterCrop(32)']
    assert proto['images'] == 40  # the test data's val set
    assert fp['run'] == dict(global_batch=8, world_size=1, seed=0,
                             data_root=f'{root}')
    assert fp['code'] and fp['protocol_id']
    # which val images were right at top-1, beside the result: their mean
    # is the stored top-1, keyed by the val images in the data set's order
    images, hits = _outcomes(out, result)
    assert images == _val_images(root)
    assert 100.0 * hits.mean() == pytest.approx(
        result['metrics']['accuracy/top1'], rel=1e-6)
    assert osp.isfile(str(tmp_path / 'metrics.outcomes.npz'))

    # an existing result is never replaced without --overwrite
    before = open(out).read()
    args = [CONFIG, ckpt, '--work-dir', str(tmp_path), '--out', out,
            '--cfg-options', *_data_options(root)]
    assert test_api.main(args) == 2
    assert 'exists already (--out)' in capsys.readouterr().err
    assert open(out).read() == before
    assert test_api.main(args + ['--overwrite']) == 0


def _outcomes(out, result):
    """(image keys, top-1 hits) of a tools/test.py result, checked against
    the recomputation its outcomes file states."""
    from mmbcssl.evaluation.outcomes import read_outcomes
    outcomes = read_outcomes(out, result['outcomes'])
    (entry, ) = outcomes.meta['metrics'].values()
    assert entry == dict(statistic='accuracy', arrays=['top1'], scale=100.0)
    return outcomes.images, outcomes.arrays['top1']


def _val_images(root):
    with open(osp.join(root, 'meta', 'val.txt')) as f:
        return [osp.join('val', line.split()[0]) for line in f]


def test_two_test_processes_keep_the_same_outcomes(trained, tmp_path):
    """tools/dist_test.sh on 2 gloo CPU processes: each sees half the val
    set; the outcomes are gathered in the data set's order, image for
    image those of one process."""
    work_dir, root = trained
    ckpt = osp.join(work_dir, 'iter_2.pth')
    one, two = str(tmp_path / 'one.json'), str(tmp_path / 'two.json')
    assert test_api.main([CONFIG, ckpt, '--work-dir', str(tmp_path / 'w1'),
                          '--out', one, '--cfg-options',
                          *_data_options(root)]) == 0
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools', 'dist_test.sh'), CONFIG, ckpt,
         '2', '--work-dir', str(tmp_path / 'w2'), '--out', two,
         '--cfg-options', *_data_options(root),
         'test_dataloader.num_workers=0'],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    results = [json.load(open(p)) for p in (one, two)]
    assert results[1]['fingerprint']['run']['world_size'] == 2
    images, hits = _outcomes(one, results[0])
    images2, hits2 = _outcomes(two, results[1])
    assert images2 == images == _val_images(root)
    assert hits2.tolist() == hits.tolist()
    assert 100.0 * hits2.mean() == pytest.approx(
        results[1]['metrics']['accuracy/top1'], rel=1e-6)


def test_resume_continues_from_the_checkpoint(trained, tmp_path):
    work_dir, root = trained
    code = train_api.main([
        CONFIG, '--work-dir', str(tmp_path), '--resume',
        osp.join(work_dir, 'iter_2.pth'), '--cfg-options',
        'train_cfg.max_iters=3', 'default_hooks.checkpoint.interval=1',
        *_data_options(root)
    ])
    assert code == 0
    # The resumed run starts at iteration 2, so it saves only iteration 3.
    saved = sorted(f for f in os.listdir(tmp_path) if f.endswith('.pth'))
    assert saved == ['iter_3.pth']


# the DINO demo recipe on a narrow BC-SSL: what is tested is the launch,
# the SyncBN and the failure handling
DINO_DEMO = osp.join(REPO_ROOT, 'tests', 'data', 'configs',
                     'narrow_dino_demo.py')


def test_dino_demo_on_two_processes_and_a_dead_rank(demo_data, tmp_path):
    """configs/dino/bcssl-t_9x9_100e_demo.py (sync_bn='torch': a BN after
    every depthwise conv) as tools/dist_train.sh runs it: torchrun -> 2 gloo
    CPU processes with synchronised BN. Then process 1 of 2 is SIGKILLed
    after its second iteration: torchrun tears the job down (the other
    process would wait forever in its next all-reduce) and exits with an
    error naming the dead rank; the first checkpoint, written by the
    distributed run, stays loadable."""
    import time
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1',
               PYTHONPATH=osp.join(REPO_ROOT, 'tests', 'data'))
    config = tmp_path / 'kill_rank1.py'
    config.write_text(
        f'_base_ = {DINO_DEMO!r}\n'
        "custom_imports = dict(imports=['mmbcssl', 'recording_hooks'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='DINOTeacherHook'), "
        "dict(type='RNGStateHook'), "
        "dict(type='RecordLossAndKillHook', kill_after=1, rank=1)]\n")
    start = time.time()
    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), str(config),
         '2', '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         f'train_dataloader.dataset.data_root={demo_data}/imagenet',
         'train_dataloader.dataset.indices=8',
         'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
         'train_cfg.max_epochs=2', 'default_hooks.logger.interval=1',
         'default_hooks.checkpoint.by_epoch=False',
         'default_hooks.checkpoint.interval=1'],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, env=env)
    took = time.time() - start
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-3000:]
    # the run was distributed over 2 CPU processes before the kill
    assert 'Distributed training: True' in log
    # mmengine logs the world size as "GPU number", CPU processes included.
    assert 'GPU number: 2' in log, log[-3000:]
    assert 'CPUDistributedDataParallel' in log
    assert 'layers run as CPUSyncBatchNorm' in log
    assert 'SyncBatchNorm layers only work with GPU modules' not in log
    assert 'Epoch(train) [1][1/2]' in log
    assert 'Signal 9 (SIGKILL)' in log and 'rank' in log, log[-3000:]
    work = tmp_path / 'work'
    # 2 iterations per epoch (8 images, 2 processes x 2): killed in the 2nd
    assert not osp.exists(work / 'iter_2.pth')
    from mmengine.runner.checkpoint import _load_checkpoint
    first = _load_checkpoint(str(work / 'iter_1.pth'))
    assert first['meta']['iter'] == 1
    # both processes' generator states, gathered on every rank before the
    # save (a gather on the saving rank alone would hang the job)
    assert len(first['rng_state']) == 2
    assert took < 300


def test_unparsable_cfg_options_are_one_line(capsys):
    code = train_api.main([CONFIG, '--cfg-options',
                           "custom_hooks=[dict(type='X',a=1)]"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'lists of dicts' in err


# --- bad input: one line naming the problem, exit code 2 -----------------
def test_unknown_config_path(capsys):
    assert train_api.main(['configs/nope/missing.py']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error:') and 'missing.py' in err
    assert len(err.splitlines()) == 1


def test_missing_data_root(capsys, tmp_path):
    missing = str(tmp_path / 'no-such-root')
    code = train_api.main([CONFIG, '--work-dir', str(tmp_path),
                           '--cfg-options', *_data_options(missing)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert missing in err and 'does not exist' in err and 'expected' in err


def test_wrong_class_folder_count(capsys, demo_data, tmp_path):
    root = osp.join(demo_data, 'imagenet')
    code = train_api.main([
        CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
        f'train_dataloader.dataset.data_root={root}',
        'train_dataloader.dataset.ann_file=', 'train_dataloader.dataset.'
        'classes=[a,b,c]', *_data_options(root)[1:]
    ])
    assert code == 2
    err = capsys.readouterr().err
    assert 'class folders' in err and 'expects 3 classes' in err


def test_missing_checkpoint_for_test(capsys, demo_data, tmp_path):
    code = test_api.main([CONFIG, str(tmp_path / 'none.pth')])
    assert code == 2
    assert 'none.pth' in capsys.readouterr().err


@pytest.mark.parametrize('tool', ['test', 'train_resume', 'knn_eval',
                                  'run_suite'])
def test_a_work_dir_given_as_a_checkpoint_is_named_as_one(
        tool, capsys, demo_data, tmp_path):
    """Every tool that reads a checkpoint says that a folder given for it
    is a folder, and names the checkpoints inside, not "not found"."""
    from mmbcssl.cli import knn_eval, run_suite
    work = tmp_path / 'work_dir'
    work.mkdir()
    (work / 'epoch_3.pth').write_bytes(b'')
    run = {
        'test': lambda: test_api.main([CONFIG, str(work)]),
        'train_resume': lambda: train_api.main(
            [CONFIG, '--work-dir', str(tmp_path / 'w'), '--resume',
             str(work)]),
        'knn_eval': lambda: knn_eval.main(
            [CONFIG, '--checkpoint', str(work), '--data-root',
             f'{demo_data}/imagenet', '--out', str(tmp_path / 'k.json')]),
        'run_suite': lambda: run_suite.main(
            [CONFIG, str(work), '--suite', 'configs/suites/demo.py',
             '--work-dir', str(tmp_path / 's')]),
    }[tool]
    assert run() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'is a directory' in err[0] and \
        'epoch_3.pth' in err[0] and 'not found' not in err[0], err


def test_cpu_dist_uses_gloo_and_cpu_wrapper(monkeypatch):
    from mmbcssl.utils import launch
    monkeypatch.setattr(launch, 'init_cpu_process_group', lambda b: None)
    monkeypatch.setattr(launch, 'cpu_only', lambda: True)
    cfg = launch.load_config(CONFIG)
    args = train_api.parse_args([CONFIG, '--launcher', 'pytorch'])
    launch.apply_common(cfg, args)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.type == 'CPUDistributedDataParallel'
    assert torch.distributed.is_available()


@pytest.mark.parametrize('script, args, message', [
    ('dist_train.sh', ['cfg.py'], 'usage: tools/dist_train.sh <config>'),
    ('dist_test.sh', ['cfg.py', 'x.pth'], '<checkpoint> <num gpus>'),
    ('dist_train.sh', ['cfg.py', 'two'], "positive integer, got 'two'"),
    ('slurm_train.sh', ['part', 'job', 'cfg.py'], '<partition> <job name>'),
])
def test_launchers_reject_bad_arguments(script, args, message):
    proc = subprocess.run(['bash', osp.join(REPO_ROOT, 'tools', script),
                           *args], capture_output=True, text=True)
    assert proc.returncode == 2
    assert message in proc.stderr and 'Traceback' not in proc.stderr


def test_a_finished_tool_closes_the_process_group_it_opened():
    """A tool process that exits with its gloo group open can abort in
    teardown after its work is done (torchrun then fails the run): run_cli
    closes the group a successful run opened, and leaves alone a group it
    did not open and the group of a failed run."""
    import torch.distributed as dist

    from mmbcssl.utils.launch import UserError, run_cli

    def open_group():
        dist.init_process_group('gloo',
                                init_method=f'tcp://127.0.0.1:{free_port()}',
                                rank=0, world_size=1)

    def fail():
        open_group()
        raise UserError('no data')

    assert run_cli(open_group, []) == 0
    assert not dist.is_initialized()
    try:
        assert run_cli(fail, []) == 2
        assert dist.is_initialized()  # a failed rank does not close it
        assert run_cli(lambda: None, []) == 0
        assert dist.is_initialized()  # not opened by that run
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
