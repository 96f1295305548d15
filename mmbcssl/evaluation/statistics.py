"""Intervals and paired comparisons computed from per-image outcomes.

Every number of a result is recomputed from its outcomes file
(:mod:`mmbcssl.evaluation.outcomes`): the writer stores, for each metric
key of the result JSON, an entry ``outcomes.meta['metrics'][key]`` naming
a registered statistic and its parameters, e.g.
``{'statistic': 'accuracy', 'arrays': ['k20'], 'scale': 100.0}``. A
statistic is ``fn(outcomes, idx, **params) -> float``, where ``idx`` holds
the rows of one resample (duplicates allowed) or is None for the whole
sample; ``fn(outcomes, None, **params)`` is the number in the result.

The interval protocol (:class:`Bootstrap`, stated with every interval):

- percentile bootstrap over test images (Efron & Tibshirani, "An
  Introduction to the Bootstrap", 1993, ch. 13), ``resamples`` resamples
  drawn from ``seed``, two-sided at ``level``. One resample picks images,
  and every array of the file is read at the same rows: ImageNet-C's mCE
  resamples images across all 75 passes at once. An entry with
  ``strata: '<array>'`` (each row's stratum, e.g. which transfer set an
  image is in) is resampled within each stratum, keeping its size.
- closed form where one is exact: a single accuracy (a binomial
  proportion) gets the exact Clopper-Pearson interval (Clopper & Pearson,
  Biometrika 1934).
- paired comparison of two runs on the same image list: the paired
  bootstrap of the difference (the same resample of images for both
  runs); for an accuracy, the exact McNemar test (McNemar, Psychometrika
  1947, in its exact form: a two-sided binomial test of the discordant
  pairs) gives the p-value. A difference whose interval contains 0 is
  "not significant".

The resamples cost no second pass over the data: they reweight the stored
outcomes. Statistics that are functions of per-array means (accuracy,
ImageNet-C) also register a batched form that evaluates a block of
resamples as one matrix product of resample counts and outcomes.
"""
import importlib
import inspect
from dataclasses import asdict, dataclass
from typing import (Any, Callable, Dict, List, Optional, Sequence, Tuple,
                    Union)

import numpy as np
from scipy import special
from scipy.stats import binom

from .outcomes import Outcomes
from .robustness import SEVERITIES, corruption_errors

_STATISTICS: Dict[str, Callable[..., float]] = {}
_BATCHED: Dict[str, Callable[..., np.ndarray]] = {}

# Resample ``b`` is row ``b % BLOCK`` of a block of BLOCK resamples drawn
# by ``numpy.random.default_rng((seed, b // BLOCK))``: resamples do not
# depend on how many are computed at once, and two runs on the same images
# get the same ones.
BLOCK = 64
# Rows of resample indices (and counts) held at once, in elements.
_CHUNK_ELEMENTS = 2**22


def register_statistic(name: str,
                       batched: Optional[Callable[..., np.ndarray]] = None):
    """Register ``fn(outcomes, idx, **params) -> float`` as statistic
    ``name`` (a decorator).

    Args:
        name (str): What ``meta['metrics'][key]['statistic']`` names.
        batched (Callable, optional): The same statistic on a block of
            resamples at once, ``batched(outcomes, block, **params) ->
            [B] array``, where ``block`` is a :class:`ResampleCounts`.
            Its values must equal ``fn`` on the resamples' indices.
            Defaults to None (the engine calls ``fn`` once per resample).
    """

    def add(fn):
        _STATISTICS[name] = fn
        if batched is None:
            _BATCHED.pop(name, None)
        else:
            _BATCHED[name] = batched
        return fn

    return add


# the modules that register statistics beside the code of their metric;
# imported on the first lookup of a name not registered yet
_PROVIDERS = ('mmbcssl.evaluation.coco_outcomes',
              'mmbcssl.evaluation.segmentation_outcomes',
              'mmbcssl.evaluation.transfer')


