"""SyncBN on CPU processes: the statistics of the global batch, as one
process would compute them. (The DINO demo with SyncBN through
tools/dist_train.sh on 2 gloo processes: tests/test_tools/test_entry_tools.py,
test_dino_demo_on_two_processes_and_a_dead_rank.)"""
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
# leave the group before exiting: a process that exits with the group (and
# the autograd all-reduce's threads) alive can abort in teardown
dist.barrier()
dist.destroy_process_group()
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
