"""``tools/report.py``: merge the results of suite runs into the paper's
tables (Markdown, CSV, LaTeX) and figures.

    python tools/report.py work_dirs/suite/* --out work_dirs/report
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

    def _run() -> None:
        from mmbcssl.suite.report import write_report
        args = parser.parse_args(argv)
        for d in args.work_dirs:
            if not osp.isfile(osp.join(d, 'suite.json')):
                raise UserError(f'{d} is not a suite work dir (no '
                                'suite.json); run tools/run_suite.py first')
        refuse_existing([osp.join(args.out, 'report.md')], args.overwrite,
                        '--out')
        written = write_report(args.work_dirs, args.out, args.formats,
                               not args.no_published)
        for kind, paths in written.items():
            for p in paths:
                print(f'{kind}: {p}')

    return run_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
