"""``tools/robustness_report.py``: one linear-probe checkpoint on the clean
val set, ImageNet-C, -Sketch, -R and -A, as a table laid out like the
paper's Table 5 (with its rows for reference) plus the ImageNet-C detail.

Every evaluation is a ``tools/test.py`` run (:func:`mmbcssl.cli.test.main`)
of the config in ``configs/robustness`` with ``--model-from`` the probe's
config, so the report shows exactly what those commands print. The clean
run comes first: its top-1 error is passed to ImageNet-C for relative mCE.

Outputs in ``--out-dir``: ``<set>.json`` (each run's metrics),
``report.json`` (all of it) and ``report.md``.
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

from mmbcssl.evaluation.paper_results import PAPER_TABLE5
from mmbcssl.evaluation.robustness import (BENCHMARK_CORRUPTIONS,
                                           EXTRA_CORRUPTIONS, SEVERITIES)
from mmbcssl.utils.launch import UserError, run_cli

SETS = ('clean', 'c', 'sketch', 'r', 'a')
_CONFIG = {
    'c': 'imagenet-c',
    'sketch': 'imagenet-sketch',
    'r': 'imagenet-r',
    'a': 'imagenet-a'
}
CONFIG_DIR = 'configs/robustness'


def robustness_config(name: str, demo: bool, config_dir: str) -> str:
    return osp.join(config_dir, f'{_CONFIG[name]}{"_demo" if demo else ""}.py')


def run_set(name: str, checkpoint: str, model_config: str, out_dir: str,
            demo: bool, options: Sequence[str], root: Optional[str],
            clean_error: Optional[float], config_dir: str,
            test_main=None, classes: Optional[str] = None
            ) -> Dict[str, float]:
    """Evaluate one set through ``tools/test.py``; return its metrics."""
    if test_main is None:
        from mmbcssl.cli.test import main as test_main
    out = osp.join(out_dir, f'{name}.json')
    opts = list(options)
    if root:
        opts.append(f'test_dataloader.dataset.data_root={root}')
    if name == 'clean':
        args = [model_config, checkpoint]
    else:
        args = [
            robustness_config(name, demo, config_dir), checkpoint,
            '--model-from', model_config
        ]
        if classes:
            # the clean set is the probe's own val set, already in its
            # label space; the others map wnid folders onto this list
            opts.append(f'test_dataloader.dataset.base_classes={classes}')
        if name == 'c' and clean_error is not None:
            opts.append(f'test_cfg.clean_error={clean_error!r}')
    args += ['--work-dir', osp.join(out_dir, name), '--out', out]
    if opts:
        args += ['--cfg-options', *opts]
    code = test_main(args)
    if code != 0:
        raise UserError(f'the {name} evaluation failed (exit code {code}); '
                        f'see its message above: tools/test.py '
                        f'{" ".join(args)}')
    with open(out) as f:
        return json.load(f)


def summarise(metrics: Dict[str, Dict[str, float]]) -> Dict[str, float]:
    """The Table 5 columns (percent) from each run's metrics."""
    row = {}
    for name, key in (('clean', 'linear'), ('sketch', 'sketch'),
                      ('r', 'r'), ('a', 'a')):
        if name in metrics:
            row[key] = float(metrics[name]['accuracy/top1'])
    c = metrics.get('c')
    if c:
        if 'imagenet-c/mCE' in c:
            row['mCE'] = c['imagenet-c/mCE']
            row['mean_error'] = c['imagenet-c/mean_error']
            if 'imagenet-c/relative_mCE' in c:
                row['relative_mCE'] = c['imagenet-c/relative_mCE']
        else:
            row['c_partial'] = 1.0
    return row


