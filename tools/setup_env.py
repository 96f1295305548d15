#!/usr/bin/env python3
"""Create or update the mmbcssl environment, then verify it.

Usage::

    python3 tools/setup_env.py            # set up (idempotent) and verify
    python3 tools/setup_env.py --verify   # only verify an existing env

What it does, each step skipped when already done:

1. creates the virtual environment (``.venv/`` in the repo root, or
   ``$MMBCSSL_VENV``);
2. installs torch + torchvision as a matched pair (``$MMBCSSL_TORCH_SPEC``,
   default ``torch==2.14.1 torchvision==0.29.1``) unless the env has a
   working pair already;
3. builds mmcv 2.1.0 **with its compiled ops** from the PyPI sdist (PyPI has
   no mmcv 2.x wheels), patching the C++ standard to C++20 for
   torch >= 2.14, and caches the wheel under ``$MMBCSSL_CACHE`` (default
   ``~/.cache/mmbcssl``) keyed by Python, torch and CUDA versions. The first
   build takes about 27 minutes on 2 cores; later set-ups reuse the wheel.
   With a CUDA device (or ``FORCE_CUDA=1`` and nvcc) the CUDA ops are built;
4. installs mmengine, mmdet, mmpretrain, mmsegmentation, the runtime and
   test requirements and mmbcssl itself (editable);
5. verifies: ``mmcv.ops`` imports and a RoIAlign call gives the known
   answer (on CUDA too when available); mmdet, mmpretrain, mmseg and
   mmbcssl import.

Only the standard library is used, so any ``python3`` >= 3.8 can run it.
Why each step is needed: the README, "Install".
"""
import argparse
import contextlib
import glob
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MMCV_VERSION = '2.1.0'
DEFAULT_TORCH_SPEC = 'torch==2.14.1 torchvision==0.29.1'
# mmengine 0.10.7 needs pkg_resources at run time; mmcv's setup.py at build
# time. setuptools 81 removed it.
BUILD_TOOLS = ['setuptools<81', 'wheel', 'ninja', 'psutil']
SUPPORTED_PYTHON = ((3, 8), (3, 12))
STAMP_NAME = '.mmbcssl-setup.json'
# Bump when the steps below change in a way that needs a re-run.
SETUP_VERSION = 1

_t0 = time.time()


class SetupError(RuntimeError):
    """A set-up problem with a message that names the fix."""


def log(msg: str) -> None:
    print(f'[setup {time.time() - _t0:6.0f}s] {msg}', flush=True)


def run(cmd, env=None, quiet=True, log_file=None):
    """Run ``cmd``; on failure raise SetupError with the tail of its output."""
    kwargs = dict(env=env, text=True)
    if log_file is not None:
        kwargs.update(stdout=log_file, stderr=subprocess.STDOUT)
    elif quiet:
        kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    proc = subprocess.run(cmd, **kwargs)
    if proc.returncode != 0:
        tail = '\n'.join((proc.stdout or '').splitlines()[-30:])
        raise SetupError(f'command failed ({proc.returncode}): '
                         f'{" ".join(cmd)}\n{tail}')
    return proc.stdout or ''


def venv_python(venv: str) -> str:
    return osp.join(venv, 'Scripts' if os.name == 'nt' else 'bin', 'python')


