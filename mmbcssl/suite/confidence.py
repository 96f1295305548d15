"""How sure the report is of each number: intervals and paired verdicts.

Every result a suite writes keeps its per-image outcomes beside it
(:mod:`mmbcssl.evaluation.outcomes`). From them alone, with no second pass
over the data, the report gives each cell a 95% interval and compares two
runs made on the same images (:mod:`mmbcssl.evaluation.statistics`). An
outcomes file that is missing, changed, or whose whole-sample value is not
the number its result holds gives no interval, and the report says why.
"""
import os.path as osp
import re
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from mmbcssl.evaluation.columns import COLUMNS
from mmbcssl.evaluation.outcomes import (Outcomes, OutcomesError,
                                         read_outcomes)
from mmbcssl.evaluation.statistics import (Bootstrap, Interval,
                                           clopper_pearson, compute, paired)

# a whole-sample value recomputed from the outcomes must equal the
# result's number to this relative tolerance (float32 sums, JSON text)
_REPRODUCED = 1e-6
# columns whose numbers are counts, not estimates from test images
EXACT_COLUMNS = ('params_m', 'flops_g')


@dataclass
class Evidence:
    """What one cell of a run was computed from: the outcomes and the
    metric key that recomputes it, and the column's unit factor."""
    outcomes: Outcomes
    metric: str
    scale: float


def result_path(work_dir: str, result: Mapping) -> str:
    return osp.join(work_dir, 'results', f'{result.get("name")}.json')


def load_evidence(work_dir: str, by_kind: Mapping[str, Mapping],
                  values: Mapping[str, float]
                  ) -> Tuple[Dict[str, Evidence], List[Tuple[str, str]]]:
    """The outcomes behind each filled column of a run.

    Returns:
        tuple: ``{column id: Evidence}`` for the columns whose result keeps
        outcomes that reproduce its number, and ``[(name, why)]`` for the
        results whose outcomes are missing, changed or do not reproduce
        the number (their cells get no interval).
    """
    evidence: Dict[str, Evidence] = {}
    problems: List[Tuple[str, str]] = []
    read: Dict[str, Optional[Outcomes]] = {}
    for c in values:
        if c in EXACT_COLUMNS:
            continue
        column = COLUMNS[c]
        result = by_kind[column.evaluation]
        name = str(result.get('name') or column.evaluation)
        record = result.get('outcomes')
        if not record:
            if name not in read:
                read[name] = None
                problems.append((name, 'written without per-image outcomes '
                                 '(by an older version): no interval; '
                                 're-run it (--force) to get one'))
            continue
        if name not in read:
            try:
                read[name] = read_outcomes(result_path(work_dir, result),
                                           record)
            except OutcomesError as e:
                read[name] = None
                problems.append((name, f'no interval: {e}'))
        outcomes = read[name]
        if outcomes is None:
            continue
        if column.metric not in outcomes.meta.get('metrics', {}):
            problems.append((name, f'its outcomes cannot recompute '
                             f'{column.metric}: no interval for '
                             f'{column.header}'))
            continue
        whole = compute(outcomes, column.metric) * column.scale
        if abs(whole - values[c]) > _REPRODUCED * max(1., abs(values[c])):
            problems.append((name, f'its outcomes give {column.metric} = '
                             f'{whole:.6g}, not the {values[c]:.6g} it '
                             'records: they are not the ones it was made '
                             'from; no interval'))
            continue
        evidence[c] = Evidence(outcomes, column.metric, column.scale)
    return evidence, problems


def intervals(evidence: Mapping[str, Evidence], bootstrap: Bootstrap
              ) -> Tuple[Dict[str, Interval], List[Tuple[str, str]]]:
    """``{column id: Interval}`` in the column's unit, and ``[(column
    header, why)]`` for the cells whose metric cannot be computed on a
    resample (a ROC-AUC whose resample drew one class only)."""
    out, problems = {}, []
    for c, e in evidence.items():
        try:
            i = bootstrap.interval(e.outcomes, e.metric)
        except (ValueError, ZeroDivisionError) as err:
            problems.append((COLUMNS[c].header, f'no interval: its metric '
                             f'cannot be computed on a resample ({err})'))
            continue
        out[c] = replace(i, value=i.value * e.scale, lo=i.lo * e.scale,
                         hi=i.hi * e.scale)
    return out, problems


