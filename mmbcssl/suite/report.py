"""Merge the results of one or many suite runs into the paper's tables
(Markdown, CSV, LaTeX) and figures.

Each table column is one protocol (:data:`mmbcssl.evaluation.columns.
COLUMNS`), filled from the result of its kind whatever the suite named it;
a cell whose fingerprint differs from the rest of its column is
flagged with a dagger and the differing fields; a result that is not there
is "–", never 0; published numbers appear as reference rows, marked with
their source, only under the column of their own protocol and only beside
a run whose weights were made the same way (a run of the same config, or
the converted released checkpoint they were measured on:
:func:`mmbcssl.evaluation.paper_results.made_the_same_way`), and a
published cell whose protocol record (data set, images, image size,
transform, k-NN k and T) differs from the measured cells beside it gets
the dagger and the differing fields too. The protocol list names how each
row's weights were made and where its recipe departs from the paper's
text. A result the work dir cannot vouch for (of another checkpoint, not
JSON, filling none of its columns) is never printed: the report names it
under "Not shown" with the reason (:func:`load_run`). The "Demo data"
banner follows the data the results were measured on (the demo data's
manifest, :func:`mmbcssl.evaluation.fingerprint.result_data`), not the
config's name.
"""
import csv
import io
import json
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from mmbcssl.evaluation.columns import (COLUMNS, TABLES, column_values,
                                        kind_metrics, shown_metrics,
                                        table_columns)
from mmbcssl.evaluation.fingerprint import (REPO_ROOT, comparable_protocol,
                                            flag_mixed, pretraining_record,
                                            published_differences,
                                            result_data)
from mmbcssl.evaluation.paper_results import (load_entries,
                                              made_the_same_way,
                                              published_protocols,
                                              published_values)
from mmbcssl.evaluation.robustness import (BENCHMARK_CORRUPTIONS,
                                           EXTRA_CORRUPTIONS, SEVERITIES)
from mmbcssl.evaluation.statistics import Bootstrap
from mmbcssl.fileio import atomic_write
from mmbcssl.utils.launch import UserError
from . import confidence
from .evaluations import results_by_kind


@dataclass
class Row:
    """One line of the tables: a suite run, or published numbers."""
    label: str
    values: Dict[str, float] = field(default_factory=dict)
    fingerprints: Dict[str, Dict] = field(default_factory=dict)
    published: bool = False
    source: str = ''
    # a published row: column id -> the protocol record of its number
    # (paper_results.published_protocol)
    protocols: Dict[str, Dict] = field(default_factory=dict)
    # the demo data trees its results were measured on (none: real data,
    # or no result names its data)
    demo_data: List[str] = field(default_factory=list)
    config: str = ''
    # how the weights were made (fingerprint.pretraining_record); for a
    # published row, what its numbers were measured on
    pretraining: Dict = field(default_factory=dict)
    kernel: Optional[int] = None
    problems: List[Tuple[str, str, str, str]] = field(default_factory=list)
    # results of the work dir the tables leave out: (name, why)
    not_shown: List[Tuple[str, str]] = field(default_factory=list)
    c_errors: Dict[Tuple[str, int], float] = field(default_factory=dict)
    # the metrics of the ImageNet-C result (centre crop), for its table
    c_metrics: Dict[str, float] = field(default_factory=dict)
    # and the intervals of its cells (with intervals on)
    c_intervals: Dict[str, object] = field(default_factory=dict)
    knn_curve: List[Dict] = field(default_factory=list)
    figures: List[str] = field(default_factory=list)
    # what each cell was computed from (per-image outcomes), its interval,
    # and the results that give no interval: (name, why)
    evidence: Dict[str, object] = field(default_factory=dict)
    intervals: Dict[str, object] = field(default_factory=dict)
    no_interval: List[Tuple[str, str]] = field(default_factory=list)