def _cell(value: Optional[float], digits: int = 2) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def format_markdown(name: str, epochs: Optional[int], row: Dict[str, float],
                    c_metrics: Optional[Dict[str, float]],
                    demo: bool) -> str:
    """Table 5 layout, ours first and the paper's rows marked as such, then
    the ImageNet-C breakdown."""
    lines = [f'# Robustness of {name}', '']
    if demo:
        lines += [
            '**Demo data** (built-in synthetic sets in the benchmarks\' '
            'layouts; ImageNet-C-style corruptions made with '
            'imagecorruptions): these numbers check the pipeline and are '
            'not comparable with the paper rows.', ''
        ]
    lines += [
        'Top-1 in %, mCE (AlexNet-normalised, x100) lower is better. Paper: '
        'arXiv 2312.05695, Table 5 (DINO pre-training, linear-probe '
        'models).', '',
        '| Model | Epochs | Linear | k-NN | C mCE | Sketch | R | A |',
        '|---|---|---|---|---|---|---|---|'
    ]
    ours = ' | '.join(
        _cell(row.get(k)) for k in ('linear', 'knn', 'mCE', 'sketch', 'r',
                                    'a'))
    lines.append(f'| **{name} (this run)** | {epochs or "-"} | {ours} |')
    for (model, ep), ref in PAPER_TABLE5.items():
        cells = ' | '.join(
            _cell(ref[k]) for k in ('linear', 'knn', 'mCE', 'sketch', 'r',
                                    'a'))
        lines.append(f'| {model} (paper) | {ep} | {cells} |')
    if c_metrics:
        lines += ['', '## ImageNet-C', '']
        if 'imagenet-c/mCE' not in c_metrics:
            lines.append('**Partial** tree: no mCE. Per-corruption mean '
                         'error (%):')
            lines.append('')
            lines += [
                f'- {k.split("/")[-1]}: {v:.2f}'
                for k, v in sorted(c_metrics.items())
                if k.startswith('imagenet-c/partial_error/')
            ]
        else:
            lines += _c_tables(c_metrics)
    return '\n'.join(lines) + '\n'


def _c_tables(c: Dict[str, float]) -> List[str]:
    get = c.get
    lines = [
        f'- mCE (AlexNet-normalised, 15 corruptions): '
        f'{get("imagenet-c/mCE"):.2f}',
        f'- relative mCE: {_cell(get("imagenet-c/relative_mCE"))}'
        + ('' if 'imagenet-c/relative_mCE' in c else
           ' (needs the clean error)'),
        '- unnormalised mean error over 15 x 5 (what the BC-SSL authors\' '
        f'script printed): {get("imagenet-c/mean_error"):.2f}', '',
        '| corruption | error % (mean of 5) | CE | relative CE |',
        '|---|---|---|---|'
    ]
    for name in BENCHMARK_CORRUPTIONS:
        lines.append(
            f'| {name} | {_cell(get(f"imagenet-c/error/{name}"))} | '
            f'{_cell(get(f"imagenet-c/CE/{name}"))} | '
            f'{_cell(get(f"imagenet-c/relative_CE/{name}"))} |')
    extras = [n for n in EXTRA_CORRUPTIONS if f'imagenet-c/error/{n}' in c]
    if extras:
        lines += ['', 'Extra corruptions (not in mCE):', '']
        lines += [
            f'- {n}: error {get(f"imagenet-c/error/{n}"):.2f}%'
            for n in extras
        ]
    lines += ['', '| severity | ' + ' | '.join(map(str, SEVERITIES)) + ' |',
              '|---' * (len(SEVERITIES) + 1) + '|']
    lines.append('| error % (mean of 15) | ' + ' | '.join(
        _cell(get(f'imagenet-c/error/severity{s}')) for s in SEVERITIES) +
                 ' |')
    return lines


def read_knn(path: str, k: int) -> float:
    """top-1 at ``k`` from a ``tools/knn_eval.py --out`` file, checked
    before any evaluation runs."""
    key = f'knn/k{k}_top1'
    try:
        with open(path) as f:
            return float(json.load(f)[key])
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
    parser.add_argument('--epochs', type=int,
                        help='pre-training epochs, for the table')
    parser.add_argument(
        '--sets', nargs='+', choices=SETS, default=list(SETS),
        help='which evaluations to run (default: all)')
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
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides for every evaluation')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None, test_main=None) -> int:

    def _run() -> None:
        import os
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
        os.makedirs(args.out_dir, exist_ok=True)
        metrics: Dict[str, Dict[str, float]] = {}
        clean_error = None
        for name in [s for s in SETS if s in args.sets]:
            metrics[name] = run_set(name, args.checkpoint, args.model_config,
                                    args.out_dir, args.demo,
                                    args.cfg_options, roots.get(name),
                                    clean_error, args.config_dir, test_main,
                                    args.classes)
            if name == 'clean':
                clean_error = 1 - metrics[name]['accuracy/top1'] / 100
        row = summarise(metrics)
        if knn is not None:
            row['knn'] = knn
        label = args.name or osp.splitext(osp.basename(
            args.model_config))[0]
        report = dict(model=label, config=args.model_config,
                      checkpoint=args.checkpoint, demo=args.demo,
                      epochs=args.epochs, table5_row=row, metrics=metrics)
        with open(osp.join(args.out_dir, 'report.json'), 'w') as f:
            json.dump(report, f, indent=2)
        text = format_markdown(label, args.epochs, row, metrics.get('c'),
                               args.demo)
        with open(osp.join(args.out_dir, 'report.md'), 'w') as f:
            f.write(text)
        print(text)

    return run_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
