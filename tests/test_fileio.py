"""The file-safety layer of mmbcssl.fileio: safe checkpoint loading and
atomic writes, each against the fault it answers."""
import argparse
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

import mmbcssl  # noqa: F401  (registers the layer)
from mmbcssl import fileio


# --- safe checkpoint loading -------------------------------------------------
def _mmengine_style_checkpoint():
    buf = HistoryBuffer()
    buf.update(1.5)
    buf.update(np.float64(2.0))
    return dict(
        meta=dict(epoch=3, iter=7, seed=np.int64(5),
                  dataset_meta=dict(classes=('a', 'b'))),
        state_dict={'w': torch.ones(2)},
        message_hub=dict(log_scalars={'loss': buf},
                         runtime_info=dict(arr=np.arange(3))))


def test_mmengine_checkpoint_loads_safely(tmp_path):
    path = str(tmp_path / 'epoch_3.pth')
    save_checkpoint(_mmengine_style_checkpoint(), path)
    ckpt = _load_checkpoint(path, map_location='cpu')
    assert ckpt['meta']['epoch'] == 3
    hb = ckpt['message_hub']['log_scalars']['loss']
    assert isinstance(hb, HistoryBuffer) and hb.current() == 2.0
    np.testing.assert_array_equal(
        ckpt['message_hub']['runtime_info']['arr'], np.arange(3))


class _Evil:
    """Unpickling this would run code if the loader allowed it."""

    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_unsafe_checkpoint_is_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(fileio.TRUST_ENV, raising=False)
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'payload': _Evil()}, path)
    with pytest.raises(fileio.UnsafeCheckpointError) as info:
        _load_checkpoint(path, map_location='cpu')
    msg = str(info.value)
    assert path in msg and '--trust-checkpoint' in msg
    assert fileio.TRUST_ENV in msg and 'system' in msg


class Point:
    """A harmless class that is on no allow-list."""

    def __init__(self, x):
        self.x = x


def test_trusted_opt_in_loads_arbitrary_objects(tmp_path, monkeypatch):
    monkeypatch.delenv(fileio.TRUST_ENV, raising=False)
    path = str(tmp_path / 'custom.pth')
    torch.save({'p': Point(3)}, path)
    with pytest.raises(fileio.UnsafeCheckpointError, match='Point'):
        _load_checkpoint(path, map_location='cpu')
    with fileio.trusted_checkpoints():
        assert _load_checkpoint(path)['p'].x == 3
    assert fileio.TRUST_ENV not in os.environ


class _MakeDir:
    """Unpickling this would create the folder ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path, ))


class ArgsLike(argparse.Namespace):
    """A Namespace subclass: a class of its own, on no allow-list."""


def test_training_args_namespace_loads_safely(tmp_path, monkeypatch):
    """The ``args`` Namespace of published training checkpoints (DINO,
    EsViT, ConvNeXt, timm) loads with no opt-in, values intact."""
    monkeypatch.delenv(fileio.TRUST_ENV, raising=False)
    path = str(tmp_path / 'checkpoint.pth')
    args = argparse.Namespace(arch='vit_small', local_crops_scale=(0.05, 0.4),
                              lr=5e-4, clip_grad=None, use_fp16=True,
                              sizes=[224, 96])
    torch.save({'model': {'w': torch.ones(1)}, 'args': args}, path)
    assert b'argparse\nNamespace' in _pickle_of(path)
    loaded = fileio.safe_torch_load(path)['args']
    assert type(loaded) is argparse.Namespace and loaded == args


@pytest.mark.skipif(not hasattr(torch.serialization, 'safe_globals'),
                    reason='torch.serialization.safe_globals: torch >= 2.5')
def test_namespace_stays_allowed_after_a_safe_globals_block(tmp_path,
                                                            monkeypatch):
    """Leaving ``torch.serialization.safe_globals([Namespace])`` (timm's
    checkpoint loading uses one) takes Namespace off torch's list; our
    loader still reads the file."""
    monkeypatch.delenv(fileio.TRUST_ENV, raising=False)
    path = str(tmp_path / 'last.pth.tar')
    torch.save({'args': argparse.Namespace(model='resnet50')}, path)
    with torch.serialization.safe_globals([argparse.Namespace]):
        pass
    assert fileio.safe_torch_load(path)['args'].model == 'resnet50'


def test_payload_inside_args_namespace_is_refused(tmp_path, monkeypatch):
    """Allowing the Namespace allows no more: a payload among its
    attributes is refused, names its global, and never runs."""
    monkeypatch.delenv(fileio.TRUST_ENV, raising=False)
    marker = str(tmp_path / 'payload_ran')
    path = str(tmp_path / 'checkpoint.pth')
    torch.save({'args': argparse.Namespace(lr=0.1, hook=_MakeDir(marker))},
               path)
    with pytest.raises(fileio.UnsafeCheckpointError) as info:
        fileio.safe_torch_load(path)
    assert 'makedirs' in str(info.value) and path in str(info.value)
    assert not os.path.exists(marker)


def test_namespace_subclass_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(fileio.TRUST_ENV, raising=False)
    path = str(tmp_path / 'checkpoint.pth')
    torch.save({'args': ArgsLike(lr=0.1)}, path)
    with pytest.raises(fileio.UnsafeCheckpointError, match='ArgsLike'):
        fileio.safe_torch_load(path)


def test_empty_history_buffer_checkpoint_loads_safely(tmp_path,
                                                      monkeypatch):
    """A fresh HistoryBuffer holds empty numpy arrays, which pickle the
    call ``builtins.bytes()`` (protocol 2, torch's default)."""
    monkeypatch.delenv(fileio.TRUST_ENV, raising=False)
    path = str(tmp_path / 'iter_1.pth')
    save_checkpoint(dict(meta=dict(iter=1), state_dict={'w': torch.ones(1)},
                         message_hub=dict(log_scalars={
                             'val/acc': HistoryBuffer()
                         })), path)
    assert b'c__builtin__\nbytes\n' in _pickle_of(path)  # the global
    ckpt = _load_checkpoint(path, map_location='cpu')
    hb = ckpt['message_hub']['log_scalars']['val/acc']
    assert isinstance(hb, HistoryBuffer)
    assert hb.data[0].shape == (0, ) and hb.data[1].shape == (0, )


def _pickle_of(path):
    import zipfile
    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist()
                           if n.endswith('data.pkl')))