def load_run(work_dir: str, outcomes: bool = True) -> Row:
    """The row of one suite work dir (``suite.json`` + ``results/``);
    with ``outcomes``, the per-image outcomes behind each cell too
    (``evidence``, checked to give its number back; ``no_interval``).

    A result the work dir cannot vouch for is left out of the tables and
    named in the row's ``not_shown`` with the reason: one that is not valid
    JSON, one made with another checkpoint or config than ``suite.json``'s
    (a file copied in from another work dir), and one that fills none of
    the columns of its kind (a k-NN without k=20).

    Raises:
        UserError: ``suite.json`` is absent or malformed.
    """
    path = osp.join(work_dir, 'suite.json')
    if not osp.isfile(path):
        raise UserError(f'{work_dir} is not a suite work dir (no '
                        'suite.json); run tools/run_suite.py first')
    info = _read_object(path)
    if isinstance(info, str) or not isinstance(info.get('config'), str):
        why = info if isinstance(info, str) else 'it names no config'
        raise UserError(f'{path} is malformed ({why}); run '
                        'tools/run_suite.py again in this work dir, or '
                        'leave it out of the report')
    sha = info.get('checkpoint_sha256')
    label = (f'{osp.splitext(osp.basename(info["config"]))[0]} @ '
             f'{sha[:8] if sha else "random init"}')
    row = Row(label, config=info['config'],
              pretraining=_pretraining_of(info))
    results = {}
    for name, result in result_files(work_dir).items():
        why = (result if isinstance(result, str) else
               _foreign(result, info))
        if why:
            row.not_shown.append((name, why))
        else:
            results[name] = result
    for name, result in results.items():
        data = result_data(result.get('fingerprint') or {}) \
            if result.get('status', 'ok') == 'ok' else None
        if data and 'demo_version' in data and \
                data['root'] not in row.demo_data:
            row.demo_data.append(data['root'])
        if result.get('status') in ('missing', 'failed'):
            row.problems.append((name, result['status'],
                                 result.get('reason') or 'no reason '
                                 'recorded', result.get('command', '')))
    by_kind = results_by_kind(results)
    row.values = column_values(by_kind)
    for kind, result in by_kind.items():
        read = kind_metrics(kind)
        if read and result.get('status', 'ok') == 'ok' and not any(
                m in (result.get('metrics') or {}) for m in read):
            row.not_shown.append((
                result.get('name') or kind,
                f'it fills none of the columns of a {kind} result (they '
                f'read {", ".join(read)}; it has '
                f'{", ".join(sorted(result.get("metrics") or {})) or "none"})'
            ))
    row.fingerprints = {
        c: by_kind[COLUMNS[c].evaluation].get('fingerprint') or {}
        for c in row.values
    }
    if outcomes:
        row.evidence, row.no_interval = confidence.load_evidence(
            work_dir, by_kind, row.values)
    c = by_kind.get('robustness.c', {})
    c = c.get('metrics', {}) if c.get('status') == 'ok' else {}
    row.c_metrics = dict(c)
    for key, value in c.items():
        m = re.fullmatch(r'imagenet-c/error/(\w+)/(\d)', key)
        if m:
            row.c_errors[(m.group(1), int(m.group(2)))] = float(value)
    backbone = next((fp.get('model', {}).get('backbone', '')
                     for fp in row.fingerprints.values()), '')
    m = re.search(r'kernel_size=(\d+)', backbone)
    row.kernel = int(m.group(1)) if m else None
    curve = info.get('knn_curve')
    if curve and osp.isfile(curve):
        with open(curve) as f:
            row.knn_curve = json.load(f)
    figures = osp.join(work_dir, 'figures')
    if osp.isdir(figures):
        row.figures = sorted(
            osp.join(figures, f) for f in os.listdir(figures)
            if f.endswith('.png'))
    return row