def statistic(name: str) -> Callable[..., float]:
    """The statistic registered as ``name``."""
    if name not in _STATISTICS:
        for module in _PROVIDERS:
            importlib.import_module(module)
    if name not in _STATISTICS:
        raise KeyError(f'no statistic {name!r} is registered (registered: '
                       f'{", ".join(sorted(_STATISTICS))}); import the '
                       'module that registers it')
    return _STATISTICS[name]


def metric_entry(outcomes: Outcomes,
                 metric_key: str) -> Tuple[str, Dict[str, Any]]:
    """``(statistic name, params)`` of ``metric_key`` in
    ``outcomes.meta['metrics']``, checked against the statistic's
    signature."""
    entries = outcomes.meta.get('metrics', {})
    if metric_key not in entries:
        raise KeyError(f'the outcomes hold no entry for metric '
                       f'{metric_key!r} (they have: '
                       f'{", ".join(sorted(entries)) or "none"})')
    params = dict(entries[metric_key])
    name = params.pop('statistic')
    fn = statistic(name)
    try:
        inspect.signature(fn).bind(outcomes, None, **params)
    except TypeError as e:
        accepted = list(inspect.signature(fn).parameters)[2:]
        raise ValueError(f'metric {metric_key!r}: statistic {name!r} takes '
                         f'{accepted}, got {sorted(params)} ({e})') from None
    return name, params


def compute(outcomes: Outcomes,
            metric_key: str,
            idx: Optional[np.ndarray] = None) -> float:
    """Metric ``metric_key`` recomputed from ``outcomes`` on the rows
    ``idx`` (None: all of them, which reproduces the result's number)."""
    name, params = metric_entry(outcomes, metric_key)
    return float(statistic(name)(outcomes, idx, **params))


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------
def _rows(array: np.ndarray, idx: Optional[np.ndarray]) -> np.ndarray:
    return array if idx is None else array[idx]


class ResampleCounts:
    """A block of resamples as counts, for batched statistics.

    ``counts[b, i]`` is how often resample ``b`` drew row ``i``; a
    statistic of weighted sums reads them with :meth:`sums` (one matrix
    product per block; the stacked arrays are kept for the next block).

    Args:
        counts (np.ndarray): ``[B, n]`` counts.
        cache (dict): Stacked arrays, shared by the blocks of one run of
            the engine.
    """

    def __init__(self, counts: np.ndarray, cache: Dict) -> None:
        self.counts = counts
        self._cache = cache

    def sums(self, outcomes: Outcomes, names: Sequence[str]) -> np.ndarray:
        """``[B, len(names)]`` sums of the rows of 1-D arrays ``names``
        under each resample."""
        key = (id(outcomes), tuple(names))
        if key not in self._cache:
            x = np.stack([outcomes.arrays[k] for k in names], 1)  # [n, P]
            # booleans summed in float32 stay exact integers below 2**24:
            # the same sums, bit for bit, as the rows of the resample
            exact32 = x.dtype == np.bool_ and len(x) < 2**24
            self._cache[key] = x.astype(np.float32 if exact32 else np.float64)
        x = self._cache[key]
        return (self.counts.astype(x.dtype, copy=False) @ x).astype(
            np.float64)  # [B, P]

    def means(self, outcomes: Outcomes, names: Sequence[str]) -> np.ndarray:
        """``[B, len(names)]`` means of arrays ``names`` under each
        resample."""
        return self.sums(outcomes, names) / self.counts.shape[1]


def _one_array(arrays: Sequence[str]) -> str:
    if isinstance(arrays, str) or len(arrays) != 1:
        raise ValueError(f"'accuracy' reads one array, got {arrays!r}")
    return arrays[0]


def _accuracy_batched(outcomes: Outcomes, block: ResampleCounts,
                      arrays: Sequence[str], scale: float = 1.0,
                      strata: Optional[str] = None) -> np.ndarray:
    return scale * block.means(outcomes, [_one_array(arrays)])[:, 0]


