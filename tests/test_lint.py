"""The code passes flake8 with the project's setup.cfg."""
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_flake8_clean():
    proc = subprocess.run(
        [sys.executable, '-m', 'flake8', 'mmbcssl', 'tools', 'tests',
         'configs'], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
