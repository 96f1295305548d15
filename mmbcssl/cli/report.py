"""``tools/report.py``: merge the results of suite runs into the paper's
tables (Markdown, CSV, LaTeX) and figures.

    python tools/report.py work_dirs/suite/* --out work_dirs/report
    python tools/report.py <run A> <run B> --out <dir> --compare

Every measured cell gets its 95% interval from the per-image outcomes kept
with its result (``--no-intervals`` leaves them out); ``--compare`` adds
paired comparisons of every two runs made on the same test images.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmbcssl.utils.launch import UserError, run_cli
from mmbcssl.utils.outputs import refuse_existing

FORMATS = ('md', 'csv', 'tex')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+',
                        help='suite work dirs (tools/run_suite.py)')
    parser.add_argument('--out', required=True, help='report folder')
    parser.add_argument('--formats', nargs='+', choices=FORMATS,
                        default=list(FORMATS))
    parser.add_argument('--no-published', action='store_true',
                        help='leave out the published reference rows')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an earlier report in --out')
    parser.add_argument('--no-intervals', action='store_true',
                        help='print the numbers without their intervals')
    parser.add_argument(
        '--compare', action='store_true',
        help='compare every two runs on the images both were evaluated on: '
        'the difference, its interval and p-value (McNemar for accuracies, '
        'paired bootstrap otherwise), marked "not significant" when the '
        'interval contains 0')
    parser.add_argument('--resamples', type=int, default=1000,
                        help='bootstrap resamples (default 1000)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the bootstrap resamples (default 0)')
    parser.add_argument('--level', type=float, default=0.95,
                        help='interval level (default 0.95)')

    def _run() -> None:
        from mmbcssl.evaluation.statistics import Bootstrap
        from mmbcssl.suite.report import write_report
        args = parser.parse_args(argv)
        if args.resamples < 1 or not 0 < args.level < 1:
            raise UserError('--resamples must be a positive integer and '
                            '--level a number between 0 and 1 (e.g. 0.95)')
        bootstrap = Bootstrap(args.resamples, args.seed, args.level)
        for d in args.work_dirs:
            if not osp.isfile(osp.join(d, 'suite.json')):
                raise UserError(f'{d} is not a suite work dir (no '
                                'suite.json); run tools/run_suite.py first')
        refuse_existing([osp.join(args.out, 'report.md')], args.overwrite,
                        '--out')
        written = write_report(
            args.work_dirs, args.out, args.formats, not args.no_published,
            bootstrap=None if args.no_intervals else bootstrap,
            compare=args.compare)
        for kind, paths in written.items():
            for p in paths:
                print(f'{kind}: {p}')

    return run_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
