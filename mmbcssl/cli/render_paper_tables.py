"""``tools/misc/render_paper_tables.py``: write the published-numbers table
of each config folder's README from its ``metafile.yml``.

``--check`` writes nothing and fails when a README is out of date.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmbcssl.evaluation.fingerprint import REPO_ROOT
from mmbcssl.evaluation.paper_results import README_TABLES, render_readme
from mmbcssl.fileio import atomic_write
from mmbcssl.utils.launch import UserError, run_cli


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--check', action='store_true',
                        help='only report READMEs whose table is stale')
    parser.add_argument('--root', default=REPO_ROOT, help=argparse.SUPPRESS)

    def _run() -> None:
        args = parser.parse_args(argv)
        stale = []
        for folder in README_TABLES:
            path = osp.join(args.root, 'configs', folder, 'README.md')
            with open(path) as f:
                text = f.read()
            try:
                new = render_readme(text, folder, args.root)
            except ValueError as e:
                raise UserError(str(e)) from None
            if new != text:
                stale.append(path)
                if not args.check:
                    atomic_write(new, path)
        if args.check and stale:
            raise UserError(f'out of date: {", ".join(stale)}; run python '
                            'tools/misc/render_paper_tables.py')
        print('\n'.join(f'updated {p}' for p in stale) or 'up to date')

    return run_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