@register_statistic('accuracy', batched=_accuracy_batched)
def accuracy(outcomes: Outcomes, idx: Optional[np.ndarray],
             arrays: Sequence[str], scale: float = 1.0,
             strata: Optional[str] = None) -> float:
    """``scale`` times the share of rows that are right.

    Args:
        arrays (list[str]): The one boolean array (a pass: ``['k20']``).
        scale (float): 100 for a percentage. Defaults to 1.
        strata (str, optional): Resample within the strata of this array
            (the engine reads it; the value is the pooled accuracy).
    """
    return scale * float(np.mean(_rows(outcomes.arrays[_one_array(arrays)],
                                       idx)))


def _parse_passes(passes: Union[Dict[str, str], Sequence[str]]
                  ) -> List[Tuple[str, int, str]]:
    """``'<corruption>/<severity>' -> array`` (or a list of arrays named
    ``'<corruption>/<severity>'``, as the ImageNet-C loop writes them) as
    (corruption, severity, array) triples."""
    if not isinstance(passes, dict):
        passes = {name: name for name in passes}
    out = []
    for key, array in passes.items():
        corruption, _, severity = key.rpartition('/')
        if not corruption or not severity.isdigit() or \
                int(severity) not in SEVERITIES:
            raise ValueError(f"ImageNet-C passes are keyed "
                             f"'<corruption>/<severity 1-5>', got {key!r}")
        out.append((corruption, int(severity), array))
    return out


def _imagenet_c(accuracies: Dict[Tuple[str, int], Any], clean: Any,
                which: str) -> Any:
    """``corruption_errors(...)[which]`` of per-pass accuracies (floats or
    ``[B]`` arrays: its arithmetic applies elementwise)."""
    errors: Dict[str, Dict[int, Any]] = {}
    for (corruption, severity), acc in accuracies.items():
        errors.setdefault(corruption, {})[severity] = 1 - acc
    out = corruption_errors(errors, clean)
    if which not in out:
        raise ValueError(f"'imagenet_c' has no {which!r} (it has: mCE, "
                         'mean_error, relative_mCE with a clean error, CE/'
                         '<corruption>, error/...)')
    return out[which]


def _clean_error(clean: Optional[str], clean_error: Optional[float],
                 which: str, clean_acc: Any) -> Any:
    """The clean error relative mCE subtracts: of the resampled clean
    array, or the fixed ``clean_error``."""
    if clean is not None and clean_error is not None:
        raise ValueError("'imagenet_c' takes 'clean' or 'clean_error', "
                         'not both')
    if clean is not None:
        return 1 - clean_acc
    if clean_error is None and which.startswith('relative'):
        raise ValueError(f"'imagenet_c' {which!r} needs the clean pass: "
                         "give 'clean' (an array of the file) or "
                         "'clean_error' (in [0, 1], held fixed)")
    return clean_error


def _imagenet_c_batched(outcomes: Outcomes, block: ResampleCounts,
                        which: str,
                        passes: Dict[str, str], clean: Optional[str] = None,
                        clean_error: Optional[float] = None,
                        strata: Optional[str] = None) -> np.ndarray:
    triples = _parse_passes(passes)
    names = [a for _, _, a in triples] + ([clean] if clean else [])
    means = block.means(outcomes, names)  # [B, P (+1)]
    accs = {(c, s): means[:, j] for j, (c, s, _) in enumerate(triples)}
    return np.asarray(_imagenet_c(
        accs, _clean_error(clean, clean_error, which,
                           means[:, -1] if clean else None), which))


