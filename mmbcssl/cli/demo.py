"""The demo pipeline behind ``bash tools/demo.sh``.

On the built-in demo data and through the entry points a user runs:

1. make the demo data (``tools/misc/make_demo_data.py``);
2. DINO pre-training of BC-SSL-T 9x9 at demo size
   (``configs/dino/bcssl-t_9x9_100e_demo.py``);
3. the ``demo`` suite on its teacher (``tools/run_suite.py``, suite
   ``configs/suites/demo.py``): k-NN, the linear probe, the robustness sets
   (ImageNet-C included), a transfer preset, params and FLOPs, a short
   Mask R-CNN;
4. a supervised control: ResNet-18 trained with labels on the demo train
   split (``configs/supervised/resnet18_1xb32-adamw-8e_in1k-demo.py``);
5. the suite's k-NN and linear probe (``configs/suites/demo_control.py``)
   on the random initialisation of BC-SSL-T 9x9 and on the supervised
   control: the rows the teacher's row sits between;
6. figures (``tools/visualization/vis_cam.py`` and ``vis_erf.py`` of the
   random initialisation, the teacher and the supervised control, and the
   pre-training curves with ``tools/analysis_tools/analyze_logs.py``), into
   the suite's ``figures/``;
7. the report (``tools/report.py --compare``): one row per backbone, with
   its intervals, tables and figures, and the paired verdicts of the three.

Each stage's full output goes to ``<work dir>/logs/<stage>.log``; the
screen shows one line per stage and, at the end, the numbers themselves. A
second run reuses what the first made (data, pre-training, every finished
evaluation) and takes seconds.
"""
import argparse
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DINO_CONFIG = 'configs/dino/bcssl-t_9x9_100e_demo.py'
BACKBONE = 'configs/_base_/models/bcssl-t_9x9.py'
SUITE = 'configs/suites/demo.py'
SUPERVISED_CONFIG = 'configs/supervised/resnet18_1xb32-adamw-8e_in1k-demo.py'
CONTROL_SUITE = 'configs/suites/demo_control.py'
#: the demo's backbones: (label, suite work dir under the demo's work dir)
ROWS = (('random init (BC-SSL-T 9x9)', 'suite_random-init'),
        ('DINO teacher (BC-SSL-T 9x9, 3 epochs)', 'suite'),
        ('supervised control (ResNet-18, labels)', 'suite_supervised'))


@dataclass
class Stage:
    """One step of the demo.

    Args:
        name (str): Short name shown on screen and in the summary.
        command (callable): Builds the command line (called when the stage
            runs, so it can use what earlier stages produced).
        output (str): What the stage leaves behind, for the summary.
        required (bool): Later stages need its output: a failure skips
            them. Defaults to True.
    """
    name: str
    command: Callable[[], List[str]]
    output: str = ''
    required: bool = True  # later stages need it
    status: str = field(default='not run', init=False)
    seconds: float = field(default=0., init=False)


def _tool(name: str) -> str:
    return osp.join(REPO, 'tools', name)


def _latest(work_dir: str) -> str:
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return osp.join(work_dir, 'missing-checkpoint.pth')
    with open(path) as f:
        return f.read().strip()


def _first_wnids(data: str, n: int) -> List[str]:
    """The first ``n`` class folders of the demo val set (their first
    images are the CAM grid's columns)."""
    folder = osp.join(data, 'imagenet', 'val')
    if not osp.isdir(folder):
        return []
    return sorted(os.listdir(folder))[:n]