def _read_object(path: str):
    """The JSON object at ``path``, or a string saying why it is none."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        return f'not valid JSON: {type(e).__name__}: {e}'
    if not isinstance(data, dict):
        return f'a JSON {type(data).__name__}, not an object'
    return data


def _foreign(result: Mapping, info: Mapping) -> str:
    """Why a result is not of the work dir's run (``suite.json``: its
    checkpoint SHA-256 and config), or ''. The result's SHA is the one the
    suite recorded when it ran it (``request``), else its fingerprint's; a
    result naming neither cannot be told apart and is kept."""
    request = result.get('request') or {}
    fp_ckpt = (result.get('fingerprint') or {}).get('checkpoint') or {}
    if 'checkpoint_sha256' in request:
        sha = request['checkpoint_sha256']
    elif fp_ckpt.get('weights') not in (None, 'random init', 'not needed'):
        sha = fp_ckpt.get('sha256')
    else:
        return ''
    mine = info.get('checkpoint_sha256')
    if sha != mine:
        return (f'made with checkpoint SHA-256 {str(sha)[:12]}, not this '
                f"work dir's {str(mine)[:12]} (suite.json): a result of "
                'another run')
    config = request.get('config')
    if config and config != info['config']:
        return (f"made with config {config}, not this work dir's "
                f'{info["config"]} (suite.json): a result of another run')
    return ''


def load_results(work_dir: str) -> Dict[str, Dict]:
    """``{name: result}`` of a suite work dir's ``results/`` that hold a
    JSON object."""
    return {k: v for k, v in result_files(work_dir).items()
            if isinstance(v, dict)}


def result_files(work_dir: str) -> Dict[str, object]:
    """``{name: result}`` of every JSON file of a suite work dir's
    ``results/``; a file that holds no JSON object maps to a string saying
    why."""
    results = {}
    folder = osp.join(work_dir, 'results')
    for name in sorted(os.listdir(folder)) if osp.isdir(folder) else []:
        if name.endswith('.json'):
            results[name[:-len('.json')]] = _read_object(
                osp.join(folder, name))
    return results


def _pretraining_of(info: Dict) -> Dict:
    """suite.json's record of how the weights were made; for a work dir
    written before it was recorded, made now if the config and checkpoint
    are still there, else {} (no published row can be matched to it)."""
    if info.get('pretraining'):
        return dict(info['pretraining'])
    config = osp.join(REPO_ROOT, info['config']) \
        if not osp.isabs(info['config']) else info['config']
    checkpoint = info.get('checkpoint')
    if osp.isfile(config) and (checkpoint is None or osp.isfile(checkpoint)):
        return pretraining_record(config, checkpoint)
    return {}


def published_rows(runs: List[Row]) -> List[Row]:
    """The published numbers of the runs' pre-training configs and of the
    downstream configs that start from them, each once, and only for a
    config with a run made the same way
    (:func:`mmbcssl.evaluation.paper_results.made_the_same_way`)."""
    entries = load_entries()
    rows: List[Row] = []
    for run in runs:
        config = run.config
        rel = osp.relpath(config, REPO_ROOT) if osp.isabs(config) else config
        pre = next((e for e in entries if e.config == rel), None)
        if pre is None or any(r.config == rel for r in rows) or \
                not made_the_same_way(pre, dict(run.pretraining,
                                                config=rel)):
            continue
        m = re.search(r'_(\d+)x\d+_', osp.basename(rel))
        made = (f'measured on the released {pre.published_weights}'
                if pre.published_weights else
                f'published for the paper-text recipe of {rel}')
        row = _published_row(entries, rel,
                             kernel=int(m.group(1)) if m else None,
                             pretraining=dict(weights=made))
        if row is not None:
            rows.append(row)
    return rows


def _published_row(entries, config: str, **fields) -> Optional[Row]:
    """The published numbers of ``config`` and of the downstream configs
    that start from it as one row (None: it has none)."""
    values, sources = published_values(entries, config)
    if not values:
        return None
    return Row(f'{osp.splitext(osp.basename(config))[0]} (published)',
               values, published=True, source='; '.join(sources),
               config=config,
               protocols=published_protocols(entries, config), **fields)


def _cell(value: Optional[float]) -> str:
    return '–' if value is None else f'{value:.2f}'


def published_flags(rows: List[Row],
                    columns) -> Dict[str, Dict[int, str]]:
    """For each of ``columns``, the published rows (by position) whose
    number there was measured with another protocol than the measured
    cells beside it, each with the differing fields
    (:func:`mmbcssl.evaluation.fingerprint.published_differences`)."""
    # where no measured cell of a published cell's kind is in the table
    # (ImageNet-R 1000-way beside our 200-class), the demo data of the
    # measured cells that are still says the two are not comparable
    beside = {c: _measured_beside(rows, c) for c in columns}
    demo_beside = [{'data': 'demo data'} for c in columns
                   for v in beside[c] if 'data' in v][:1]
    flags: Dict[str, Dict[int, str]] = {c: {} for c in columns}
    for c in columns:
        measured = beside[c] or demo_beside
        for i, r in enumerate(rows):
            if not r.published or c not in r.values or not measured:
                continue
            record = r.protocols.get(c)
            fields = (', '.join(published_differences(record, measured))
                      if record else 'its protocol is not recorded')
            if fields:
                flags[c][i] = fields
    return flags


def table(rows: List[Row], columns: Tuple[str, ...],
          intervals: bool = True):
    """(header, body rows of cell strings, footnotes) of one table; columns
    that no row fills are left out. ``intervals``: a cell shows its row's
    interval after the number."""
    columns = [c for c in columns if any(c in r.values for r in rows)]
    notes = []
    # keyed by the row's position: two rows may share a label
    flags: Dict[str, Dict[int, str]] = {}
    for c in columns:
        flags[c] = flag_mixed({i: r.fingerprints.get(c)
                               for i, r in enumerate(rows)
                               if not r.published})
        for i, fields in flags[c].items():
            notes.append(f'† {rows[i].label}, {COLUMNS[c].header}: measured '
                         f'with another protocol than the rest of the '
                         f'column ({fields})')
    # A published cell stays in its column, beside the run it belongs to,
    # and is flagged like a measured cell when its protocol record differs
    # from the measured cells of its kind in the table: a separate table
    # would leave a 64-px demo number and a 224-px ImageNet one side by side
    # in the reader's eye all the same, without saying why they differ,
    # and would hide that a real-data run's cell is the one to compare.
    # The dagger travels with the cell into the CSV and LaTeX.
    for c, flagged in published_flags(rows, columns).items():
        for i, fields in flagged.items():
            flags[c][i] = fields
            notes.append(f'† {rows[i].label}, {COLUMNS[c].header}: '
                         'published with another protocol than the '
                         f'measured cells beside it ({fields}); not '
                         'comparable with them')
    header = ['Model'] + [COLUMNS[c].header for c in columns]
    body = []
    for i, r in enumerate(rows):
        cells = [r.label + (f' [{r.source}]' if r.published else '')]
        for c in columns:
            value = r.values.get(c)
            cell = _cell(value) if value is None else confidence.cell(
                value, r.intervals.get(c) if intervals else None,
                c in confidence.EXACT_COLUMNS)
            if i in flags[c]:
                cell += '†'
            cells.append(cell)
        body.append(cells)
    return header, body, notes, columns


def _measured_beside(rows: List[Row], column: str) -> List[Dict]:
    """The :func:`mmbcssl.evaluation.fingerprint.comparable_protocol` of
    each measured row's result of the column's kind (the result that fills
    it, or the other columns of the same kind where this one is "–"), with
    the k of the column's metric for a k-NN."""
    kind = COLUMNS[column].evaluation
    m = re.search(r'/k(\d+)_top1$', COLUMNS[column].metric)
    out = []
    for r in rows:
        fp = None if r.published else next(
            (f for c, f in r.fingerprints.items()
             if f and COLUMNS[c].evaluation == kind), None)
        if fp:
            view = comparable_protocol(fp)
            if m and 'temperature' in view:
                view['k'] = int(m.group(1))
            out.append(view)
    return out


