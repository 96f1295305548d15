"""Time of the intervals and paired comparisons on ImageNet-size outcomes.

``tools/analysis_tools/benchmark_intervals.py``: synthetic per-image
outcomes of ``--images`` images (ImageNet val: 50,000) over the 75
ImageNet-C passes (15 corruptions x 5 severities) and a clean pass, and
the seconds :mod:`mmbcssl.evaluation.statistics` takes for each interval
of ``--resamples`` resamples (median over ``--repeats`` rounds, timed side
by side). ``mCE, one call per resample`` is the path a statistic without
a batched form takes (a call on each resample's indices), timed on
``--per-resample`` resamples and scaled to ``--resamples``.

    python tools/analysis_tools/benchmark_intervals.py [--images 50000] \\
        [--resamples 1000] [--repeats 3] [--out intervals.json]

Measured (``OMP_NUM_THREADS=1 python
tools/analysis_tools/benchmark_intervals.py``, numpy 2.4, scipy 1.17) on
an idle 2-core CPU machine (Intel Xeon), 50,000 images x 75 passes, 1000
resamples, median of 3: mCE 0.71 s, relative mCE 0.76 s, one accuracy's
bootstrap 0.73 s (its Clopper-Pearson interval 0.19 ms), paired accuracy
0.74 s, paired mCE 1.1 s; the mCE at one call per resample 7.6 s. Most of
the time is drawing the 50 million resample indices and counting them;
the 75 passes add one matrix product per block of 64 resamples.
"""
import argparse
from typing import Callable, Dict, List, Optional

import numpy as np

from mmbcssl.evaluation.outcomes import Outcomes
from mmbcssl.evaluation.robustness import BENCHMARK_CORRUPTIONS, SEVERITIES
from mmbcssl.evaluation.statistics import (Bootstrap, metric_entry, paired,
                                           statistic)
from mmbcssl.utils.outputs import write_json
from .common import format_table, round_robin, run_main, spread, timed


def synthetic_outcomes(images: int, seed: int = 0,
                       shift: float = 0.) -> Outcomes:
    """Outcomes of ``images`` images: 75 ImageNet-C passes (accuracy
    between 0.2 and 0.7) and a clean pass (0.75 + ``shift``), with the
    metric entries ``mCE``, ``relative_mCE`` and ``top1``."""
    rng = np.random.default_rng(seed)
    passes = {f'{c}/{s}': f'{c}_{s}' for c in BENCHMARK_CORRUPTIONS
              for s in SEVERITIES}
    arrays = {a: rng.random(images) < rng.uniform(.2, .7)
              for a in passes.values()}
    arrays['clean'] = rng.random(images) < .75 + shift
    metrics = {
        'mCE': dict(statistic='imagenet_c', which='mCE', passes=passes),
        'relative_mCE': dict(statistic='imagenet_c', which='relative_mCE',
                             passes=passes, clean='clean'),
        'top1': dict(statistic='accuracy', arrays=['clean'], scale=100.)}
    return Outcomes([f'n{i // 50:08d}/img_{i}.JPEG' for i in range(images)],
                    arrays, meta=dict(metrics=metrics))


def per_resample_seconds(boot: Bootstrap, outcomes: Outcomes,
                         metric_key: str, resamples: int) -> float:
    """Seconds of the one-call-per-resample path on ``resamples``
    resamples, scaled to ``boot.resamples``."""
    name, params = metric_entry(outcomes, metric_key)
    fn = statistic(name)
    n = len(outcomes.images)

    def run() -> None:
        for idx in boot.resample_indices(n, None, 0, resamples):
            fn(outcomes, idx, **params)

    return timed(run)[0] * boot.resamples / resamples


def measure(args: argparse.Namespace) -> dict:
    """The options ``args`` and the seconds of each case."""
    boot = Bootstrap(resamples=args.resamples, seed=0)
    a = synthetic_outcomes(args.images, seed=0)
    b = synthetic_outcomes(args.images, seed=1, shift=.005)
    b.images = a.images
    cases: Dict[str, Callable[[], object]] = {
        'mCE': lambda: boot.interval(a, 'mCE'),
        'relative mCE': lambda: boot.interval(a, 'relative_mCE'),
        'accuracy, bootstrap': lambda: boot.bootstrap_interval(a, 'top1'),
        'accuracy, Clopper-Pearson': lambda: boot.interval(a, 'top1'),
        'paired accuracy': lambda: paired(a, b, 'top1', boot),
        'paired mCE': lambda: paired(a, b, 'mCE', boot),
    }
    seconds = {name: spread(times) for name, times in round_robin(
        cases, args.repeats).items()}
    seconds['mCE, one call per resample'] = dict(
        median=per_resample_seconds(boot, a, 'mCE', args.per_resample))
    return dict(vars(args), passes=75, seconds=seconds)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=50_000)
    parser.add_argument('--resamples', type=int, default=1000)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--per-resample', type=int, default=20,
                        help='resamples timed on the one-call-per-resample '
                        'path (scaled to --resamples)')
    parser.add_argument('--out', help='write the result as JSON')
    return parser


def report(args: argparse.Namespace) -> None:
    r = measure(args)
    print(f'{args.images} images x 75 passes, {args.resamples} resamples '
          f'(median of {args.repeats}):')
    print(format_table(('interval', 'seconds'), [
        (name, f'{s["median"]:.3g}') for name, s in r['seconds'].items()]))
    if args.out:
        write_json(args.out, r)


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(build_parser(), report, argv)