def py_eval(python: str, code: str) -> str:
    """Run ``code`` in the env's interpreter; '' if it fails."""
    proc = subprocess.run([python, '-c', code],
                          stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL,
                          text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ''


def pip(python: str, *args, **kwargs):
    # Registry warnings about unusable local index entries are noise here.
    return run([python, '-m', 'pip', '--disable-pip-version-check', *args],
               **kwargs)


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------
def check_host(python: str) -> None:
    info = py_eval(python, 'import sys; print(*sys.version_info[:2])')
    if not info:
        raise SetupError(f'cannot run {python}')
    version = tuple(int(v) for v in info.split())
    lo, hi = SUPPORTED_PYTHON
    if not lo <= version <= hi:
        raise SetupError(
            f'Python {version[0]}.{version[1]} is not supported: mmcv '
            f'{MMCV_VERSION} and the pinned OpenMMLab releases need Python '
            f'{lo[0]}.{lo[1]}-{hi[0]}.{hi[1]}. Point MMBCSSL_PYTHON at a '
            'supported interpreter.')


def ensure_venv(base_python: str, venv: str) -> str:
    python = venv_python(venv)
    if osp.exists(python) and py_eval(python, 'print(1)') == '1':
        return python
    if osp.exists(venv):
        log(f'{venv} exists but has no working interpreter: recreating it')
        shutil.rmtree(venv)
    log(f'creating virtual environment {venv}')
    run([base_python, '-m', 'venv', venv])
    return python


def torch_pair_works(python: str) -> bool:
    # torchvision's compiled ops must match torch: a mismatched pair fails
    # on `operator torchvision::nms does not exist`.
    return py_eval(
        python, 'import torch, torchvision;'
        'b=torch.tensor([[0.,0.,1.,1.]]);'
        'print(int(torchvision.ops.nms(b, torch.ones(1), .5)[0]))') == '0'


def ensure_torch(python: str, spec: str) -> None:
    if torch_pair_works(python):
        return
    log(f'installing {spec} (a few minutes; several GB for CUDA builds)')
    pip(python, 'install', *spec.split())
    if not torch_pair_works(python):
        raise SetupError(
            f'torch and torchvision from "{spec}" do not work together. '
            'Set MMBCSSL_TORCH_SPEC to a matched pair, e.g. '
            f'"{DEFAULT_TORCH_SPEC}".')


def torch_info(python: str) -> dict:
    out = py_eval(
        python, 'import json, torch; print(json.dumps(dict('
        'torch=torch.__version__, cuda=torch.version.cuda,'
        'cuda_available=torch.cuda.is_available())))')
    return json.loads(out)


def wants_cuda_ops(info: dict) -> bool:
    """Build CUDA ops when torch has CUDA and a device or FORCE_CUDA=1."""
    if not info['cuda']:
        return False
    if os.environ.get('FORCE_CUDA') == '1':
        return True
    return bool(info['cuda_available']) and shutil.which('nvcc') is not None


def wheel_tag(python: str, info: dict) -> str:
    py = py_eval(python, 'import sys; print("%d%d" % sys.version_info[:2])')
    ops = 'cu' + info['cuda'].replace('.', '') if wants_cuda_ops(
        info) else 'cpu'
    return f'py{py}-torch{info["torch"]}-{ops}'


def mmcv_ops_work(python: str) -> bool:
    return py_eval(
        python, 'import mmcv, mmcv.ops;'
        f'assert mmcv.__version__ == "{MMCV_VERSION}"; print("ok")') == 'ok'


def public_version(version: str) -> str:
    return version.split('+', 1)[0]


def torch_version_tuple(version: str):
    return tuple(int(x) for x in re.findall(r'\d+', version)[:2])


def patch_cxx_standard(setup_py: str) -> None:
    """torch >= 2.14 headers need C++20; mmcv 2.1 hard-codes c++14/17."""
    with open(setup_py) as f:
        text = f.read()
    text = re.sub(r'-std=c\+\+1[47]', '-std=c++20', text)
    with open(setup_py, 'w') as f:
        f.write(text)


def fetch_sdist(python: str, cache: str) -> str:
    sdist = osp.join(cache, 'src', f'mmcv-{MMCV_VERSION}.tar.gz')
    if osp.isfile(sdist):
        return sdist
    os.makedirs(osp.dirname(sdist), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=osp.dirname(sdist)) as tmp:
        log(f'downloading the mmcv {MMCV_VERSION} sdist')
        # --no-build-isolation: mmcv's setup.py imports pkg_resources,
        # absent from the fresh setuptools of an isolated env.
        pip(python, 'download', '--no-deps', '--no-binary', ':all:',
            '--no-build-isolation', f'mmcv=={MMCV_VERSION}', '-d', tmp)
        got = glob.glob(osp.join(tmp, 'mmcv-*.tar.gz'))
        if not got:
            raise SetupError('pip download did not produce the mmcv sdist')
        os.replace(got[0], sdist)
    return sdist


def build_mmcv_wheel(python: str, info: dict, cache: str, tag: str) -> str:
    """Build the mmcv wheel with ops; the cache only ever holds whole
    wheels (built in a temporary folder, then moved in)."""
    if shutil.which('c++') is None and shutil.which('g++') is None:
        raise SetupError(
            'no C++ compiler found: building mmcv\'s ops needs one. Install '
            'it (Debian/Ubuntu: apt-get install g++) and re-run.')
    sdist = fetch_sdist(python, cache)
    out_dir = osp.join(cache, 'wheels', tag)
    os.makedirs(out_dir, exist_ok=True)
    cuda = wants_cuda_ops(info)
    log(f'building mmcv {MMCV_VERSION} with {"CUDA" if cuda else "CPU"} ops '
        f'({tag}). This is the slow step: about 27 min on 2 cores, once; '
        'the wheel is cached for later set-ups.')
    with tempfile.TemporaryDirectory(prefix='mmcv-build-') as tmp:
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp)
        src = osp.join(tmp, f'mmcv-{MMCV_VERSION}')
        if torch_version_tuple(info['torch']) >= (2, 14):
            patch_cxx_standard(osp.join(src, 'setup.py'))
        env = dict(os.environ, MMCV_WITH_OPS='1')
        env.setdefault('MAX_JOBS', str(os.cpu_count() or 2))
        if cuda:
            env['FORCE_CUDA'] = '1'
        wheel_dir = osp.join(tmp, 'wheel')
        build_log = osp.join(cache, 'wheels', f'{tag}.build.log')
        cmd = [
            python, '-m', 'pip', '--disable-pip-version-check', 'wheel',
            '--no-deps', '--no-build-isolation', '-v', src, '-w', wheel_dir
        ]
        with open(build_log, 'w') as f:
            proc = subprocess.Popen(
                cmd, env=env, stdout=f, stderr=subprocess.STDOUT, text=True)
            _report_build_progress(proc, build_log)
        if proc.returncode != 0:
            with open(build_log) as f:
                tail = ''.join(f.readlines()[-25:])
            raise SetupError(f'the mmcv build failed; full log: {build_log}'
                             f'\n{tail}')
        wheel = glob.glob(osp.join(wheel_dir, 'mmcv-*.whl'))[0]
        target = osp.join(out_dir, osp.basename(wheel))
        shutil.copy(wheel, target + '.part')
        os.replace(target + '.part', target)
    log(f'cached {target}')
    return target