@register_statistic('imagenet_c', batched=_imagenet_c_batched)
def imagenet_c(outcomes: Outcomes, idx: Optional[np.ndarray], which: str,
               passes: Union[Dict[str, str], Sequence[str]],
               clean: Optional[str] = None,
               clean_error: Optional[float] = None,
               strata: Optional[str] = None) -> float:
    """An ImageNet-C number of
    :func:`mmbcssl.evaluation.robustness.corruption_errors` (AlexNet
    normalisation, Hendrycks & Dietterich 2019), from the per-pass
    top-1 errors of the resampled rows.

    Args:
        which (str): ``'mCE'``, ``'relative_mCE'``, ``'mean_error'`` (or
            any other key that :func:`corruption_errors` returns).
        passes (dict | list): ``'<corruption>/<severity>'`` -> the boolean
            array of that pass (or the arrays' names, when they are named
            so); the 15 benchmark corruptions x 5 severities.
        clean (str, optional): The array of the clean val pass over the
            same images (relative mCE), resampled with the others.
        clean_error (float, optional): Instead of ``clean``, the clean
            top-1 error in [0, 1], held fixed (its own uncertainty is then
            not in the interval).
        strata (str, optional): Resample within these strata.
    """
    triples = _parse_passes(passes)
    accs = {(c, s): float(np.mean(_rows(outcomes.arrays[a], idx)))
            for c, s, a in triples}
    clean_acc = float(np.mean(_rows(outcomes.arrays[clean], idx))) \
        if clean else None
    return float(_imagenet_c(
        accs, _clean_error(clean, clean_error, which, clean_acc),
        which))


# ---------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------
def clopper_pearson(k: int, n: int,
                    level: float = 0.95) -> Tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a binomial proportion,
    ``k`` successes in ``n`` trials: the ``alpha/2`` quantile of
    Beta(k, n-k+1) and the ``1 - alpha/2`` quantile of Beta(k+1, n-k),
    ``alpha = 1 - level`` (0 and 1 at the ends)."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f'need 0 <= k <= n and n >= 1, got k={k}, n={n}')
    alpha = (1 - level) / 2
    lo = 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, alpha))
    hi = 1.0 if k == n else float(
        special.betaincinv(k + 1, n - k, 1 - alpha))
    return lo, hi


def mcnemar_p_value(b: int, c: int) -> float:
    """Two-sided p-value of the exact McNemar test: ``b`` pairs where
    only the first run is right, ``c`` where only the second is. Under the
    null ``b ~ Binomial(b + c, 1/2)``; the p-value is the probability of a
    split at least as uneven, ``P(X <= min) + P(X >= b + c - min)``
    (1 when ``b == c``)."""
    if b < 0 or c < 0:
        raise ValueError(f'discordant counts are >= 0, got b={b}, c={c}')
    n, k = b + c, min(b, c)
    if n == 0 or b == c:
        return 1.0
    return min(1.0, float(binom.cdf(k, n, .5) + binom.sf(n - k - 1, n, .5)))