class _BigBytes:
    """``bytes(n)`` in a pickle: allocates n bytes if it were allowed."""

    def __reduce__(self):
        return (bytes, (10, ))


def test_bytes_with_arguments_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(fileio.TRUST_ENV, raising=False)
    path = str(tmp_path / 'big.pth')
    torch.save({'x': _BigBytes()}, path)
    with pytest.raises(fileio.UnsafeCheckpointError, match='bytes'):
        _load_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        fileio._empty_bytes(10)
    assert fileio._empty_bytes() == b''


def test_changed_bytes_in_a_record_are_caught_by_its_crc(tmp_path):
    """4 KiB of random bytes inside a tensor record (size kept, the zip
    still readable: torch would load them as weights): refused by path,
    through mmengine's loader and as a file object, naming the record;
    the file object is left where it stood."""
    import io

    from tests.test_tools.test_faults import overwrite_inside_largest_record
    path = str(tmp_path / 'epoch_3.pth')
    save_checkpoint(dict(_mmengine_style_checkpoint(),
                         big=torch.randn(64, 1024)), path)
    record = overwrite_inside_largest_record(path)
    for load in (fileio.safe_torch_load, _load_checkpoint):
        with pytest.raises(fileio.CorruptCheckpointError) as info:
            load(path)
        assert str(info.value).startswith(
            f'checkpoint {path} ({os.path.getsize(path)} bytes) is corrupt: '
            f'its record {record!r} fails the zip CRC check')
    buf = io.BytesIO(b'xyz' + open(path, 'rb').read())
    buf.seek(3)
    with pytest.raises(fileio.CorruptCheckpointError, match=record):
        fileio.safe_torch_load(buf, source='mem')
    assert buf.tell() == 3


def test_first_nonfinite_names_the_key():
    state = dict(a=torch.ones(3), n=torch.arange(4),
                 b=torch.tensor([1., float('inf'), float('nan')]))
    assert fileio.first_nonfinite(state) == ('b', 2, 3)
    assert fileio.first_nonfinite(dict(a=torch.ones(2))) is None
    with pytest.raises(fileio.NonFiniteError,
                       match=r"^f.pth: weights 'b' holds 2 NaN/Inf value"):
        fileio.check_finite_weights(state, 'f.pth')


@pytest.mark.parametrize('cut', [0, 10, 0.5, -20])
def test_truncated_checkpoint_names_the_file(tmp_path, cut):
    """Cut at 0 bytes, inside the zip header, in the middle and just before
    the end (the zip directory is at the end: every cut loses it)."""
    whole = str(tmp_path / 'whole.pth')
    save_checkpoint(_mmengine_style_checkpoint(), whole)
    data = open(whole, 'rb').read()
    n = int(len(data) * cut) if isinstance(cut, float) else cut % len(data)
    path = str(tmp_path / 'epoch_3.pth')
    with open(path, 'wb') as f:
        f.write(data[:n])
    for trusted in (False, True):
        with pytest.raises(fileio.CorruptCheckpointError) as info:
            if trusted:
                with fileio.trusted_checkpoints():
                    _load_checkpoint(path)
            else:
                _load_checkpoint(path)
        msg = str(info.value)
        assert msg.startswith(f'checkpoint {path} ({n} bytes) is truncated '
                              'or corrupt (')
        assert 'Use another checkpoint' in msg and '\n' not in msg


