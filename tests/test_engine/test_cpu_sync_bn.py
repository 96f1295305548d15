"""SyncBN on CPU processes: the statistics of the global batch, as one
process would compute them, and the DINO demo through tools/dist_train.sh
with 2 gloo processes."""
import os
import os.path as osp
import subprocess
import sys

import torch
import torch.nn as nn

from tests.conftest import REPO_ROOT, free_port

MODULE = osp.join(REPO_ROOT, 'mmbcssl', 'engine', 'model_wrappers',
                  'cpu_sync_batch_norm.py')
# Each of 2 processes normalises its half of one batch (2 steps, for the
# running statistics), then backpropagates its half of a weighted sum.
WORKER = f'''
import importlib.util, sys, torch, torch.distributed as dist
spec = importlib.util.spec_from_file_location('csbn', {MODULE!r})
csbn = importlib.util.module_from_spec(spec)
spec.loader.exec_module(csbn)
dist.init_process_group('gloo')
rank = dist.get_rank()
torch.manual_seed(0)
x = torch.randn(8, 4, 5, 5) * 3 + torch.arange(8.).view(8, 1, 1, 1)
w = torch.randn(8, 4, 5, 5)
bn = csbn.CPUSyncBatchNorm(4)
with torch.no_grad():
    bn.weight.uniform_(0.5, 1.5)
    bn.bias.uniform_(-1, 1)
half = slice(4 * rank, 4 * rank + 4)
part = x[half].clone().requires_grad_()
for _ in range(2):
    y = bn(part)
(y * w[half]).sum().backward()
bn.eval()
torch.save(dict(y=y.detach(), grad=part.grad, weight=bn.weight.grad,
                bias=bn.bias.grad, mean=bn.running_mean, var=bn.running_var,
                steps=bn.num_batches_tracked, eval=bn(x[half]).detach()),
           sys.argv[1] + f'/rank{{rank}}.pt')
'''


def _torchrun(*args):
    return [sys.executable, '-m', 'torch.distributed.run', '--nnodes=1',
            '--nproc_per_node=2', '--master_addr=127.0.0.1',
            f'--master_port={free_port()}', *args]


def test_two_processes_equal_one_batchnorm_on_the_whole_batch(tmp_path):
    script = tmp_path / 'worker.py'
    script.write_text(WORKER)
    proc = subprocess.run(_torchrun(str(script), str(tmp_path)),
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(2)]

    # the same computation in one process, on the whole batch
    torch.manual_seed(0)
    x = torch.randn(8, 4, 5, 5) * 3 + torch.arange(8.).view(8, 1, 1, 1)
    w = torch.randn(8, 4, 5, 5)
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    whole = x.clone().requires_grad_()
    for _ in range(2):
        y = bn(whole)
    (y * w).sum().backward()
    bn.eval()

    close = dict(rtol=1e-5, atol=1e-5)
    for r, out in enumerate(ranks):
        half = slice(4 * r, 4 * r + 4)
        torch.testing.assert_close(out['y'], y[half].detach(), **close)
        torch.testing.assert_close(out['grad'], whole.grad[half], **close)
        torch.testing.assert_close(out['mean'], bn.running_mean, **close)
        torch.testing.assert_close(out['var'], bn.running_var, **close)
        assert out['steps'] == bn.num_batches_tracked == 2
        torch.testing.assert_close(out['eval'], bn(x[half]).detach(),
                                   **close)
    # DDP averages the parameter gradients over processes; their sum is
    # the gradient of the whole batch's loss
    torch.testing.assert_close(ranks[0]['weight'] + ranks[1]['weight'],
                               bn.weight.grad, **close)
    torch.testing.assert_close(ranks[0]['bias'] + ranks[1]['bias'],
                               bn.bias.grad, **close)
    # per-process BN (SyncBN converted back) would keep other statistics
    local = nn.BatchNorm2d(4)
    local(x[:4])
    assert not torch.allclose(local.running_mean, ranks[0]['mean'])


def test_dist_train_dino_demo_two_processes(demo_data, tmp_path):
    """configs/dino/bcssl-t_9x9_100e_demo.py (sync_bn='torch', a BN after
    every depthwise conv) as tools/dist_train.sh runs it, shrunk to one
    step of 2 images per process."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'),
         osp.join(REPO_ROOT, 'configs', 'dino', 'bcssl-t_9x9_100e_demo.py'),
         '2', '--work-dir', str(tmp_path), '--cfg-options',
         f'train_dataloader.dataset.data_root={demo_data}/imagenet',
         'train_dataloader.dataset.indices=4',
         'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
         'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
         # no 450 MB checkpoint: the run itself is what is tested
         'default_hooks.checkpoint.interval=100',
         'default_hooks.checkpoint.save_last=False'],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'GPU number: 2' in log
    assert 'layers run as CPUSyncBatchNorm' in log
    assert 'Epoch(train) [1][1/1]' in log
    assert 'SyncBatchNorm layers only work with GPU modules' not in log
