"""Training curves from mmengine logs and the k-NN monitor.

Reads what a run leaves in its work dir:

- ``<timestamp>/vis_data/scalars.json``: one JSON object per line, written
  by mmengine's ``LocalVisBackend``. Training lines (every logging interval)
  carry ``iter`` (the global iteration), ``epoch`` in epoch-based runs, and
  the logged scalars: ``loss``, ``lr``, ``time``, ``data_time`` and what
  hooks add (weight decay, momentum, teacher temperature ...). Lines without
  ``iter`` (validation metrics, the k-NN monitor's points) are stepped by
  epoch in epoch-based runs, by iteration otherwise; their ``time`` and
  ``data_time`` are the validation loop's, kept as ``val/time`` and
  ``val/data_time``.
- ``knn_curve.json``: the :class:`~mmbcssl.engine.hooks.KNNMonitorHook`'s
  list of ``{"epoch": e, "knn/k20_top1": ..., ...}`` points (the paper's
  Figure 3).

A resumed run has several timestamp folders; their lines are merged, the
later one winning where both logged the same step.
"""
import fnmatch
import glob
import json
import math
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

# keys whose best value is the lowest / the highest; others have no "best"
_LOWER_IS_BETTER = ('loss', 'err')
_HIGHER_IS_BETTER = ('top1', 'top5', 'acc', 'ap', 'miou', 'map')


class LogFormatError(ValueError):
    """A log file that is not in the format this module reads."""


@dataclass
class Series:
    """One scalar of one run.

    Args:
        x (np.ndarray): Steps, in ``unit``.
        y (np.ndarray): Values.
        unit (str): ``'iter'`` or ``'epoch'``.
    """
    x: np.ndarray
    y: np.ndarray
    unit: str


@dataclass
class RunLog:
    """The scalars of one run.

    Args:
        label (str): Legend label.
        series (dict): Key -> :class:`Series`.
        iters_per_epoch (int, optional): Of an epoch-based run: from
            mmengine's text log (``Epoch(train) [e][i/N]``), else the
            smallest value the training lines allow.
        sources (list[str]): Files read.
    """
    label: str
    series: Dict[str, Series] = field(default_factory=dict)
    iters_per_epoch: Optional[int] = None
    sources: List[str] = field(default_factory=list)


def _read_scalars(path: str) -> List[dict]:
    lines = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise LogFormatError(
                    f'{path}:{n} is not a JSON object per line (mmengine '
                    f'scalars.json): {e.msg}') from None
            if not isinstance(obj, dict) or 'step' not in obj:
                raise LogFormatError(
                    f'{path}:{n} has no "step"; expected mmengine '
                    'vis_data/scalars.json lines')
            lines.append(obj)
    return lines


def _read_knn_curve(path: str) -> List[dict]:
    with open(path) as f:
        try:
            points = json.load(f)
        except json.JSONDecodeError as e:
            raise LogFormatError(f'{path} is not JSON: {e.msg}') from None
    if not isinstance(points, list) or not all(
            isinstance(p, dict) and 'epoch' in p for p in points):
        raise LogFormatError(
            f'{path} is not a k-NN curve (a list of {{"epoch": ..., '
            '"knn/k20_top1": ...}} points, as KNNMonitorHook writes)')
    return points


def find_log_files(path: str) -> Tuple[List[str], Optional[str]]:
    """The ``scalars.json`` files and the ``knn_curve.json`` of ``path``.

    ``path`` is a work dir (its ``*/vis_data/scalars.json`` in timestamp
    order and its ``knn_curve.json``), a ``scalars.json`` or a
    ``knn_curve.json``.
    """
    if osp.isdir(path):
        scalars = sorted(
            glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')) +
            glob.glob(osp.join(path, 'vis_data', 'scalars.json')))
        knn = osp.join(path, 'knn_curve.json')
        knn = knn if osp.isfile(knn) else None
        if not scalars and knn is None:
            raise FileNotFoundError(
                f'no */vis_data/scalars.json or knn_curve.json under '
                f'{path!r}; is it a work dir of tools/train.py?')
        return scalars, knn
    if not osp.isfile(path):
        raise FileNotFoundError(f'log {path!r} not found')
    if osp.basename(path) == 'knn_curve.json':
        return [], path
    return [path], None


# mmengine's text log names the loader length: "Epoch(train) [1][ 4/10]"
_EPOCH_PROGRESS = re.compile(r'Epoch\(train\)\s*\[\s*\d+\]\[\s*\d+/(\d+)\]')


