"""PassPrefetcher: same batches in the same order as one loader after the
other, with pass k+1's workers already loading while pass k drains."""
import os
import time

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from mmbcssl.engine.runner import PassPrefetcher, prefetch_depth


class _Logged(Dataset):
    """Items ``(pass, index)``; each load is appended, with its time, to a
    file (workers are processes)."""

    def __init__(self, k: int, n: int, log: str) -> None:
        self.k, self.n, self.log = k, n, log

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        with open(self.log, 'a') as f:
            f.write(f'{self.k} {i} {time.monotonic()}\n')
        return torch.tensor([self.k, i])


def _builder(tmp_path, sizes, num_workers, batch_size=2):
    log = str(tmp_path / 'loads.txt')

    def build(k):
        return DataLoader(_Logged(k, sizes[k], log), batch_size=batch_size,
                          num_workers=num_workers, prefetch_factor=2
                          if num_workers else None)

    return build, log


def _consume(prefetcher, delay=0.0):
    seen, ends = [], {}
    for k, loader, batches in prefetcher:
        for batch in batches:
            seen.append(batch.tolist())
            time.sleep(delay)
        ends[k] = time.monotonic()
    return seen, ends


def _plain(build, num_passes):
    return [b.tolist() for k in range(num_passes) for b in build(k)]


@pytest.mark.parametrize('num_workers', [0, 2])
def test_same_batches_in_the_same_order(tmp_path, num_workers):
    sizes = [9, 4, 1, 7]  # a pass shorter than the prefetch depth too
    build, _ = _builder(tmp_path, sizes, num_workers)
    seen, _ = _consume(PassPrefetcher(build, len(sizes)))
    assert seen == _plain(build, len(sizes))


def test_next_pass_starts_when_the_last_indices_are_dispatched(tmp_path):
    sizes = [20, 20, 3]  # batches: 10, 10, 2
    build, _ = _builder(tmp_path, sizes, num_workers=2)
    depth = prefetch_depth(build(0))
    assert depth == 4  # 2 workers x prefetch_factor 2
    p = PassPrefetcher(build, len(sizes))
    _consume(p)
    assert p.started_at == [(0, 10 - depth), (1, 10 - depth)]
    # without workers there is nothing to overlap: passes start in turn
    build0, _ = _builder(tmp_path, sizes, num_workers=0)
    p0 = PassPrefetcher(build0, len(sizes))
    _consume(p0)
    assert p0.started_at == []
    # overlap=False is the plain behaviour, for benchmarks
    p_off = PassPrefetcher(build, len(sizes), overlap=False)
    seen, _ = _consume(p_off)
    assert p_off.started_at == [] and seen == _plain(build, len(sizes))


def test_next_pass_loads_while_this_one_drains(tmp_path):
    """With a slow consumer, items of pass 1 are loaded (in pass 1's
    worker processes) before the consumer has finished pass 0."""
    sizes = [24, 8]
    build, log = _builder(tmp_path, sizes, num_workers=2)
    _, ends = _consume(PassPrefetcher(build, len(sizes)), delay=0.05)
    loads = [line.split() for line in open(log)]
    first_of_pass1 = min(float(t) for k, _, t in loads if k == '1')
    assert first_of_pass1 < ends[0]
    # and not with overlap off
    os.remove(log)
    _, ends = _consume(PassPrefetcher(build, len(sizes), overlap=False),
                       delay=0.05)
    loads = [line.split() for line in open(log)]
    assert min(float(t) for k, _, t in loads if k == '1') > ends[0]


def test_bad_num_passes():
    with pytest.raises(ValueError, match='num_passes'):
        PassPrefetcher(lambda k: None, 0)


@pytest.mark.parametrize('num_workers', [0, 2])
@pytest.mark.parametrize('overlap', [True, False])
def test_each_loader_built_once_and_build_errors_surface(
        tmp_path, num_workers, overlap):
    sizes = [6, 6, 6]
    build, _ = _builder(tmp_path, sizes, num_workers)
    calls = []

    def counted(k):
        calls.append(k)
        return build(k)

    _consume(PassPrefetcher(counted, len(sizes), overlap=overlap))
    assert calls == [0, 1, 2]

    def broken(k):
        if k == 1:
            raise FileNotFoundError('no folder for pass 1')
        return build(k)

    # built in a helper thread, the error is raised in the consumer's
    with pytest.raises(FileNotFoundError, match='pass 1'):
        _consume(PassPrefetcher(broken, len(sizes), overlap=overlap))