def _record_text(record: Mapping) -> str:
    """A published protocol record in one line."""
    return ', '.join(f'{k} {v}' for k, v in record.items())


def markdown(rows: List[Row], demo: Optional[bool] = None,
             bootstrap: Optional[Bootstrap] = None,
             verdicts: Sequence[confidence.PairVerdict] = ()) -> str:
    """The report in Markdown.

    Args:
        rows (list[Row]): The runs, then the published rows.
        demo (bool, optional): Show the "Demo data" banner. Defaults to
            whether any run's results were measured on the demo data
            (:attr:`Row.demo_data`).
        bootstrap (Bootstrap, optional): The protocol of the cells'
            intervals (None: the cells show none).
        verdicts (Sequence[PairVerdict]): Paired comparisons to list.
    """
    lines = ['# Benchmark report', '']
    on_demo = [r for r in rows if r.demo_data]
    if demo is None:
        demo = bool(on_demo)
    if demo:
        runs = [r for r in rows if not r.published]
        which = ('' if len(on_demo) == len(runs) or not on_demo else
                 ' in the rows of ' + ', '.join(r.label for r in on_demo))
        roots = sorted({d for r in on_demo for d in r.demo_data})
        lines += [f'**Demo data**{which}. These numbers come from the '
                  'built-in synthetic data sets' +
                  (f' ({", ".join(roots)})' if roots else '') +
                  ' and a few CPU minutes of training: they show that the '
                  'pipeline runs end to end, not that anything was learned, '
                  'and are not comparable with any published row.', '']
    lines += ['Each column header names its protocol (below). "–": not '
              'measured that way. Published rows carry their source in '
              'brackets and appear only under the columns of their own '
              'protocol; a published cell measured another way than the '
              'measured cells beside it (data set, image size, transform, '
              'k-NN k and T) carries a dagger and the differing fields.' +
              (' Each measured number is followed by its '
               f'{bootstrap.level:.0%} interval in brackets (below).'
               if bootstrap else ''), '']
    used = set()
    for table_id, title in TABLES:
        header, body, notes, shown = table(rows, table_columns(table_id))
        if not shown:
            continue
        used.update(shown)
        lines += [f'## {title}', '', '| ' + ' | '.join(header) + ' |',
                  '|---' * len(header) + '|']
        lines += ['| ' + ' | '.join(cells) + ' |' for cells in body]
        lines += [''] + notes + ([''] if notes else [])
    for r in rows:
        if r.c_metrics:
            lines += [f'## ImageNet-C error (%) of {r.label}', '']
            lines += imagenet_c_table(r.c_metrics, r.c_intervals) + ['']
    problems = [(r.label, *p) for r in rows for p in r.problems]
    if problems:
        lines += ['## Missing results', '']
        for label, name, status, reason, command in problems:
            lines.append(f'- missing: {label} / {name} ({status}): '
                         f'{reason}' + (f'. To produce it: `{command}`'
                                        if command else ''))
        lines.append('')
    refused = [(r.label, *n) for r in rows for n in r.not_shown]
    if refused:
        lines += ['## Not shown', '', 'Results of the work dirs that no '
                  'table shows, and why:', '']
        lines += [f'- not shown: {label} / {name}: {why}'
                  for label, name, why in refused]
        lines.append('')
    lines += confidence.comparison_markdown(list(verdicts))
    lacking = [(r.label, *n) for r in rows for n in r.no_interval]
    if bootstrap and lacking:
        lines += ['## Numbers without an interval', '']
        lines += [f'- {label} / {name}: {why}' for label, name, why in lacking]
        lines.append('')
    lines += ['## Protocols', '']
    if bootstrap:
        lines.append('- ' + confidence.protocol_text(bootstrap))
    made = [r for r in rows if r.pretraining]
    if made:
        lines.append('- Pre-training (how each row\'s weights were made):')
        lines += [f'  - {r.label}: {_pretraining_text(r.pretraining)}'
                  for r in made]
    for c in COLUMNS:
        if c in used:
            measured = _measured_transforms(rows, c)
            published = [_record_text(r.protocols[c]) for r in rows
                         if r.published and c in r.values and
                         c in r.protocols]
            lines.append(f'- {COLUMNS[c].header}: {COLUMNS[c].protocol}' + (
                f'. Measured here with: {"; ".join(measured)}'
                if measured else '') + (
                f'. Published numbers: {"; ".join(dict.fromkeys(published))}'
                if published else ''))
    return '\n'.join(lines) + '\n'