def _loader_length(scalars_file: str) -> Optional[int]:
    """Iterations per epoch from the text log next to ``scalars_file``
    (``<work_dir>/<timestamp>/<timestamp>.log``), if there is one."""
    run_dir = osp.dirname(osp.dirname(scalars_file))
    for log in sorted(glob.glob(osp.join(run_dir, '*.log'))):
        with open(log, errors='replace') as f:
            for line in f:
                m = _EPOCH_PROGRESS.search(line)
                if m:
                    return int(m.group(1))
    return None


def _to_series(points: Dict[str, Dict[float, float]],
               unit: str) -> Dict[str, Series]:
    out = {}
    for key, by_step in points.items():
        steps = sorted(by_step)
        out[key] = Series(np.array(steps, dtype=float),
                          np.array([by_step[s] for s in steps], dtype=float),
                          unit)
    return out


def load_run(path: str, label: Optional[str] = None) -> RunLog:
    """Read one run (see :func:`find_log_files` for what ``path`` can be).

    Raises:
        FileNotFoundError: nothing to read at ``path``.
        LogFormatError: a file in another format.
    """
    scalar_files, knn_file = find_log_files(path)
    if label is None:
        base = path.rstrip('/')
        if osp.isfile(base):  # <work_dir>/<timestamp>/vis_data/scalars.json
            parts = osp.normpath(base).split(osp.sep)
            base = osp.sep.join(parts[:-3]) if len(parts) > 3 and \
                parts[-2] == 'vis_data' else osp.dirname(base)
        label = osp.basename(base) or base
    run = RunLog(label=label, sources=scalar_files + [f for f in [knn_file]
                                                      if f])
    train: Dict[str, Dict[float, float]] = {}
    other: Dict[str, Dict[float, float]] = {}
    bound, epoch_based = 0, False
    for path_ in scalar_files:
        for line in _read_scalars(path_):
            if 'iter' in line:  # a training line
                it = int(line['iter'])
                if 'epoch' in line:
                    epoch_based = True
                    # iteration it falls in epoch e: it <= e * per_epoch
                    bound = max(bound, math.ceil(it / int(line['epoch'])))
                target, step = train, float(it)
            else:
                target, step = other, float(line['step'])
            for key, value in line.items():
                if key in ('step', 'iter', 'epoch') or \
                        not isinstance(value, (int, float)):
                    continue
                if target is other and key in ('time', 'data_time'):
                    key = f'val/{key}'  # the validation loop's timing
                target.setdefault(key, {})[step] = float(value)
    if epoch_based:
        lengths = [n for n in map(_loader_length, scalar_files) if n]
        # without a text log: the smallest length the lines allow
        run.iters_per_epoch = lengths[-1] if lengths else bound
    run.series.update(_to_series(train, 'iter'))
    # Lines without ``iter`` are evaluations (validation metrics, the k-NN
    # monitor); training lines logged after one carry its last value
    # forward, so the evaluation points are the curve.
    run.series.update(
        _to_series(other, 'epoch' if epoch_based or not train else 'iter'))
    if knn_file:
        points = {}
        for p in _read_knn_curve(knn_file):
            for key, value in p.items():
                if key != 'epoch' and isinstance(value, (int, float)):
                    points.setdefault(key, {})[float(p['epoch'])] = value
        run.series.update(_to_series(points, 'epoch'))
    return run


def match_keys(run: RunLog, pattern: str) -> List[str]:
    """Keys of ``run`` equal to ``pattern`` or matching it as a glob."""
    if pattern in run.series:
        return [pattern]
    return sorted(k for k in run.series if fnmatch.fnmatchcase(k, pattern))


def _on_axis(run: RunLog, s: Series, axis: str) -> np.ndarray:
    if s.unit == axis:
        return s.x
    if run.iters_per_epoch is None:
        raise LogFormatError(
            f'{run.label}: cannot put a per-{s.unit} curve on an {axis} axis'
            ' without epoch-based training lines to convert with; use '
            f'--x-axis {s.unit}')
    if axis == 'iter':
        return s.x * run.iters_per_epoch
    return s.x / run.iters_per_epoch


def check_keys(runs: Sequence[RunLog], keys: Sequence[str]) -> None:
    """Raise :class:`LogFormatError` for a pattern no run matches."""
    for pattern in keys:
        if not any(match_keys(run, pattern) for run in runs):
            known = sorted({k for run in runs for k in run.series})
            raise LogFormatError(
                f'no run logged {pattern!r}; keys found: '
                f'{", ".join(known[:30])}')


def default_x_axis(runs: Sequence[RunLog], keys: Sequence[str]) -> str:
    """'epoch' when a plotted curve is per epoch, else 'iter'."""
    for run in runs:
        for pattern in keys:
            if any(run.series[k].unit == 'epoch'
                   for k in match_keys(run, pattern)):
                return 'epoch'
    return 'iter'


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    kernel = np.ones(window) / window
    head = np.array([y[:i + 1].mean() for i in range(window - 1)])
    return np.concatenate([head, np.convolve(y, kernel, mode='valid')])


