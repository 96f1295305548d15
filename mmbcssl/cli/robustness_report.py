"""``tools/robustness_report.py``: one linear-probe checkpoint on the clean
val set, ImageNet-C, -Sketch, -R and -A, tabulated beside the published
numbers of the same protocol.

Every evaluation is a ``tools/test.py`` run (:func:`mmbcssl.cli.test.main`)
of a config in ``configs/robustness`` with ``--model-from`` the probe's
config, so the report shows exactly what those commands print. The clean
run comes first: its top-1 error is passed to ImageNet-C for relative mCE.

Two protocol families (``--protocols``):

* ``official`` (default): ImageNet-C centre-cropped (its images are 224 px
  already) with mCE / relative mCE (AlexNet-normalised) and the plain mean
  error; ImageNet-A/R with the logits restricted to their 200 classes.
* ``authors``: the BC-SSL authors' robustness script: ImageNet-C resized to
  256 and centre-cropped to 224; ImageNet-A/R scored 1000-way. The paper's
  Table 5 numbers were made this way.

Each column header names its protocol, and a published number only appears
under the column of its own protocol: the columns, their results and
metrics are the suite report's (:data:`mmbcssl.evaluation.columns.COLUMNS`,
table ``robustness_report``), the published rows and the ImageNet-C table
too (:mod:`mmbcssl.suite.report`).

Outputs in ``--out-dir``: ``<evaluation>.json`` (each run's metrics and
protocol fingerprint), ``report.json`` (all of it) and ``report.md``.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

from mmbcssl.evaluation.columns import (COLUMNS, column_values,
                                        table_columns)
from mmbcssl.evaluation.paper_results import load_entries, published_values
from mmbcssl.evaluation.robustness import clean_error, robustness_plan
from mmbcssl.suite.report import imagenet_c_table
from mmbcssl.utils.launch import UserError, run_cli
from mmbcssl.utils.outputs import refuse_existing, write_json

SETS = ('clean', 'c', 'sketch', 'r', 'a')
PROTOCOLS = ('official', 'authors')
CONFIG_DIR = 'configs/robustness'


def plan(sets: Sequence[str],
         protocols: Sequence[str]) -> List[tuple]:
    """``(set, evaluation name, config stem)`` to run, clean first (the
    probe's own val set: stem None), then the suite's robustness sets
    (:func:`mmbcssl.evaluation.robustness.robustness_plan`)."""
    clean = [('clean', 'clean', None)] if 'clean' in sets else []
    return clean + robustness_plan([s for s in SETS if s in sets],
                                   protocols)


def robustness_config(stem: str, demo: bool, config_dir: str) -> str:
    return osp.join(config_dir, f'{stem}{"_demo" if demo else ""}.py')


def run_evaluation(name: str, stem: Optional[str], checkpoint: str,
                   model_config: str, out_dir: str, demo: bool,
                   options: Sequence[str], root: Optional[str],
                   clean_error: Optional[float], config_dir: str,
                   test_main=None, classes: Optional[str] = None,
                   overwrite: bool = False) -> Dict:
    """Evaluate one set through ``tools/test.py``; return its result
    (metrics and fingerprint)."""
    if test_main is None:
        from mmbcssl.cli.test import main as test_main
    out = osp.join(out_dir, f'{name}.json')
    opts = list(options)
    if root:
        opts.append(f'test_dataloader.dataset.data_root={root}')
    if stem is None:
        args = [model_config, checkpoint]
    else:
        args = [
            robustness_config(stem, demo, config_dir), checkpoint,
            '--model-from', model_config
        ]
        if classes:
            # the clean set is the probe's own val set, already in its
            # label space; the others map wnid folders onto this list
            opts.append(f'test_dataloader.dataset.base_classes={classes}')
        if name.startswith('c') and clean_error is not None:
            opts.append(f'test_cfg.clean_error={clean_error!r}')
    args += ['--work-dir', osp.join(out_dir, name), '--out', out]
    if overwrite:
        args.append('--overwrite')
    if opts:
        args += ['--cfg-options', *opts]
    code = test_main(args)
    if code != 0:
        raise UserError(f'the {name} evaluation failed (exit code {code}); '
                        f'see its message above: tools/test.py '
                        f'{" ".join(args)}')
    with open(out) as f:
        return json.load(f)


def summarise(results: Dict[str, Dict]) -> Dict[str, float]:
    """Table columns (percent) from each evaluation's metrics: the clean
    run of the checkpoint (the probe's last epoch, as the robustness sets
    use) is the suite's linear result, the others its robustness results
    (:data:`mmbcssl.evaluation.columns.COLUMNS`). A partial ImageNet-C
    tree is marked ``c_partial*``."""
    row = column_values({
        'linear' if name == 'clean' else f'robustness.{name}': result
        for name, result in results.items()
    })
    for name in ('c', 'c_resize256'):
        metrics = results.get(name, {}).get('metrics')
        if metrics and 'imagenet-c/mCE' not in metrics:
            row[f'c_partial{name[1:]}'] = 1.0
    return row


def _cell(value: Optional[float], digits: int = 2) -> str:
    return '–' if value is None else f'{value:.{digits}f}'


def paper_rows(demo: bool) -> List[tuple]:
    """``(label, {column: value})``: the published numbers of each
    pre-training config with a published linear probe
    (:func:`mmbcssl.evaluation.paper_results.published_values`)."""
    if demo:
        return []
    entries = load_entries()
    rows, seen = [], set()
    for e in entries:
        pre = e.metadata.get('Pre-training')
        if not e.config.startswith('configs/linear/') or not e.results or \
                not pre or pre in seen:
            continue
        seen.add(pre)
        values, sources = published_values(entries, pre)
        rows.append((f'{osp.splitext(osp.basename(pre))[0]} '
                     f'({"; ".join(sources)})', values))
    return rows


def format_markdown(name: str, row: Dict[str, float],
                    results: Dict[str, Dict], demo: bool) -> str:
    """The report: ours first, the published rows under their own protocols,
    then the ImageNet-C detail."""
    lines = [f'# Robustness of {name}', '']
    if demo:
        lines += [
            '**Demo data** (built-in synthetic sets in the benchmarks\' '
            'layouts; ImageNet-C-style corruptions made with '
            'imagecorruptions): these numbers check that the pipeline runs; '
            'they are not comparable with any published row.', ''
        ]
    others = paper_rows(demo)
    columns = [c for c in table_columns('robustness_report')
               if c in row or any(c in v for _, v in others)]
    lines += [
        'Top-1 in %, errors in % (lower is better). Each column header '
        'names its protocol; a published number appears only under the '
        'column of the protocol it was measured with, and "–" marks a '
        'number that was not measured that way.', '',
        '| Model | ' + ' | '.join(COLUMNS[c].header for c in columns) + ' |',
        '|---' * (len(columns) + 1) + '|',
        f'| **{name} (this run)** | ' + ' | '.join(
            _cell(row.get(c)) for c in columns) + ' |'
    ]
    for label, values in others:
        lines.append(f'| {label} | ' + ' | '.join(
            _cell(values.get(c)) for c in columns) + ' |')
    lines += ['', 'Protocols:', '']
    lines += [f'- {COLUMNS[c].header}: {COLUMNS[c].protocol}'
              for c in columns]
    for key, title in (('c', 'ImageNet-C (centre crop 224)'),
                       ('c_resize256',
                        'ImageNet-C (resize 256 + centre crop 224)')):
        metrics = results.get(key, {}).get('metrics')
        if metrics:
            lines += ['', f'## {title}', ''] + imagenet_c_table(metrics)
    return '\n'.join(lines) + '\n'


def read_knn(path: str, k: int) -> float:
    """top-1 at ``k`` from a ``tools/knn_eval.py --out`` file, checked
    before any evaluation runs."""
    key = f'knn/k{k}_top1'
    try:
        with open(path) as f:
            return float(json.load(f)['metrics'][key])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f'--knn {path!r}: expected the JSON that '
                        f'tools/knn_eval.py --out writes, with {key!r} '
                        f'({type(e).__name__}: {e})') from None


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Clean, ImageNet-C/Sketch/R/A evaluation of one '
        'linear-probe checkpoint, written as JSON and Markdown')
    parser.add_argument('model_config',
                        help='the linear-probe config (configs/linear/...)')
    parser.add_argument('checkpoint', help='the linear-probe checkpoint')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--name', help='row label (default: config name)')
    parser.add_argument(
        '--sets', nargs='+', choices=SETS, default=list(SETS),
        help='which sets to evaluate (default: all)')
    parser.add_argument(
        '--protocols', nargs='+', choices=PROTOCOLS, default=['official'],
        help='official (default: IN-C centre crop, mCE; A/R restricted to '
        'their 200 classes) and/or authors (the BC-SSL authors\' script: '
        'IN-C resized to 256 + crop 224; A/R scored 1000-way)')
    parser.add_argument(
        '--root', action='append', default=[], metavar='SET=PATH',
        help='data root of one set, e.g. --root r=/data/imagenet-r '
        '(default: the config\'s)')
    parser.add_argument('--knn', metavar='JSON',
                        help='tools/knn_eval.py --out file, for the k-NN '
                        'column')
    parser.add_argument('--knn-k', type=int, default=20,
                        help='which k the k-NN column shows (DINO: 20)')
    parser.add_argument(
        '--classes', metavar='FILE',
        help='the wnids of the probe head\'s classes, one per line in '
        'head order (default: the robustness configs\' list, ImageNet-1k '
        'or with --demo the demo\'s 10 classes)')
    parser.add_argument('--demo', action='store_true',
                        help='the *_demo robustness configs (demo data)')
    parser.add_argument('--config-dir', default=CONFIG_DIR)
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the results of an earlier report in '
                        '--out-dir')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides for every evaluation')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None, test_main=None) -> int:

    def _run() -> None:
        args = parse_args(argv)
        roots = {}
        for item in args.root:
            key, sep, path = item.partition('=')
            if not sep or key not in SETS:
                raise UserError(f'--root {item!r}: expected SET=PATH with '
                                f'SET one of {", ".join(SETS)}')
            roots[key] = path
        for path in filter(None, (args.model_config, args.checkpoint,
                                  args.classes)):
            if not osp.isfile(path):
                raise UserError(f'{path!r} not found')
        knn = read_knn(args.knn, args.knn_k) if args.knn else None
        todo = plan(args.sets, args.protocols)
        refuse_existing(
            [osp.join(args.out_dir, f'{n}.json') for _, n, _ in todo] + [
                osp.join(args.out_dir, f)
                for f in ('report.json', 'report.md')
            ], args.overwrite, '--out-dir')
        os.makedirs(args.out_dir, exist_ok=True)
        results: Dict[str, Dict] = {}
        error = None
        for set_name, name, stem in todo:
            results[name] = run_evaluation(
                name, stem, args.checkpoint, args.model_config,
                args.out_dir, args.demo, args.cfg_options,
                roots.get(set_name), error, args.config_dir,
                test_main, args.classes, args.overwrite)
            if name == 'clean':
                error = clean_error(results[name]['metrics'])
        row = summarise(results)
        if knn is not None:
            row['knn_top1'] = knn
        label = args.name or osp.splitext(osp.basename(
            args.model_config))[0]
        report = dict(
            model=label, config=args.model_config,
            checkpoint=args.checkpoint, demo=args.demo,
            protocols=args.protocols, row=row,
            columns={c: [COLUMNS[c].header, COLUMNS[c].protocol]
                     for c in row if c in COLUMNS},
            results=results)
        write_json(osp.join(args.out_dir, 'report.json'), report)
        text = format_markdown(label, row, results, args.demo)
        from mmbcssl.fileio import atomic_write
        atomic_write(text, osp.join(args.out_dir, 'report.md'))
        print(text)

    return run_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
