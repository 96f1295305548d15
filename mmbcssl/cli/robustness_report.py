"""``tools/robustness_report.py``: one linear-probe checkpoint on the clean
val set, ImageNet-C, -Sketch, -R and -A, tabulated beside the published
numbers of the same protocol.

A suite run (:mod:`mmbcssl.suite`) of ``configs/suites/robustness.py`` in
``--out-dir``, with the probe given (its ``LinearProbe`` evaluates the
checkpoint instead of training one) and the sets, protocols, roots and
classes of the command line; each evaluation is a ``tools/test.py`` run of
a config in ``configs/robustness`` with ``--model-from`` the probe's
config. The clean run comes first: its top-1 error is passed to ImageNet-C
for relative mCE.

Two protocol families (``--protocols``):

* ``official`` (default): ImageNet-C centre-cropped (its images are 224 px
  already) with mCE / relative mCE (AlexNet-normalised) and the plain mean
  error; ImageNet-A/R with the logits restricted to their 200 classes.
* ``authors``: the BC-SSL authors' robustness script: ImageNet-C resized to
  256 and centre-cropped to 224; ImageNet-A/R scored 1000-way. The paper's
  Table 5 numbers were made this way.

Each column header names its protocol, and a published number only appears
under the column of its own protocol: the table is the suite report's
(:func:`mmbcssl.suite.report.robustness_markdown`).

Outputs in ``--out-dir``: the suite's work dir (``suite.json``,
``results/<name>.json`` with each run's metrics and protocol fingerprint,
``logs/``), ``report.json`` (all of it) and ``report.md``.
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Optional

from mmbcssl.evaluation.columns import COLUMNS, column_values
from mmbcssl.utils.launch import UserError, require_file, run_cli
from mmbcssl.utils.outputs import refuse_existing, write_json

SETS = ('clean', 'c', 'sketch', 'r', 'a')
PROTOCOLS = ('official', 'authors')
CONFIG_DIR = 'configs/robustness'
SUITE = 'configs/suites/robustness.py'


def suite_entries(args: argparse.Namespace,
                  roots: Dict[str, str]) -> List[Dict]:
    """The preset's evaluations with the command line's probe, sets,
    protocols, roots and classes."""
    from mmengine.config import Config
    from mmbcssl.evaluation.fingerprint import REPO_ROOT
    entries = [dict(e) for e in Config.fromfile(
        osp.join(REPO_ROOT, SUITE)).evaluations]
    options = list(args.cfg_options)
    for entry in entries:
        if entry['type'] == 'LinearProbe':
            entry.update(config=args.model_config,
                         checkpoint=args.checkpoint,
                         data_root=roots.get('clean'),
                         cfg_options=options)
        else:
            entry.update(sets=[s for s in SETS[1:] if s in args.sets],
                         protocols=args.protocols, demo=args.demo,
                         classes=args.classes, config_dir=args.config_dir,
                         roots={k: v for k, v in roots.items()
                                if k != 'clean'}, cfg_options=options)
    return entries


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
        help='which sets to evaluate (default: all; the clean val set is '
        'always: the others read the probe from its result)')
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
    parser.add_argument('--config-dir', default=CONFIG_DIR,
                        help='where the robustness configs are')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the results of an earlier report in '
                        '--out-dir')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides for every evaluation')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:

    def _run() -> None:
        from mmbcssl.suite import SuiteContext, SuiteRunner
        from mmbcssl.suite.evaluations import results_by_kind
        from mmbcssl.suite.report import robustness_markdown
        from mmbcssl.suite.runner import build_entries
        args = parse_args(argv)
        roots = {}
        for item in args.root:
            key, sep, path = item.partition('=')
            if not sep or key not in SETS:
                raise UserError(f'--root {item!r}: expected SET=PATH with '
                                f'SET one of {", ".join(SETS)}')
            roots[key] = osp.abspath(path)
        require_file(args.model_config, 'config file', 'a config (.py)')
        if args.checkpoint:
            require_file(args.checkpoint)
        if args.classes:
            require_file(args.classes, 'class list', 'a .txt file')
        # the tools run from the repository root
        for key in ('model_config', 'checkpoint', 'classes', 'config_dir'):
            if getattr(args, key):
                setattr(args, key, osp.abspath(getattr(args, key)))
        knn = read_knn(args.knn, args.knn_k) if args.knn else None
        refuse_existing([
            osp.join(args.out_dir, f) for f in ('report.json', 'report.md')
        ], args.overwrite, '--out-dir')
        evaluations = build_entries(suite_entries(args, roots), SUITE)
        ctx = SuiteContext(args.model_config, args.checkpoint, args.out_dir)
        force = [e.name for e in evaluations] if args.overwrite else ()
        results = SuiteRunner(ctx, evaluations, force).run()
        bad = [(n, r) for n, r in results.items() if r['status'] != 'ok']
        if bad:
            name, r = bad[0]
            raise UserError(f'the {name} evaluation {r["status"]}: '
                            f'{r["reason"]}' + (f' ({r["command"]})'
                                                if r['command'] else ''))
        by_kind = results_by_kind(results)
        row = column_values(by_kind)
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
        text = robustness_markdown(label, row, by_kind, args.demo,
                                   work_dir=args.out_dir)
        from mmbcssl.fileio import atomic_write
        atomic_write(text, osp.join(args.out_dir, 'report.md'))
        print(text)

    return run_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