def plot_runs(runs: Sequence[RunLog],
              keys: Sequence[str],
              x_axis: Optional[str] = None,
              title: Optional[str] = None,
              smooth: int = 1,
              width: int = 800,
              row_height: int = 260,
              dpi: int = 100):
    """One figure, one panel per key pattern, one line per run and key.

    Args:
        runs (Sequence[RunLog]): The runs.
        keys (Sequence[str]): Keys or glob patterns (``knn/k*_top1``).
        x_axis (str, optional): ``'iter'`` or ``'epoch'``; None picks
            :func:`default_x_axis`.
        title (str, optional): Figure title.
        smooth (int): Moving-average window over logged points (per-
            iteration curves only). Defaults to 1 (none).
        width (int): Pixels. Defaults to 800.
        row_height (int): Pixels per panel. Defaults to 260.
        dpi (int): Defaults to 100.

    Returns:
        matplotlib.figure.Figure: ``width x (len(keys) * row_height)``
        pixels.

    Raises:
        LogFormatError: a pattern that matches no key of any run.
    """
    from matplotlib.figure import Figure
    check_keys(runs, keys)
    x_axis = x_axis or default_x_axis(runs, keys)
    fig = Figure(figsize=(width / dpi, len(keys) * row_height / dpi),
                 dpi=dpi)
    axes = fig.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    for ax, pattern in zip(axes, keys):
        for run in runs:
            for key in match_keys(run, pattern):
                s = run.series[key]
                y = _smooth(s.y, smooth) if s.unit == 'iter' else s.y
                name = run.label if len(runs) > 1 else ''
                if key != pattern or len(runs) == 1:
                    name = f'{name}: {key}' if name else key
                ax.plot(_on_axis(run, s, x_axis), y, label=name,
                        marker='o' if s.unit == 'epoch' else None,
                        markersize=3, linewidth=1.2)
        ax.set_ylabel(pattern, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc='best')
    axes[-1].set_xlabel('iteration' if x_axis == 'iter' else 'epoch',
                        fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _direction(key: str) -> Optional[str]:
    low = key.lower()
    if any(w in low for w in _LOWER_IS_BETTER):
        return 'min'
    if any(w in low for w in _HIGHER_IS_BETTER):
        return 'max'
    return None


def summarize(runs: Sequence[RunLog], keys: Sequence[str]) -> List[dict]:
    """Per run: seconds per iteration, and last / best value of each key.

    ``time`` is mmengine's mean seconds per iteration over a logging window;
    the first window (start-up) is left out when there are others.
    """
    rows = []
    for run in runs:
        row = dict(run=run.label, iters_per_epoch=run.iters_per_epoch)
        for name in ('time', 'data_time'):
            s = run.series.get(name)
            if s is not None and len(s.y):
                y = s.y[1:] if len(s.y) > 1 else s.y
                row[name] = dict(mean=float(y.mean()),
                                 median=float(np.median(y)), windows=len(y))
        values = {}
        for pattern in keys:
            for key in match_keys(run, pattern):
                s = run.series[key]
                entry = dict(last=float(s.y[-1]), last_at=float(s.x[-1]),
                             unit=s.unit)
                direction = _direction(key)
                if direction:
                    i = int(np.argmin(s.y) if direction == 'min' else
                            np.argmax(s.y))
                    entry.update(best=float(s.y[i]), best_at=float(s.x[i]),
                                 best_is=direction)
                else:
                    entry.update(min=float(s.y.min()), max=float(s.y.max()))
                values[key] = entry
        row['values'] = values
        rows.append(row)
    return rows


def format_summary(rows: Sequence[dict]) -> str:
    """The summary as text, one block per run."""
    out = []
    for row in rows:
        out.append(f'{row["run"]}:')
        if 'time' in row:
            t = row['time']
            line = (f'  time per iteration: {t["mean"]:.3f} s mean, '
                    f'{t["median"]:.3f} s median ({t["windows"]} logging '
                    'windows')
            if 'data_time' in row:
                line += f'; data {row["data_time"]["mean"]:.3f} s mean'
            out.append(line + ')')
        if row.get('iters_per_epoch'):
            out.append(f'  iterations per epoch: {row["iters_per_epoch"]}')
        for key, v in row['values'].items():
            at = f'{v["unit"]} {v["last_at"]:g}'
            line = f'  {key}: last {v["last"]:.4g} ({at})'
            if 'best' in v:
                line += (f', best ({v["best_is"]}) {v["best"]:.4g} '
                         f'({v["unit"]} {v["best_at"]:g})')
            else:
                line += f', range {v["min"]:.4g} .. {v["max"]:.4g}'
            out.append(line)
    return '\n'.join(out)