def test_other_load_errors_are_not_called_corruption(tmp_path):
    path = str(tmp_path / 'dir.pth')
    os.mkdir(path)
    with pytest.raises(IsADirectoryError):
        fileio.safe_torch_load(path)


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        _load_checkpoint(str(tmp_path / 'nope.pth'))


def test_restricted_getattr_only_reaches_history_buffer_methods():
    assert fileio._history_buffer_method(HistoryBuffer, 'mean') is \
        HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError):
        fileio._history_buffer_method(os, 'system')
    with pytest.raises(pickle.UnpicklingError):
        fileio._history_buffer_method(HistoryBuffer, '__init_subclass__')


def test_getattr_to_anything_else_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(fileio.TRUST_ENV, raising=False)

    class Sneaky:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__class__'))

    path = str(tmp_path / 'sneaky.pth')
    torch.save({'x': Sneaky()}, path)
    with pytest.raises(fileio.UnsafeCheckpointError):
        _load_checkpoint(path)


# --- checkpoints from http(s) URLs ----------------------------------------
@pytest.fixture
def http_folder(tmp_path, monkeypatch):
    """A folder served over HTTP on the loopback interface; yields the
    folder, its URL and the list of request paths."""
    import functools
    import http.server
    import threading
    root = tmp_path / 'served'
    root.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for var in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('no_proxy', '127.0.0.1')
    # torch.hub's download folder: $TORCH_HOME/hub/checkpoints
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    yield root, f'http://127.0.0.1:{server.server_port}', hits
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_checkpoint_is_downloaded_once_and_loaded_safely(
        http_folder, tmp_path, monkeypatch):
    monkeypatch.delenv(fileio.TRUST_ENV, raising=False)
    root, url, hits = http_folder
    save_checkpoint(_mmengine_style_checkpoint(), str(root / 'epoch_3.pth'))
    ckpt = _load_checkpoint(f'{url}/epoch_3.pth?v=1', map_location='cpu')
    assert ckpt['meta']['epoch'] == 3
    assert isinstance(ckpt['message_hub']['log_scalars']['loss'],
                      HistoryBuffer)
    # cached under its name without the query, then read from there
    cached = tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'epoch_3.pth'
    assert cached.read_bytes() == (root / 'epoch_3.pth').read_bytes()
    assert _load_checkpoint(f'{url}/epoch_3.pth')['meta']['epoch'] == 3
    assert hits == ['/epoch_3.pth?v=1']


def test_http_checkpoint_that_pickles_code_is_refused(http_folder,
                                                      monkeypatch):
    monkeypatch.delenv(fileio.TRUST_ENV, raising=False)
    root, url, _ = http_folder
    torch.save({'state_dict': {}, 'payload': _Evil()}, str(root / 'e.pth'))
    with pytest.raises(fileio.UnsafeCheckpointError) as info:
        _load_checkpoint(f'{url}/e.pth')
    assert f'refused to load checkpoint {url}/e.pth:' in str(info.value)


# --- atomic writes -----------------------------------------------------------
def test_interrupted_checkpoint_write_keeps_the_old_file(tmp_path,
                                                         monkeypatch):
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint({'state_dict': {'w': torch.zeros(1)}}, path)
    before = open(path, 'rb').read()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({'state_dict': {'w': torch.ones(1)}}, path)
    monkeypatch.undo()
    assert open(path, 'rb').read() == before
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # no temp file left


def test_atomic_write_replaces_content(tmp_path):
    path = tmp_path / 'sub' / 'f.txt'
    fileio.atomic_write('one', path)
    fileio.atomic_write(b'two', path)
    assert path.read_text() == 'two'


def test_local_backends_cached_before_the_atomic_one_are_dropped():
    """mmengine caches file backends (``get_file_backend(...,
    enable_singleton=True)``); a plain one cached before ``import mmbcssl``
    would keep writing checkpoints in place."""
    import mmengine.fileio.io as fileio_io
    from mmengine.fileio import (LocalBackend, get_file_backend,
                                 register_backend)
    register_backend('local', LocalBackend, force=True, prefixes='')
    # an earlier test may already have cached the atomic backend under the
    # same key: start from mmengine's state before `import mmbcssl`
    for key in [k for k, b in fileio_io.backend_instances.items()
                if type(b).__name__ == 'AtomicLocalBackend']:
        del fileio_io.backend_instances[key]
    try:
        plain = get_file_backend('work/epoch_1.pth', enable_singleton=True)
        assert type(plain) is LocalBackend
    finally:
        fileio._register_atomic_local_backend()
    backend = get_file_backend('work/epoch_1.pth', enable_singleton=True)
    assert type(backend) is not LocalBackend
    assert type(backend).__name__ == 'AtomicLocalBackend'