def _report_build_progress(proc, build_log: str, every: float = 60.) -> None:
    """Say every minute that the build is alive and how far it got."""
    start = last = time.time()
    while proc.poll() is None:
        time.sleep(2)
        if time.time() - last < every:
            continue
        last = time.time()
        done = ''
        with open(build_log, errors='replace') as f:
            steps = re.findall(r'\[(\d+)/(\d+)\]', f.read())
        if steps:
            done = f', {steps[-1][0]}/{steps[-1][1]} files compiled'
        log(f'  mmcv build running: {(last - start) / 60:.0f} min{done}')


def ensure_mmcv(python: str, cache: str) -> None:
    """Install the mmcv wheel (cached, or built now). Its dependencies
    (mmengine, ...) come with :func:`install_packages`, so ``mmcv.ops`` is
    checked after that."""
    if mmcv_ops_work(python):
        return
    info = torch_info(python)
    tag = wheel_tag(python, info)
    pattern = osp.join(cache, 'wheels', tag, f'mmcv-{MMCV_VERSION}-*.whl')
    cached = sorted(glob.glob(pattern))
    if cached:
        wheel = cached[-1]
    else:
        wheel = build_mmcv_wheel(python, info, cache, tag)
    if cached:
        log(f'using the cached mmcv wheel {wheel}')
    # A pure-Python mmcv-lite installs into the same `mmcv` folder.
    with contextlib.suppress(SetupError):
        pip(python, 'uninstall', '-y', 'mmcv-lite')
    pip(python, 'install', '--no-deps', '--force-reinstall', wheel)