def linear_published_rows() -> List[Row]:
    """The published numbers of every pre-training config with a published
    linear probe, each once: the reference rows of a robustness report,
    whose probe checkpoint names no pre-training run."""
    entries = load_entries()
    rows: List[Row] = []
    for e in entries:
        pre = e.metadata.get('Pre-training')
        if not e.config.startswith('configs/linear/') or not e.results or \
                not pre or any(r.config == pre for r in rows):
            continue
        row = _published_row(entries, pre)
        if row is not None:
            rows.append(row)
    return rows


#: the ImageNet-C results a robustness report details, by kind
_C_TITLES = (('robustness.c', 'ImageNet-C (centre crop 224)'),
             ('robustness.c_resize256',
              'ImageNet-C (resize 256 + centre crop 224)'))


def robustness_markdown(name: str, values: Mapping[str, float],
                        results: Mapping[str, Mapping],
                        demo: bool = False, work_dir: Optional[str] = None,
                        bootstrap: Optional[Bootstrap] = Bootstrap()
                        ) -> str:
    """The report of one probe (``tools/robustness_report.py``): its row
    (``values``: column -> value) and the published rows
    (:func:`linear_published_rows`) under the columns of table
    ``robustness_report``, then the ImageNet-C detail of ``results``
    (kind -> result). A published cell of another protocol than the
    result that fills its column (or, where none does, beside results on
    the demo data) is daggered as in :func:`table`; the demo banner shows
    when ``demo`` is set or a result was measured on the demo data. With
    ``work_dir`` (the suite work dir of ``results``) and ``bootstrap``,
    every measured cell carries its interval, as in :func:`markdown`."""
    lines = [f'# Robustness of {name}', '']
    ours = Row(f'**{name} (this run)**', dict(values), fingerprints={
        c: (results.get(COLUMNS[c].evaluation) or {}).get('fingerprint')
        or {} for c in values if c in COLUMNS})
    if work_dir and bootstrap:
        measured = {c: v for c, v in values.items()
                    if COLUMNS[c].evaluation in results}
        ours.evidence, ours.no_interval = confidence.load_evidence(
            work_dir, results, measured)
        add_intervals(ours, bootstrap)
    demo = demo or any(
        'demo_version' in (result_data(r.get('fingerprint') or {}) or {})
        for r in results.values())
    if demo:
        lines += [
            '**Demo data** (built-in synthetic sets in the benchmarks\' '
            'layouts; ImageNet-C-style corruptions made with '
            'imagecorruptions): these numbers check that the pipeline runs; '
            'they are not comparable with any published row.', ''
        ]
    rows = [ours] + ([] if demo else linear_published_rows())
    header, body, notes, columns = table(rows,
                                         table_columns('robustness_report'))
    lines += [
        'Top-1 in %, errors in % (lower is better). Each column header '
        'names its protocol; a published number appears only under the '
        'column of the protocol it was measured with, and "–" marks a '
        'number that was not measured that way.', '',
        '| ' + ' | '.join(header) + ' |', '|---' * len(header) + '|'
    ] + ['| ' + ' | '.join(cells) + ' |' for cells in body]
    lines += [''] + notes if notes else []
    lines += ['', 'Protocols:', '']
    lines += [f'- {COLUMNS[c].header}: {COLUMNS[c].protocol}'
              for c in columns]
    if ours.intervals:
        lines.append('- ' + confidence.protocol_text(bootstrap))
    lines += [f'- no interval: {result}: {why}'
              for result, why in ours.no_interval]
    for kind, title in _C_TITLES:
        metrics = (results.get(kind) or {}).get('metrics')
        if metrics:
            cells = _c_detail_intervals(ours, kind, metrics, bootstrap)
            lines += ['', f'## {title}', '']
            lines += imagenet_c_table(metrics, cells)
    return '\n'.join(lines) + '\n'