def build_stages(args: argparse.Namespace) -> List[Stage]:
    work, data = args.work_dir, args.data_root
    dino_dir = osp.join(work, 'dino')
    supervised_dir = osp.join(work, 'supervised')
    random_dir, suite_dir, supervised_suite = (osp.join(work, d)
                                               for _, d in ROWS)
    figures = osp.join(suite_dir, 'figures')
    py = sys.executable

    def train(config: str, work_dir: str,
              loaders=('train', )) -> Callable[[], List[str]]:
        """The command of a training stage on the demo ImageNet (the data
        root of its ``loaders``)."""

        def command() -> List[str]:
            cmd = [py, _tool('train.py'), config, '--work-dir', work_dir,
                   '--cfg-options'] + [
                       f'{loader}_dataloader.dataset.data_root={data}/'
                       'imagenet' for loader in loaders]
            # a finished or interrupted training is continued, not redone
            return cmd + (['--resume'] if osp.isfile(
                osp.join(work_dir, 'last_checkpoint')) else [])

        return command

    def model_args() -> List[str]:
        """``--model`` and ``--labels`` of the figures: the random
        initialisation (a config without weights), the teacher and the
        supervised control."""
        models = [(BACKBONE, None, 'random init'),
                  (BACKBONE, _latest(dino_dir), 'demo DINO teacher'),
                  (SUPERVISED_CONFIG, _latest(supervised_dir),
                   'supervised control')]
        args = []
        for config, weights, _ in models:
            args += ['--model', config] + ([weights] if weights else [])
        return args + ['--labels'] + [label for _, _, label in models]

    return [
        Stage('make demo data',
              lambda: [py, _tool('misc/make_demo_data.py'), '--out', data],
              output=data),
        Stage('DINO pre-training of BC-SSL-T 9x9 (demo size)',
              train(DINO_CONFIG, dino_dir), output=dino_dir),
        Stage('demo suite on the teacher',
              lambda: [py, _tool('run_suite.py'), DINO_CONFIG,
                       _latest(dino_dir), '--suite', SUITE, '--work-dir',
                       suite_dir],
              output=suite_dir),
        Stage('supervised control: ResNet-18 trained with labels',
              train(SUPERVISED_CONFIG, supervised_dir,
                    ('train', 'val', 'test')),
              output=supervised_dir, required=False),
        Stage('demo suite on random init (k-NN, probe)',
              lambda: [py, _tool('run_suite.py'), DINO_CONFIG, 'none',
                       '--suite', CONTROL_SUITE, '--work-dir', random_dir],
              output=random_dir, required=False),
        Stage('demo suite on the supervised control (k-NN, probe)',
              lambda: [py, _tool('run_suite.py'), SUPERVISED_CONFIG,
                       _latest(supervised_dir), '--suite', CONTROL_SUITE,
                       '--work-dir', supervised_suite],
              output=supervised_suite, required=False),
        Stage('Eigen-CAM: random init, teacher, supervised control',
              lambda: [py, _tool('visualization/vis_cam.py'),
                       *[f'{data}/imagenet/val/{w}/{w}_0.JPEG'
                         for w in _first_wnids(data, 4)],
                       *model_args(), '--cell-size', '96', '--title',
                       'Eigen-CAM (demo scale)', '--out',
                       osp.join(figures, 'cam.png'), '--overwrite',
                       '--palette'],
              output=osp.join(figures, 'cam.png'), required=False),
        Stage('effective receptive field',
              lambda: [py, _tool('visualization/vis_erf.py'),
                       f'{data}/imagenet/val', *model_args(),
                       '--num-images', '10', '--img-size', '96',
                       '--batch-size', '10', '--title',
                       'ERF (demo scale)',
                       '--out', osp.join(figures, 'erf.png'), '--json',
                       osp.join(figures, 'erf.json'), '--overwrite',
                       '--palette'],
              output=osp.join(figures, 'erf.png'), required=False),
        Stage('pre-training curves',
              lambda: [py, _tool('analysis_tools/analyze_logs.py'), dino_dir,
                       '--keys', 'loss', 'lr', '--title',
                       'demo DINO pre-training', '--out',
                       osp.join(figures, 'curves.png'), '--overwrite',
                       '--palette'],
              output=osp.join(figures, 'curves.png'), required=False),
        Stage('report',
              lambda: [py, _tool('report.py'), random_dir, suite_dir,
                       supervised_suite, '--out',
                       osp.join(work, 'report'), '--overwrite', '--compare'],
              output=osp.join(work, 'report', 'report.md')),
    ]