def check_mmcv_ops(python: str, cache: str) -> None:
    if mmcv_ops_work(python):
        return
    proc = subprocess.run([python, '-c', 'import mmcv.ops'],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    tail = '\n'.join(proc.stdout.splitlines()[-6:])
    raise SetupError(
        f'mmcv is installed but `import mmcv.ops` fails:\n{tail}\nIf the '
        f'cached wheel under {osp.join(cache, "wheels")} is broken, delete '
        'it and re-run to rebuild it.')


def install_packages(python: str) -> None:
    info = torch_info(python)
    tv = py_eval(python, 'import torchvision; print(torchvision.__version__)')
    with tempfile.NamedTemporaryFile('w', suffix='.txt', delete=False) as c:
        # Keep the torch pair and mmcv that earlier steps put in place.
        # Without the local label (+cu130): `==2.14.1` matches the installed
        # 2.14.1+cu130, `==2.14.1+cu130` matches no index entry.
        c.write(f'torch=={public_version(info["torch"])}\n'
                f'torchvision=={public_version(tv)}\n'
                f'mmcv=={MMCV_VERSION}\nsetuptools<81\n')
    try:
        req = osp.join(REPO, 'requirements')
        log('installing OpenMMLab packages and requirements')
        pip(python, 'install', '-c', c.name, '-r',
            osp.join(req, 'mminstall.txt'), '-r',
            osp.join(req, 'runtime.txt'), '-r', osp.join(req, 'tests.txt'))
        pip(python, 'install', '-c', c.name, '--no-deps',
            '--no-build-isolation', '-e', REPO)
    finally:
        os.remove(c.name)


VERIFY_CODE = r'''
import warnings
warnings.simplefilter('ignore')
import torch, mmcv, mmcv.ops, mmengine, mmdet, mmpretrain, mmseg, mmbcssl
from mmcv.ops import roi_align
# On the ramp image f(x, y) = 4y + x bilinear sampling is exact, so a
# 1x1 RoIAlign bin averages to f at the RoI centre; aligned=True shifts the
# box (0, 0)-(2, 2) by -0.5 px: centre (0.5, 0.5), f = 2.5.
feat = torch.arange(16.).view(1, 1, 4, 4)
rois = torch.tensor([[0., 0., 0., 2., 2.]])
for dev in ['cpu'] + (['cuda'] if torch.cuda.is_available() else []):
    out = roi_align(feat.to(dev), rois.to(dev), (1, 1), 1.0, 2, 'avg', True)
    assert abs(out.item() - 2.5) < 1e-5, (dev, out)
print('torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmengine',
      mmengine.__version__, '| mmdet', mmdet.__version__, '| mmpretrain',
      mmpretrain.__version__, '| mmseg', mmseg.__version__, '| cuda ops',
      torch.cuda.is_available())
'''


def verify(python: str) -> None:
    proc = subprocess.run([python, '-c', VERIFY_CODE],
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          cwd=REPO)
    if proc.returncode != 0:
        tail = '\n'.join(proc.stdout.splitlines()[-15:])
        raise SetupError(f'verification failed:\n{tail}\nRe-run '
                         'tools/setup_env.py; if it persists, delete the '
                         'virtual environment and re-run.')
    log('verified: ' + proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
def inputs_digest(torch_spec: str) -> str:
    """What a finished set-up depends on; a change re-runs the installs."""
    h = hashlib.sha256(f'{SETUP_VERSION}|{torch_spec}|{MMCV_VERSION}'.encode())
    for name in sorted(glob.glob(osp.join(REPO, 'requirements', '*.txt'))) + [
            osp.join(REPO, 'setup.py')
    ]:
        with open(name, 'rb') as f:
            h.update(f.read())
    return h.hexdigest()


@contextlib.contextmanager
def exclusive(venv: str):
    """One set-up at a time per env (the demo and tests may race)."""
    os.makedirs(osp.dirname(osp.abspath(venv)), exist_ok=True)
    lock_path = osp.abspath(venv) + '.setup.lock'
    with open(lock_path, 'w') as lock:
        try:
            import fcntl
            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # Windows: no lock, best effort
            pass
        yield


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--venv',
        default=os.environ.get('MMBCSSL_VENV', osp.join(REPO, '.venv')),
        help='virtual environment folder (env MMBCSSL_VENV)')
    parser.add_argument(
        '--cache',
        default=os.environ.get('MMBCSSL_CACHE',
                               osp.expanduser('~/.cache/mmbcssl')),
        help='where built wheels are kept (env MMBCSSL_CACHE)')
    parser.add_argument(
        '--torch-spec',
        default=os.environ.get('MMBCSSL_TORCH_SPEC', DEFAULT_TORCH_SPEC),
        help='pip requirement(s) for torch and torchvision')
    parser.add_argument(
        '--python',
        default=os.environ.get('MMBCSSL_PYTHON', sys.executable),
        help='interpreter the env is created from (env MMBCSSL_PYTHON)')
    parser.add_argument(
        '--verify', action='store_true', help='only verify the env')
    args = parser.parse_args(argv)
    venv = osp.abspath(args.venv)
    try:
        with exclusive(venv):
            if args.verify:
                verify(venv_python(venv))
                return 0
            check_host(args.python)
            python = ensure_venv(args.python, venv)
            stamp_path = osp.join(venv, STAMP_NAME)
            digest = inputs_digest(args.torch_spec)
            with contextlib.suppress(OSError, ValueError):
                with open(stamp_path) as f:
                    if json.load(f).get('digest') == digest and \
                            mmcv_ops_work(python):
                        log('environment up to date; verifying')
                        verify(python)
                        return 0
            pip(python, 'install', *BUILD_TOOLS)
            ensure_torch(python, args.torch_spec)
            # torch's install may upgrade setuptools past 80.
            pip(python, 'install', *BUILD_TOOLS)
            ensure_mmcv(python, osp.abspath(args.cache))
            install_packages(python)
            check_mmcv_ops(python, osp.abspath(args.cache))
            verify(python)
            with open(stamp_path, 'w') as f:
                json.dump(dict(digest=digest, time=time.time()), f)
            log(f'done in {time.time() - _t0:.0f}s; the env is {venv}')
            return 0
    except SetupError as e:
        print(f'setup error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('setup interrupted: re-run tools/setup_env.py to finish '
              '(completed steps are kept).', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