def imagenet_c_intervals(evidence: Evidence, keys: Sequence[str],
                         bootstrap: Bootstrap) -> Dict[str, Interval]:
    """Intervals of the cells of the ImageNet-C detail table (``keys``:
    its ``imagenet-c/...`` metrics): one pass's error, the exact
    Clopper-Pearson interval of that pass; a mean, CE or relative CE, the
    bootstrap of the same ``imagenet_c`` statistic the mCE is made with
    (one resample of the images for all passes)."""
    outcomes = evidence.outcomes
    entries = outcomes.meta.get('metrics', {})
    # the relative numbers need the clean error the relative mCE was given
    absolute = entries.get('imagenet-c/mCE') or entries.get(evidence.metric)
    relative = entries.get('imagenet-c/relative_mCE')
    out: Dict[str, Interval] = {}
    derived = {}
    for key in keys:
        m = re.fullmatch(r'imagenet-c/error/(\w+)/(\d)', key)
        array = outcomes.arrays.get(f'{m.group(1)}/{m.group(2)}') \
            if m else None
        if array is not None:
            n = len(array)
            lo, hi = clopper_pearson(int(n - array.sum()), n,
                                     bootstrap.level)
            out[key] = Interval(100. * (1 - array.mean()), 100. * lo,
                                100. * hi, 'exact (Clopper-Pearson)', None,
                                None, bootstrap.level)
        elif key.startswith('imagenet-c/') and not m:
            base = relative if 'relative' in key else absolute
            if base:
                derived[key] = dict(base, which=key[len('imagenet-c/'):])
    if derived:
        view = Outcomes(outcomes.images, outcomes.arrays, outcomes.kind,
                        dict(outcomes.meta, metrics=derived))
        for key in derived:
            try:
                out[key] = bootstrap.interval(view, key)
            except ValueError:  # an extra corruption, outside the 75
                pass
    return out


def cell(value: float, interval: Optional[Interval], exact: bool) -> str:
    """A table cell: the number and its interval, ``75.00 [74.80, 75.20]``
    (an exact count is the number alone)."""
    if interval is None or exact:
        return f'{value:.2f}'
    return f'{value:.2f} [{interval.lo:.2f}, {interval.hi:.2f}]'


def protocol_text(bootstrap: Bootstrap) -> str:
    """The protocol list's line on the intervals."""
    return (f'Intervals: {bootstrap.level:.0%} over the test images. A '
            'single accuracy: the exact Clopper-Pearson interval. Every '
            f'other number: percentile bootstrap, {bootstrap.resamples} '
            f'resamples of the images, seed {bootstrap.seed}, computed from '
            'the per-image outcomes kept with each result (one resample '
            'for all 75 ImageNet-C passes; transfer resamples within each '
            'set). Params and FLOPs are counts: exact. Published rows carry '
            'no interval: their per-image outcomes are not published.')


@dataclass
class PairVerdict:
    column: str
    a: str
    b: str
    text: str
    significant: Optional[bool]  # None: not paired


def compare(runs: Sequence, bootstrap: Bootstrap) -> List[PairVerdict]:
    """Paired comparisons of every two runs, column by column, where both
    keep outcomes: the difference (second minus first), its interval, the
    p-value, and the verdict; runs made on different image lists are not
    paired, and the verdict says so.

    Args:
        runs (Sequence[Row]): The measured rows (``evidence`` filled).
    """
    verdicts = []
    for a, b in combinations(runs, 2):
        for c in COLUMNS:
            ea, eb = a.evidence.get(c), b.evidence.get(c)
            if ea is None or eb is None:
                continue
            if ea.outcomes.images_sha256 != eb.outcomes.images_sha256:
                verdicts.append(PairVerdict(
                    c, a.label, b.label,
                    f'not paired: evaluated on different images (image '
                    f'lists {ea.outcomes.images_sha256[:12]} and '
                    f'{eb.outcomes.images_sha256[:12]})', None))
                continue
            try:
                r = paired(eb.outcomes, ea.outcomes, ea.metric, bootstrap)
            except (ValueError, ZeroDivisionError) as err:
                verdicts.append(PairVerdict(
                    c, a.label, b.label, f'not compared: its metric cannot '
                    f'be computed on a resample ({err})', None))
                continue
            s = ea.scale
            text = (f'{r.diff * s:+.2f} [{r.lo * s:+.2f}, {r.hi * s:+.2f}], '
                    f'p = {r.p_value:.3g} ({r.method}): ' +
                    ('significant' if r.significant else 'not significant'))
            verdicts.append(PairVerdict(c, a.label, b.label, text,
                                        r.significant))
    return verdicts


def comparison_markdown(verdicts: List[PairVerdict]) -> List[str]:
    """The report's "Paired comparisons" section: a table per pair of
    runs, and one sentence for pairs no column tells apart."""
    if not verdicts:
        return []
    lines = ['## Paired comparisons', '',
             'Second run minus first, on the same test images: the '
             'difference, its interval, the p-value and whether the '
             'interval excludes 0. Accuracies: exact McNemar test; other '
             'numbers: paired bootstrap (the same resamples for both runs).',
             '']
    pairs: Dict[Tuple[str, str], List[PairVerdict]] = {}
    for v in verdicts:
        pairs.setdefault((v.a, v.b), []).append(v)
    for (a, b), vs in pairs.items():
        lines += [f'### {b} vs {a}', '', '| column | difference |',
                  '|---|---|']
        lines += [f'| {COLUMNS[v.column].header} | {v.text} |' for v in vs]
        lines.append('')
        tested = [v for v in vs if v.significant is not None]
        if tested and not any(v.significant for v in tested):
            lines += [f'**{a} and {b} cannot be told apart** at this scale: '
                      'on every column the interval of their difference '
                      'contains 0.', '']
    return lines
