"""Run the whole attack list of docs/reliability.md and print its table.

Every row of the tables in ``docs/reliability.md`` is a fault, what the user
sees, and the tests that inject it. This script reads those rows, resolves
each row's test references to pytest node ids, runs them all in one pytest
process and prints one line per fault with its outcome, so that the next
attack starts from the list of what is held and what is not::

    python tests/attacks.py           # run every fault's tests; the table
    python tests/attacks.py --check   # only: every row names tests that exist
    python tests/attacks.py --out attacks.md

References in the test column: ``tests/<file>.py::<test>`` (a ``*`` globs
test names, ``[id]`` names one parametrisation), a bare file or folder (all
of its tests), ``...::<test>`` or ``::<test>`` (a test of the file named
last), and ``same`` (the tests of the row above). The exit status is 1 when
a row names no test that exists or a fault's test fails.
"""
import argparse
import ast
import fnmatch
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOC = osp.join(ROOT, 'docs', 'reliability.md')
_REF = re.compile(r'`((?:tests/|\.\.\.::|::)[^`]*)`')


@dataclass
class Row:
    section: str
    fault: str
    refs: List[str]
    node_ids: List[str] = field(default_factory=list)
    unresolved: List[str] = field(default_factory=list)
    outcome: str = ''


def test_names(path: str) -> List[str]:
    """The test functions of a test file (``Class::test`` for methods)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith('test'):
            names.append(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith('Test'):
            names += [f'{node.name}::{m.name}' for m in node.body
                      if isinstance(m, ast.FunctionDef)
                      and m.name.startswith('test')]
    return names


def parse_rows(doc: str = DOC) -> List[Row]:
    """The fault rows of the doc's tables, with their test references."""
    rows: List[Row] = []
    section = ''
    with open(doc) as f:
        lines = f.read().splitlines()
    for k, line in enumerate(lines):
        if line.startswith('## '):
            section = line[3:].strip()
            continue
        if not line.startswith('| ') or set(line) <= set('|- '):
            continue
        if k + 1 < len(lines) and lines[k + 1].startswith('|---'):
            continue  # a header row
        cells = [c.strip() for c in line.strip('|').split(' | ')]
        refs = _REF.findall(cells[-1])
        if re.match(r'^(the )?same\b', cells[-1]) and rows:
            refs = rows[-1].refs + refs
        rows.append(Row(section, cells[0], refs))
    return rows


def resolve(row: Row, last_file: Optional[str] = None,
            root: str = ROOT) -> Optional[str]:
    """Fill ``row.node_ids`` with the pytest node ids its references name
    and ``row.unresolved`` with the references that name nothing.
    ``last_file`` is the test file named last before the row (a row may
    start with ``...::<test>``); returns the one named last after it."""
    for ref in row.refs:
        path, _, name = ref.partition('::')
        if path in ('', '...'):
            path = last_file or ''
        path = path.rstrip('/') if path.endswith('/') else path
        full = osp.join(root, path)
        if path.endswith('.py') and osp.isfile(full):
            last_file = path
        if not name:
            if osp.isdir(full) or osp.isfile(full):
                row.node_ids.append(path)
            else:
                row.unresolved.append(ref)
            continue
        if not (path.endswith('.py') and osp.isfile(full)):
            row.unresolved.append(ref)
            continue
        base, param = re.match(r'([^\[]*)(\[.*\])?$', name).groups()
        found = [n for n in test_names(full) if fnmatch.fnmatchcase(n, base)]
        if not found:
            row.unresolved.append(ref)
        row.node_ids += [f'{path}::{n}{param or ""}' for n in found]
    return last_file


def resolve_all(rows: List[Row], root: str = ROOT) -> None:
    """:func:`resolve` each row, in the doc's order."""
    last_file = None
    for row in rows:
        last_file = resolve(row, last_file, root)


