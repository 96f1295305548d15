"""The inference benchmark measures what it says: round-robin, per
layout, in images/s."""
import pytest
import torch
import torch.nn as nn

from mmbcssl.benchmarks import inference


def test_benchmark_is_interleaved_and_reports_throughput():
    calls = []

    class Slow(nn.Module):

        def __init__(self, name, delay):
            super().__init__()
            self.name, self.delay = name, delay

        def forward(self, x):
            import time
            calls.append(self.name)
            time.sleep(self.delay)
            return x

    res = inference.benchmark({'a': Slow('a', 0.02), 'b': Slow('b', 0.04)},
                              batch_size=4, img_size=8, warmup=1, repeats=3,
                              iters=1)
    assert calls == ['a', 'b'] + ['a', 'b'] * 3  # round-robin
    assert res['a']['median'] > 1.5 * res['b']['median']
    assert res['a']['median'] == pytest.approx(4 / 0.02, rel=0.3)
    assert len(res['b']['samples']) == 3


def test_benchmark_both_formats_times_each_model_in_each_layout():
    seen = []

    class Probe(nn.Module):

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            seen.append((x.is_contiguous(),
                         self.conv.weight.is_contiguous(
                             memory_format=torch.channels_last)))
            return self.conv(x)

    model = Probe()
    res = inference.benchmark({'m': model}, batch_size=2, img_size=8,
                              warmup=1, repeats=2, iters=1,
                              both_formats=True)
    assert list(res) == ['m [nchw]', 'm [channels_last]']
    # Round-robin: NCHW input to an NCHW copy, then channels_last input to
    # a channels_last copy.
    assert seen == [(True, False), (False, True)] * 3
    assert model.conv.weight.is_contiguous()  # the caller's model untouched
    assert all(len(r['samples']) == 2 for r in res.values())