def run_stages(stages: List[Stage], log_dir: str,
               dry_run: bool = False) -> int:
    failed = 0
    os.makedirs(log_dir, exist_ok=True)
    for k, stage in enumerate(stages, 1):
        if failed:
            stage.status = 'skipped: a stage it needs failed'
            continue
        cmd = stage.command()
        slug = re.sub(r'[^A-Za-z0-9]+', '_', stage.name.split(' (')[0])
        log = osp.join(log_dir, f'{k}_{slug.strip("_")}.log')
        print(f'[{k}/{len(stages)}] {stage.name}\n      $ {shlex.join(cmd)}'
              f'\n      log: {log}', flush=True)
        if dry_run:
            stage.status = 'dry run'
            continue
        start = time.time()
        with open(log, 'a') as f:
            # the stage dies with the demo (SIGKILL, OOM killer included)
            from mmbcssl.utils.processes import die_with_parent
            code = subprocess.call(cmd, cwd=REPO, stdout=f,
                                   stderr=subprocess.STDOUT,
                                   preexec_fn=die_with_parent())
        stage.seconds = time.time() - start
        # the suite exits 1 when an evaluation could not run: the report
        # still follows and says which
        ok = code == 0 or (stage.name.startswith('demo suite') and code == 1)
        stage.status = 'ok' if code == 0 else (
            'ok, with missing results' if ok else f'FAILED (exit {code})')
        print(f'      {stage.status} in {stage.seconds:.0f} s', flush=True)
        if not ok:
            with open(log, errors='replace') as f:
                tail = f.readlines()[-15:]
            print('      last lines of the log:\n' + ''.join(
                f'        {line}' for line in tail), flush=True)
            failed += stage.required
    return failed


def results_table(work_dir: str) -> List[str]:
    """The demo's own numbers, as the README quotes them: k-NN (k=20) and
    linear-probe top-1 of each backbone (:data:`ROWS`), then the teacher's
    other lines (the columns' ``demo_line``, :data:`mmbcssl.evaluation.
    columns.COLUMNS`), read from the suites' results by their kind."""
    from mmbcssl.evaluation.columns import column_values, demo_lines
    from mmbcssl.suite.evaluations import results_by_kind
    from mmbcssl.suite.report import load_results

    def values(suite: str) -> dict:
        return column_values(results_by_kind(
            load_results(osp.join(work_dir, suite))))

    def text(cells) -> str:
        return ' / '.join('–' if v is None else f'{v:.1f}' for v in cells)

    by_suite = {suite: values(suite) for _, suite in ROWS}
    teacher = by_suite[ROWS[1][1]]
    backbones = [(label, [by_suite[suite].get(c)
                          for c in ('knn_top1', 'linear_top1')])
                 for label, suite in ROWS]
    others = [(label, [teacher.get(c) for c in columns])
              for label, columns in demo_lines().items()]
    width = max(len(label) for label, _ in backbones + others)

    def block(rows) -> List[str]:
        return [f'  {label:<{width}}  {text(cells)}' for label, cells in rows]

    return (['', 'Demo results (demo data; chance is 10 %). k-NN top-1 '
             '(k=20) / linear probe top-1 (last epoch):'] + block(backbones)
            + ['The DINO teacher (a check that the pipeline runs, not '
               'evidence that anything was learned):'] + block(others))


def print_summary(stages: List[Stage], work_dir: str) -> None:
    total = sum(s.seconds for s in stages)
    print(f'\nDemo summary ({total / 60:.1f} min)')
    width = max(len(s.name) for s in stages)
    for s in stages:
        took = f'{s.seconds:6.0f}s' if s.seconds else ' ' * 7
        print(f'  {s.name:<{width}}  {took}  {s.status}')
    print('\n'.join(results_table(work_dir)))
    report = osp.join(work_dir, 'report', 'report.md')
    if osp.isfile(report):
        print(f'\nReport: {report} (figures beside it)')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument(
        '--dry-run', action='store_true', help='print the commands only')
    args = parser.parse_args(argv)
    stages = build_stages(args)
    failed = run_stages(stages, osp.join(args.work_dir, 'logs'),
                        args.dry_run)
    if not args.dry_run:
        print_summary(stages, args.work_dir)
    return 1 if failed or any(s.status.startswith('FAILED')
                              for s in stages) else 0


if __name__ == '__main__':
    sys.exit(main())