def imagenet_c_table(c: Mapping[str, float],
                     intervals: Mapping[str, object] = {}) -> List[str]:
    """The ImageNet-C detail of one result's metrics: mCE, relative mCE
    and the mean error, then the error of each corruption at each severity
    with its mean, CE and relative CE (the extra corruptions after, not in
    mCE), and the mean of the 15 at each severity. A partial tree (no mCE):
    the mean error of each corruption it has. ``intervals``: metric key ->
    the interval its cell shows."""

    def _cell(value: Optional[float], key: str = '') -> str:
        return '–' if value is None else confidence.cell(
            value, intervals.get(key), False)

    if 'imagenet-c/mCE' not in c:
        return ['**Partial** tree: no mCE. Per-corruption mean error (%):',
                ''] + [f'- {k.split("/")[-1]}: {v:.2f}'
                       for k, v in sorted(c.items())
                       if k.startswith('imagenet-c/partial_error/')]

    def get(key: str) -> str:
        return _cell(c.get(f'imagenet-c/{key}'), f'imagenet-c/{key}')

    lines = [
        f'- mCE (AlexNet-normalised, 15 corruptions): {get("mCE")}',
        f'- relative mCE: {get("relative_mCE")}' +
        ('' if 'imagenet-c/relative_mCE' in c else
         ' (needs the clean error)'),
        f'- unnormalised mean error over 15 x 5: {get("mean_error")}', '',
        '| corruption | ' + ' | '.join(f'severity {s}' for s in SEVERITIES)
        + ' | mean | CE | relative CE |',
        '|---' * (len(SEVERITIES) + 4) + '|'
    ]
    extras = [n for n in EXTRA_CORRUPTIONS if f'imagenet-c/error/{n}' in c]
    for name in BENCHMARK_CORRUPTIONS + tuple(extras):
        cells = [get(f'error/{name}/{s}') for s in SEVERITIES]
        cells += [get(f'{k}{name}') for k in ('error/', 'CE/', 'relative_CE/')]
        label = name + (' (extra, not in mCE)' if name in extras else '')
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    cells = [get(f'error/severity{s}') for s in SEVERITIES]
    cells += [get(k) for k in ('mean_error', 'mCE', 'relative_mCE')]
    lines.append('| **mean of the 15** | ' + ' | '.join(cells) + ' |')
    return lines


def _pretraining_text(record: Dict) -> str:
    """One line of the protocol list: the weights, the recipe and, for a
    variant, where it departs from the paper's text."""
    text = str(record.get('weights', 'unknown'))
    if record.get('config') and record.get('weights') != 'random init':
        text += f' ({record["config"]})'
    recipe = record.get('recipe') or {}
    if recipe:  # a DINO-style pre-training config
        text += '; recipe: ' + ', '.join(f'{k}={v}'
                                         for k, v in recipe.items())
        variant = record.get('variant') or []
        text += ('; variant: ' + ', '.join(variant) if variant else
                 '; paper text')
    return text


def _measured_transforms(rows: List[Row], column: str) -> List[str]:
    """The test transforms the runs of a column really used, from their
    fingerprints: a column's protocol text names the paper's transform,
    and a run at another size (the demo's 64 px) must say so."""
    seen = []
    for r in rows:
        protocol = (r.fingerprints.get(column) or {}).get('protocol') or {}
        transform = protocol.get('transform')
        if transform:
            text = ' + '.join(map(str, transform)) if isinstance(
                transform, list) else str(transform)
            if text not in seen:
                seen.append(text)
    return seen


def csv_tables(rows: List[Row]) -> Dict[str, str]:
    """One CSV per table (file stem -> text): each column's cell as the
    Markdown shows it, then, for a column with intervals, its bounds as
    numbers (``<header> lo`` / ``<header> hi``; empty where a row has
    none)."""
    out = {}
    for table_id, title in TABLES:
        header, body, _, shown = table(rows, table_columns(table_id),
                                       intervals=False)
        if not shown:
            continue
        bounded = [c for c in shown if any(c in r.intervals for r in rows)]
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(header + [f'{COLUMNS[c].header} {end}'
                                  for c in bounded for end in ('lo', 'hi')]
                        + ['published'])
        for r, cells in zip(rows, body):
            bounds = []
            for c in bounded:
                i = r.intervals.get(c)
                bounds += ['', ''] if i is None else [f'{i.lo:.6f}',
                                                      f'{i.hi:.6f}']
            writer.writerow(cells + bounds + [int(r.published)])
        stem = re.sub(r'[^a-z0-9]+', '_', title.lower()).strip('_')
        out[stem] = buf.getvalue()
    return out


def latex(rows: List[Row]) -> str:
    """The tables as LaTeX ``tabular`` environments (booktabs)."""

    def esc(text: str) -> str:
        return re.sub(r'([&%$#_{}])', r'\\\1', text).replace('–', '--')

    parts = []
    for table_id, title in TABLES:
        header, body, notes, shown = table(rows, table_columns(table_id))
        if not shown:
            continue
        parts += [f'% {title}', '\\begin{tabular}{l' + 'r' * len(shown) +
                  '}', '\\toprule', ' & '.join(map(esc, header)) +
                  ' \\\\', '\\midrule']
        parts += [' & '.join(esc(c).replace('†', '$^\\dagger$')
                             for c in cells) + ' \\\\' for cells in body]
        parts += ['\\bottomrule', '\\end{tabular}', '']
        parts += [f'% {n}' for n in notes]
    return '\n'.join(parts) + '\n'


