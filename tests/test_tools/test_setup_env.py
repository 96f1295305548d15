"""tools/setup_env.py: the pieces that decide what gets built, and the
verification of the installed env."""
import importlib.util
import os.path as osp
import sys

import pytest

from tests.conftest import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    'setup_env', osp.join(REPO_ROOT, 'tools', 'setup_env.py'))
setup_env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup_env)


def test_cxx_standard_patch(tmp_path):
    setup_py = tmp_path / 'setup.py'
    setup_py.write_text("a = ['-std=c++14']\nb = ['-std=c++17', '-O3']\n"
                        "c = '-std=c++11'\n")
    setup_env.patch_cxx_standard(str(setup_py))
    text = setup_py.read_text()
    assert text.count('-std=c++20') == 2
    assert '-std=c++11' in text  # only the flags torch >= 2.14 breaks


def test_wheel_tag_separates_cpu_and_cuda_builds(monkeypatch):
    monkeypatch.delenv('FORCE_CUDA', raising=False)
    py = sys.executable
    cpu = setup_env.wheel_tag(
        py, dict(torch='2.14.1+cu130', cuda='13.0', cuda_available=False))
    assert cpu.endswith('-torch2.14.1+cu130-cpu')
    monkeypatch.setenv('FORCE_CUDA', '1')
    cuda = setup_env.wheel_tag(
        py, dict(torch='2.14.1+cu130', cuda='13.0', cuda_available=False))
    assert cuda.endswith('-cu130') and cuda != cpu
    cpu_torch = setup_env.wheel_tag(
        py, dict(torch='2.13.0+cpu', cuda=None, cuda_available=False))
    assert cpu_torch.endswith('-cpu')  # FORCE_CUDA cannot add CUDA ops


def test_inputs_digest_tracks_the_torch_spec():
    a = setup_env.inputs_digest('torch==2.14.1 torchvision==0.29.1')
    assert a == setup_env.inputs_digest('torch==2.14.1 torchvision==0.29.1')
    assert a != setup_env.inputs_digest('torch==2.4.1 torchvision==0.19.1')


def test_torch_version_parsing():
    assert setup_env.torch_version_tuple('2.14.1+cu130') >= (2, 14)
    assert setup_env.torch_version_tuple('2.9.1') < (2, 14)


def test_unsupported_python_is_refused(monkeypatch):
    monkeypatch.setattr(setup_env, 'py_eval', lambda python, code: '3 7')
    with pytest.raises(setup_env.SetupError, match='Python 3.7'):
        setup_env.check_host('python3.7')


def test_missing_compiler_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(setup_env.shutil, 'which', lambda name: None)
    with pytest.raises(setup_env.SetupError, match='g\\+\\+'):
        setup_env.build_mmcv_wheel(
            sys.executable,
            dict(torch='2.14.1', cuda=None, cuda_available=False),
            str(tmp_path), 'tag')


def test_verification_passes_in_this_env(capsys):
    """The set-up's own check (mmcv.ops RoIAlign with a known answer,
    every package imports), run in this interpreter. tools/run_tests.sh
    also runs it, in a fresh one, before every test run."""
    exec(compile(setup_env.VERIFY_CODE, 'VERIFY_CODE', 'exec'), {})
    out = capsys.readouterr().out
    assert out.startswith('torch ') and '| mmcv 2.1.0 |' in out


def test_a_failed_verification_names_the_fix(tmp_path, capsys):
    """--verify on an env whose interpreter fails the check: exit 1, the
    interpreter's last lines and what to do."""
    python = tmp_path / 'venv' / 'bin' / 'python'
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/sh\n'
                      "echo \"ModuleNotFoundError: No module named "
                      "'mmcv._ext'\"\nexit 1\n")
    python.chmod(0o755)
    assert setup_env.main(['--verify', '--venv',
                           str(tmp_path / 'venv')]) == 1
    err = capsys.readouterr().err
    assert 'verification failed' in err and "'mmcv._ext'" in err
    assert 'Re-run tools/setup_env.py' in err


def _fake_mmcv_sdist(folder):
    """A stand-in for the mmcv sdist: same name and layout, a setup.py with
    mmcv's C++ flags, and no compiled code, so `pip wheel` takes seconds."""
    import tarfile
    src = folder / f'mmcv-{setup_env.MMCV_VERSION}'
    (src / 'mmcv').mkdir(parents=True)
    (src / 'mmcv' / '__init__.py').write_text('')
    (src / 'setup.py').write_text(
        'from setuptools import setup\n'
        "FLAGS = ['-std=c++14', '-std=c++17']\n"
        f"setup(name='mmcv', version='{setup_env.MMCV_VERSION}', "
        "packages=['mmcv'], description=' '.join(FLAGS))\n")
    sdist = folder / f'mmcv-{setup_env.MMCV_VERSION}.tar.gz'
    with tarfile.open(sdist, 'w:gz') as tar:
        tar.add(src, arcname=src.name)
    return sdist


@pytest.mark.parametrize('torch_version, flag', [('2.14.1', '-std=c++20'),
                                                 ('2.13.0', '-std=c++17')])
def test_build_path_patches_and_caches_the_wheel(tmp_path, torch_version,
                                                 flag):
    cache = tmp_path / 'cache'
    (cache / 'src').mkdir(parents=True)
    sdist = _fake_mmcv_sdist(tmp_path)
    sdist.rename(cache / 'src' / sdist.name)
    info = dict(torch=torch_version, cuda=None, cuda_available=False)
    wheel = setup_env.build_mmcv_wheel(sys.executable, info, str(cache),
                                       'tagX')
    assert wheel.startswith(str(cache / 'wheels' / 'tagX'))
    assert osp.isfile(wheel) and not osp.exists(wheel + '.part')
    import zipfile
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist()
                           if n.endswith('METADATA'))).decode()
    # The description records the flags setup.py was built with.
    assert flag in meta and ('-std=c++14' in meta) == (flag == '-std=c++17')
