"""The code passes flake8 with the project's setup.cfg, and the package's
layering holds."""
import ast
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


def test_flake8_clean():
    proc = subprocess.run(
        [sys.executable, '-m', 'flake8', 'mmbcssl', 'tools', 'tests',
         'configs'], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def cli_imports(path: str, source: str) -> list:
    """The lines of ``source`` (the module at ``path``, relative to the
    repository root) that import ``mmbcssl.cli`` or a module under it:
    ``import mmbcssl.cli.x``, ``from mmbcssl.cli.x import y``, ``from
    mmbcssl import cli``, relative imports that reach ``cli`` and
    ``importlib.import_module('mmbcssl.cli...')``."""
    package = path[:-len('.py')].replace(os.sep, '/').split('/')[:-1]

    def reaches_cli(name: str) -> bool:
        return name == 'mmbcssl.cli' or name.startswith('mmbcssl.cli.')

    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level \
                else []
            module = '.'.join(base + (node.module or '').split('.')).strip('.')
            names = [module] + [f'{module}.{a.name}' for a in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(
                node.args[0], ast.Constant) and getattr(
                    node.func, 'attr', getattr(node.func, 'id', None)) in (
                        'import_module', '__import__'):
            names = [str(node.args[0].value)]
        if any(reaches_cli(n) for n in names):
            found.append(f'{path}:{node.lineno}')
    return found


@pytest.mark.parametrize('source', [
    'import mmbcssl.cli.test',
    'import mmbcssl.cli as c',
    'from mmbcssl.cli.test import main',
    'from mmbcssl.cli import test',
    'from mmbcssl import cli',
    'from ..cli.test import main',
    'from .. import cli',
    'from ..cli import test',
    'def f():\n    from mmbcssl.cli.extract_backbone import extract',
    'importlib.import_module("mmbcssl.cli.test")',
])
def test_cli_import_check_sees_every_form(source):
    assert cli_imports(osp.join('mmbcssl', 'suite', 'x.py'), source) == [
        f'mmbcssl/suite/x.py:{source.count(chr(10)) + 1}'.replace(
            '/', os.sep)]


@pytest.mark.parametrize('source', [
    'import mmbcssl.client', 'from mmbcssl.utils.launch import run_cli',
    'from . import clip', 'from .cli_like import x', 'import mmbcssl'
])
def test_cli_import_check_passes_other_imports(source):
    assert cli_imports(osp.join('mmbcssl', 'suite', 'x.py'), source) == []


def test_library_does_not_import_cli():
    """``mmbcssl/cli`` parses, calls the library and prints; the library
    never imports it (``tools/*.py`` wrappers may)."""
    found = []
    for path in sorted(glob.glob(osp.join(REPO_ROOT, 'mmbcssl', '**', '*.py'),
                                 recursive=True)):
        rel = osp.relpath(path, REPO_ROOT)
        if rel.startswith(osp.join('mmbcssl', 'cli') + os.sep):
            continue
        with open(path, encoding='utf-8') as f:
            found += cli_imports(rel, f.read())
    assert not found, (
        'library modules import mmbcssl.cli; move the logic they need into '
        f'the library: {found}')