def figures(rows: List[Row], out_dir: str) -> List[str]:
    """The report's PNGs; returns their paths (only those with data)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    made = []

    def save(fig, name):
        path = osp.join(out_dir, name)
        buf = io.BytesIO()
        fig.savefig(buf, format='png', dpi=110, bbox_inches='tight')
        plt.close(fig)
        atomic_write(buf.getvalue(), path)
        made.append(path)

    kernel_cols = ('knn_top1', 'linear_top1', 'linear_top1_best', 'c_mce',
                   'c_mean_error_resize256', 'sketch_top1', 'r_top1',
                   'a_top1', 'r_top1_1000way', 'a_top1_1000way')
    # a published number measured another way than ours (the demo's 64 px
    # beside ImageNet's 224) is left out: a line cannot carry a dagger
    other = published_flags(rows, kernel_cols)
    points = {}
    for c in kernel_cols:
        for published in (False, True):
            points[c, published] = sorted(
                ((r.kernel, r.values[c], r.intervals.get(c))
                 for i, r in enumerate(rows)
                 if r.kernel and c in r.values and
                 r.published == published and i not in other[c]),
                key=lambda p: p[:2])
    # a panel needs at least two kernel sizes: one point shows no trend
    present = [c for c in kernel_cols if len(
        {p[0] for published in (False, True)
         for p in points[c, published]}) >= 2]
    if present:
        fig, axes = plt.subplots(1, len(present),
                                 figsize=(3.2 * len(present), 3),
                                 squeeze=False)
        for ax, c in zip(axes[0], present):
            for published in (False, True):
                pts = points[c, published]
                if pts:
                    ax.errorbar(
                        [p[0] for p in pts], [p[1] for p in pts],
                        yerr=_error_bars(pts), capsize=3,
                        fmt='o--' if published else 'o-',
                        label='published' if published else 'this run')
            ax.set_title(COLUMNS[c].header, fontsize=8)
            ax.set_xlabel('kernel size')
            ax.legend(fontsize=7)
        save(fig, 'accuracy_vs_kernel.png')
    for r in rows:
        if r.c_errors:
            import numpy as np
            grid = np.array([[r.c_errors.get((c, s), np.nan)
                              for s in SEVERITIES]
                             for c in BENCHMARK_CORRUPTIONS])
            fig, ax = plt.subplots(figsize=(4.5, 5))
            im = ax.imshow(grid, cmap='magma_r', aspect='auto')
            ax.set_xticks(range(len(SEVERITIES)), SEVERITIES)
            ax.set_yticks(range(len(BENCHMARK_CORRUPTIONS)),
                          BENCHMARK_CORRUPTIONS, fontsize=7)
            ax.set_xlabel('severity')
            ax.set_title(f'ImageNet-C top-1 error (%)\n{r.label}\n'
                         f'{_c_cell_images(r)}', fontsize=8)
            fig.colorbar(im, ax=ax)
            save(fig, f'imagenet_c_{_slug(r.label)}.png')
    curves = [r for r in rows if r.knn_curve]
    if curves:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for r in curves:
            epochs = [p['epoch'] for p in r.knn_curve]
            for key in sorted({k for p in r.knn_curve for k in p
                               if k.endswith('_top1')}):
                ax.plot(epochs, [p.get(key) for p in r.knn_curve], 'o-',
                        label=f'{r.label} {key.split("/")[-1]}')
        ax.set_xlabel('pre-training epoch')
        ax.set_ylabel('k-NN top-1 (%)')
        ax.legend(fontsize=6)
        save(fig, 'knn_during_pretraining.png')
    speed = [r for r in rows if 'throughput' in r.values and (
        'linear_top1' in r.values or 'knn_top1' in r.values)]
    if speed:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        for r in speed:
            c = 'linear_top1' if 'linear_top1' in r.values else 'knn_top1'
            y = r.values[c]
            ax.errorbar([r.values['throughput']], [y], capsize=3, fmt='o',
                        yerr=_error_bars([(0, y, r.intervals.get(c))]))
            ax.annotate(r.label, (r.values['throughput'], y), fontsize=6)
        ax.set_xlabel('images / s')
        ax.set_ylabel('linear (else k-NN) top-1 (%)')
        save(fig, 'accuracy_vs_throughput.png')
    return made


def _error_bars(points) -> Optional[List[List[float]]]:
    """matplotlib's ``yerr`` of (x, value, interval or None) points: the
    distances to the bounds (0 where a point has no interval); None when
    no point has one."""
    if not any(p[2] for p in points):
        return None
    return [[p[1] - p[2].lo if p[2] else 0. for p in points],
            [p[2].hi - p[1] if p[2] else 0. for p in points]]


def _c_cell_images(row: Row) -> str:
    """How many images each cell of a row's ImageNet-C heat map holds."""
    e = row.evidence.get('c_mce') or row.evidence.get('c_mean_error')
    if e is None:
        return 'images per cell: not recorded'
    counts = e.outcomes.meta.get('pass_images')
    if isinstance(counts, dict) and len(set(counts.values())) > 1:
        return (f'{min(counts.values())}-{max(counts.values())} images per '
                'cell')
    return f'{len(e.outcomes.images)} images per cell'


