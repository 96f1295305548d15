import copy
import functools
import os
import socket
import subprocess

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=None)
def _parsed_config(path: str):
    from mmengine.config import Config
    return Config.fromfile(path)


def load_config(path: str):
    """``Config.fromfile(path)``, parsed once per test session: several
    test files walk every config of the repository. Each call returns its
    own copy, free to change."""
    return copy.deepcopy(_parsed_config(os.path.abspath(path)))


def derived_config(path, base: str, body: str) -> str:
    """Write a config at ``path`` (a ``pathlib.Path``) that inherits
    ``base`` and adds ``body`` (config text); return its path."""
    path.write_text(f'_base_ = {base!r}\n{body}')
    return str(path)


def free_port() -> int:
    """A TCP port nobody listens on now, for a test's process group."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _deterministic_seed():
    """Every test starts from the same random state."""
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """Undo any ``init_default_scope`` a test made.

    mmengine keeps the default scope in a process-wide registry: after a
    test built an mmseg model, ``mmpretrain.registry.MODELS.build`` in a
    later test would look in mmseg's registry and miss ``DINO``. Tests must
    not depend on the order they run in, so each one starts with the scope
    it found.
    """
    from mmengine.registry import DefaultScope
    saved = list(DefaultScope._instance_dict.items())
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


def pytest_configure(config):
    # Two cores: more threads only add contention.
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory):
    """Small demo data in every format, made once per test session.

    10 classes (the tiny test configs' head size), few images each.
    """
    from mmbcssl.datasets.demo import DemoSizes, make_demo_data
    out = str(tmp_path_factory.mktemp('demo_data'))
    sizes = DemoSizes(num_classes=10, train_per_class=8, val_per_class=4,
                      image_size=64, coco_train=6, coco_val=4, coco_size=128,
                      robust_per_class=2, c_per_class=1)
    make_demo_data(out, sizes, seed=0, log=lambda msg: None)
    return out


@pytest.fixture(scope='session')
def unshare_tmpfs(tmp_path_factory):
    """How to run a command with a real, small file system (a tmpfs in its
    own mount namespace; no root needed where user namespaces work)."""
    probe = tmp_path_factory.mktemp('probe')
    cmd = ['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c',
           f'mount -t tmpfs -o size=64k tmpfs {probe}']
    try:
        ok = subprocess.run(cmd, capture_output=True).returncode == 0
    except FileNotFoundError:
        ok = False
    if not ok:
        pytest.skip('cannot mount a tmpfs in a user namespace here')
    return cmd[:4]