# ---------------------------------------------------------------------------
# The bootstrap
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A number and its interval.

    Args:
        value (float): The statistic on all images (the result's number).
        lo (float): Lower end.
        hi (float): Upper end.
        method (str): How the interval was computed.
        resamples (int, optional): Bootstrap resamples (None: closed form).
        seed (int, optional): Seed of the resamples (None: closed form).
        level (float): Two-sided confidence level.
    """
    value: float
    lo: float
    hi: float
    method: str
    resamples: Optional[int]
    seed: Optional[int]
    level: float

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """The difference ``a - b`` of one metric of two runs on the same
    images.

    Args:
        diff (float): ``a``'s value minus ``b``'s.
        lo (float): Lower end of the difference's interval.
        hi (float): Upper end.
        p_value (float): Two-sided p-value of "no difference".
        method (str): The interval's and the p-value's methods.
        significant (bool): The interval excludes 0.
    """
    diff: float
    lo: float
    hi: float
    p_value: float
    method: str
    significant: bool

    @property
    def verdict(self) -> str:
        """``'significant'`` or ``'not significant'`` (the interval
        contains 0)."""
        return 'significant' if self.significant else 'not significant'

    def to_dict(self) -> Dict[str, Any]:
        return dict(asdict(self), verdict=self.verdict)


@dataclass(frozen=True)
class Bootstrap:
    """The interval protocol: percentile bootstrap over test images.

    Args:
        resamples (int): Resamples. Defaults to 1000.
        seed (int): Seed of the resamples (resample ``b`` is drawn from
            ``numpy.random.default_rng((seed, b // 64))``). Defaults to 0.
        level (float): Two-sided confidence level. Defaults to 0.95.
    """
    resamples: int = 1000
    seed: int = 0
    level: float = 0.95

    def __post_init__(self):
        if int(self.resamples) != self.resamples or self.resamples < 2:
            raise ValueError(f'resamples must be an integer >= 2, got '
                             f'{self.resamples!r}')
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f'seed must be an integer >= 0, got '
                             f'{self.seed!r}')
        if not 0 < self.level < 1:
            raise ValueError(f'level must lie in (0, 1), got {self.level!r}')

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def resample_indices(self,
                         n: int,
                         strata: Optional[np.ndarray] = None,
                         start: int = 0,
                         stop: Optional[int] = None) -> np.ndarray:
        """``[stop - start, n]`` row indices of resamples ``start`` to
        ``stop`` (default: to the last) of ``n`` images; with ``strata``
        (each row's stratum) each stratum's rows are drawn from its own
        rows, as many as it has (strata in sorted order, so a row of the
        result need not be the row it replaces)."""
        stop = self.resamples if stop is None else stop
        groups = [None] if strata is None else [
            np.flatnonzero(strata == s) for s in np.unique(strata)]
        out = np.empty((stop - start, n), np.int64)
        rows = np.empty((BLOCK, n), np.int64)
        for block in range(start // BLOCK, (stop - 1) // BLOCK + 1):
            rng = np.random.default_rng((self.seed, block))
            # whole blocks are drawn, so a resample never depends on
            # which others are asked for
            col = 0
            for g in groups:
                size = n if g is None else len(g)
                draw = rng.integers(0, size, (BLOCK, size))
                rows[:, col:col + size] = draw if g is None else g[draw]
                col += size
            first = block * BLOCK
            lo, hi = max(start, first), min(stop, first + BLOCK)
            out[lo - start:hi - start] = rows[lo - first:hi - first]
        return out

    def replicates(self, outcomes: Outcomes, metric_key: str) -> np.ndarray:
        """``[resamples]`` values of the metric on the resamples."""
        return self._replicates([outcomes], metric_key)[0]

    def _replicates(self, runs: Sequence[Outcomes],
                    metric_key: str) -> np.ndarray:
        """``[len(runs), resamples]``: each run's metric on the same
        resamples of rows (the runs share their image list)."""
        entries = [metric_entry(run, metric_key) for run in runs]
        strata = _strata(runs[0], entries[0][1])
        n = len(runs[0].images)
        out = np.empty((len(runs), self.resamples))
        cache: Dict = {}
        step = BLOCK * max(1, _CHUNK_ELEMENTS // (BLOCK * n))
        for start in range(0, self.resamples, step):
            stop = min(self.resamples, start + step)
            idx = self.resample_indices(n, strata, start, stop)  # [m, n]
            block = None
            for r, (run, (name, params)) in enumerate(zip(runs, entries)):
                batched = _BATCHED.get(name)
                if batched is None:
                    fn = statistic(name)
                    out[r, start:stop] = [fn(run, i, **params) for i in idx]
                    continue
                if block is None:
                    # small integers: exact in float32
                    counts = np.empty(idx.shape, np.float32)
                    for j, rows in enumerate(idx):
                        counts[j] = np.bincount(rows, minlength=n)
                    block = ResampleCounts(counts, cache)
                out[r, start:stop] = batched(run, block, **params)
        return out

    def _percentiles(self, values: np.ndarray) -> Tuple[float, float]:
        tail = 100 * (1 - self.level) / 2
        lo, hi = np.percentile(values, [tail, 100 - tail])
        return float(lo), float(hi)

    def bootstrap_interval(self, outcomes: Outcomes,
                           metric_key: str) -> Interval:
        """The percentile bootstrap interval of the metric (also where a
        closed form exists)."""
        _, params = metric_entry(outcomes, metric_key)
        lo, hi = self._percentiles(self.replicates(outcomes, metric_key))
        method = 'percentile bootstrap over images'
        if params.get('strata') is not None:
            method += f", within strata of {params['strata']!r}"
        return Interval(compute(outcomes, metric_key), lo, hi, method,
                        self.resamples, self.seed, self.level)

    def interval(self, outcomes: Outcomes, metric_key: str) -> Interval:
        """The metric's interval: exact Clopper-Pearson for an unstratified
        accuracy, else :meth:`bootstrap_interval`."""
        name, params = metric_entry(outcomes, metric_key)
        if name != 'accuracy' or params.get('strata') is not None:
            return self.bootstrap_interval(outcomes, metric_key)
        correct = outcomes.arrays[_one_array(params['arrays'])]
        scale = params.get('scale', 1.0)
        lo, hi = sorted(scale * p for p in clopper_pearson(
            int(np.count_nonzero(correct)), len(correct), self.level))
        return Interval(compute(outcomes, metric_key), lo, hi,
                        'exact (Clopper-Pearson)', None, None, self.level)


def _strata(outcomes: Outcomes,
            params: Dict[str, Any]) -> Optional[np.ndarray]:
    name = params.get('strata')
    if name is None:
        return None
    if name not in outcomes.arrays:
        raise KeyError(f'strata array {name!r} is not in the outcomes')
    return np.asarray(outcomes.arrays[name])


def paired(a: Outcomes, b: Outcomes, metric_key: str,
           bootstrap: Bootstrap = Bootstrap()) -> Comparison:
    """Compare metric ``metric_key`` of runs ``a`` and ``b`` (``a - b``)
    made on the same images.

    The interval is the percentile interval of the paired bootstrap: both
    runs are read at the same resample of images. The p-value of an
    ``'accuracy'`` is the exact McNemar test's (:func:`mcnemar_p_value`);
    of any other statistic, the two-sided bootstrap p-value ``min(1, 2 *
    min(1 + #{d <= 0}, 1 + #{d >= 0}) / (B + 1))`` over the ``B``
    resampled differences ``d``: twice the share of resamples on the far
    side of 0, with the usual ``+1`` so that it is never 0 (Davison &
    Hinkley, "Bootstrap Methods and their Application", 1997, ch. 4).
    ``significant`` is whether the interval excludes 0.

    Raises:
        ValueError: The runs were made on different image lists, name
            different statistics for the metric, or have other strata.
    """
    if a.images_sha256 != b.images_sha256:
        raise ValueError(
            f'cannot pair runs on different images: image list SHA-256 '
            f'{a.images_sha256} against {b.images_sha256}; compare runs '
            'evaluated on the same image list')
    (name, params), (name_b, params_b) = (metric_entry(a, metric_key),
                                          metric_entry(b, metric_key))
    if name != name_b:
        raise ValueError(f'metric {metric_key!r} is {name!r} in one run and '
                         f'{name_b!r} in the other: they cannot be paired')
    sa, sb = _strata(a, params), _strata(b, params_b)
    if (sa is None) != (sb is None) or (
            sa is not None and not np.array_equal(sa, sb)):
        raise ValueError(f'metric {metric_key!r}: the runs resample within '
                         'different strata; pair runs with the same strata')
    diffs = np.subtract(*bootstrap._replicates([a, b], metric_key))
    lo, hi = bootstrap._percentiles(diffs)
    method = (f'paired percentile bootstrap ({bootstrap.resamples} '
              f'resamples, seed {bootstrap.seed})')
    if name == 'accuracy':
        x = a.arrays[_one_array(params['arrays'])]
        y = b.arrays[_one_array(params_b['arrays'])]
        p_value = mcnemar_p_value(int(np.count_nonzero(x & ~y)),
                                  int(np.count_nonzero(~x & y)))
        method += '; exact McNemar p-value'
    else:
        below = 1 + np.count_nonzero(diffs <= 0)
        above = 1 + np.count_nonzero(diffs >= 0)
        p_value = min(1.0, 2 * min(below, above) / (len(diffs) + 1))
        method += '; bootstrap p-value'
    return Comparison(compute(a, metric_key) - compute(b, metric_key), lo,
                      hi, float(p_value), method, not lo <= 0 <= hi)