def _slug(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9]+', '_', text).strip('_')


def distinct_labels(runs: List[Row], work_dirs: List[str]) -> None:
    """Give rows that share a label (two work dirs of one config and one
    checkpoint) their work dir's path after it, so that every footnote
    and flag names one row."""
    labels = [r.label for r in runs]
    for r, work_dir in zip(runs, work_dirs):
        if labels.count(r.label) > 1:
            r.label += f' ({work_dir})'


def add_intervals(row: Row, bootstrap: Bootstrap) -> None:
    """Give a measured row's cells their intervals from its evidence
    (:func:`load_run`), and list the cells whose metric cannot be computed
    on a resample under its ``no_interval``."""
    row.intervals, lacking = confidence.intervals(row.evidence, bootstrap)
    row.no_interval += lacking


def _c_detail_intervals(row: Row, kind: str, metrics: Mapping[str, float],
                        bootstrap: Optional[Bootstrap]) -> Dict:
    """The intervals of the ImageNet-C detail table of ``row``'s result of
    ``kind`` (``metrics``: its metrics); none without the outcomes of that
    result or without ``bootstrap``."""
    evidence = next((e for c, e in row.evidence.items()
                     if COLUMNS[c].evaluation == kind), None)
    if evidence is None or bootstrap is None:
        return {}
    return confidence.imagenet_c_intervals(evidence, list(metrics),
                                           bootstrap)


def write_report(work_dirs: List[str], out_dir: str,
                 formats=('md', 'csv', 'tex'), with_published: bool = True,
                 demo: Optional[bool] = None,
                 bootstrap: Optional[Bootstrap] = Bootstrap(),
                 compare: bool = False) -> Dict[str, List[str]]:
    """Load the runs, write the report; returns ``{kind: [paths]}``.

    Args:
        demo (bool, optional): Show the "Demo data" banner; defaults to
            whether any run's results were measured on the demo data (not
            whether its config is called a demo: a real config run on the
            demo data is demo numbers).
        bootstrap (Bootstrap, optional): How the cells' intervals are made;
            None: no intervals.
        compare (bool): Add the paired comparisons of every two runs.
    """
    runs = [load_run(d, outcomes=bool(bootstrap) or compare)
            for d in work_dirs]
    distinct_labels(runs, work_dirs)
    for r in runs:
        if bootstrap:
            add_intervals(r, bootstrap)
            r.c_intervals = _c_detail_intervals(r, 'robustness.c',
                                                r.c_metrics, bootstrap)
    verdicts = confidence.compare(runs, bootstrap or Bootstrap()) \
        if compare else []
    rows = runs + (published_rows(runs) if with_published else [])
    os.makedirs(out_dir, exist_ok=True)
    written: Dict[str, List[str]] = {}
    pngs = figures(rows, out_dir)
    written['figures'] = pngs
    if 'md' in formats:
        text = markdown(rows, demo, bootstrap, verdicts)
        extra = pngs + [f for r in runs for f in r.figures]
        if extra:
            text += '\n## Figures\n\n' + ''.join(
                f'![{osp.basename(p)}]({osp.relpath(p, out_dir)})\n\n'
                for p in extra)
        path = osp.join(out_dir, 'report.md')
        atomic_write(text, path)
        written['md'] = [path]
    if 'csv' in formats:
        written['csv'] = []
        for stem, text in csv_tables(rows).items():
            path = osp.join(out_dir, f'{stem}.csv')
            atomic_write(text, path)
            written['csv'].append(path)
    if 'tex' in formats:
        path = osp.join(out_dir, 'tables.tex')
        atomic_write(latex(rows), path)
        written['tex'] = [path]
    return written


def summary_lines(results: Dict[str, Dict]) -> List[str]:
    """A short account of a suite run: each evaluation's status, its main
    numbers, and for one that did not run, why and the command."""
    lines = ['', 'Suite results']
    for name, r in results.items():
        status = r.get('status', 'not run')
        if status == 'ok':
            shown = shown_metrics(r.get('metrics', {}))
            text = ', '.join(f'{k} {v:.2f}' for k, v in list(
                shown.items())[:6])
            lines.append(f'  {name:<26} ok      {text}')
        else:
            lines.append(f'  {name:<26} {status:<7} {r.get("reason", "")}')
            if r.get('command'):
                lines.append(f'  {"":<26}         to produce it: '
                             f'{r["command"]}')
    return lines