def run_pytest(node_ids: List[str]) -> Dict[str, Tuple[str, str]]:
    """Run the node ids in one pytest process: ``{node id: (outcome,
    message)}`` for every test case it ran."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = osp.join(tmp, 'attacks.xml')
        cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
               f'--junitxml={xml}', *sorted(set(node_ids))]
        subprocess.call(cmd, cwd=ROOT,
                        env=dict(os.environ, OMP_NUM_THREADS=os.environ.get(
                            'OMP_NUM_THREADS', '1')))
        if not osp.isfile(xml):
            return {}
        outcomes = {}
        for case in ET.parse(xml).iter('testcase'):
            bad = [c for c in case
                   if c.tag in ('failure', 'error', 'skipped')]
            outcomes[_node_id(case.get('classname', ''), case.get('name'))] = \
                (bad[0].tag, bad[0].get('message') or '') if bad else (
                    'passed', '')
        return outcomes


def _node_id(classname: str, name: str) -> str:
    """A junit test case's pytest node id (``tests.x.test_y.TestZ`` ->
    ``tests/x/test_y.py::TestZ``)."""
    parts = classname.split('.')
    for cut in range(len(parts), 0, -1):
        path = '/'.join(parts[:cut]) + '.py'
        if osp.isfile(osp.join(ROOT, path)):
            return '::'.join([path, *parts[cut:], name])
    return f'{classname}::{name}'


def _matches(node_id: str, case: str) -> bool:
    """Whether a test case ran for a node id (a file, a folder, a test, or
    one parametrisation of it)."""
    case_file, _, case_name = case.partition('::')
    file, _, name = node_id.partition('::')
    if not name:
        folder = file.rstrip('/') + '/'
        return case_file == file or case_file.startswith(folder)
    return case_file == file and (case_name == name or case_name.startswith(
        name + '[') or ('[' in name and case_name == name))


def judge(rows: List[Row], outcomes: Dict[str, Tuple[str, str]]) -> None:
    for row in rows:
        if row.unresolved or not row.node_ids:
            row.outcome = 'NO TEST: ' + ', '.join(row.unresolved or
                                                  ['none named'])
            continue
        cases = {c: o for c, o in outcomes.items()
                 if any(_matches(n, c) for n in row.node_ids)}
        bad = {c: o for c, o in cases.items() if o[0] != 'passed'}
        if not cases:
            row.outcome = 'NOT RUN'
        elif bad:
            case, (what, message) = next(iter(bad.items()))
            first = (message.splitlines() or [''])[0][:80]
            row.outcome = (f'{what.upper()} {len(bad)} of {len(cases)}: '
                           f'{case} ({first})')
        else:
            row.outcome = f'held ({len(cases)} test cases)'


def table(rows: List[Row]) -> str:
    lines = ['| section | fault | outcome |', '|---|---|---|']
    for row in rows:
        fault = row.fault if len(row.fault) <= 110 else row.fault[:107] + '...'
        lines.append(f'| {row.section} | {fault} | {row.outcome} |')
    held = sum(r.outcome.startswith('held') for r in rows)
    lines += ['', f'{held} of {len(rows)} faults held.']
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--doc', default=DOC)
    parser.add_argument('--check', action='store_true',
                        help='only check that every row names existing tests')
    parser.add_argument('--out', help='also write the table to this file')
    args = parser.parse_args(argv)
    rows = parse_rows(args.doc)
    resolve_all(rows)
    if args.check:
        judge(rows, {})
        bad = [r for r in rows if r.outcome.startswith('NO TEST')]
        for r in bad:
            print(f'{r.section}: {r.fault[:80]}: {r.outcome}')
        print(f'{len(rows) - len(bad)} of {len(rows)} rows name existing '
              'tests')
        return 1 if bad else 0
    judge(rows, run_pytest([n for r in rows for n in r.node_ids]))
    text = table(rows)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)
    return 0 if all(r.outcome.startswith('held') for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
