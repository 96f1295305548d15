"""The compatibility fixes of mmbcssl.compat, each against the breakage."""
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

import mmbcssl  # noqa: F401  (applies the fixes)
from mmbcssl import compat


# --- numpy 2 and mmcv.adjust_hue --------------------------------------------
@pytest.mark.parametrize('factor, expected', [(0.1, 25), (-0.1, 231),
                                              (-0.5, 129), (0.5, 127),
                                              (0.0, 0)])
def test_hue_shift_wraps_like_numpy1(factor, expected):
    # numpy 1 cast float -> uint8 by truncating toward zero, then mod 256.
    assert compat.hue_shift_uint8(factor) == expected


def _hand_hue(img, factor):
    import cv2
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL).astype(np.int64)
    hsv[..., 0] = (hsv[..., 0] + int(factor * 255)) % 256
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR_FULL)


@pytest.mark.parametrize('factor', [-0.5, -0.25, -0.01, 0.2, 0.5])
def test_adjust_hue_negative_and_positive(factor):
    import mmcv
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8)
    out = mmcv.adjust_hue(img, factor)  # raised OverflowError on numpy 2
    np.testing.assert_array_equal(out, _hand_hue(img, factor))


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_adjust_hue_matches_mmcv_for_positive_shift(backend):
    # For positive shifts mmcv's original code still works on numpy 2, so
    # our rewrite must give exactly its result.
    original = compat.mmcv_adjust_hue
    assert original is not None and original is not compat.adjust_hue
    img = np.random.default_rng(1).integers(0, 256, (12, 10, 3), np.uint8)
    for factor in (0.0, 0.1, 0.37):
        np.testing.assert_array_equal(
            compat.adjust_hue(img, factor, backend=backend),
            original(img, factor, backend=backend))


def test_colorjitter_hue_runs_through_mmpretrain():
    from mmpretrain.datasets.transforms import ColorJitter
    t = ColorJitter(hue=0.5)
    img = np.random.default_rng(2).integers(0, 256, (8, 8, 3), np.uint8)
    for _ in range(20):  # half the draws are negative shifts
        assert t(dict(img=img.copy()))['img'].shape == img.shape


def test_adjust_hue_rejects_out_of_range():
    with pytest.raises(ValueError, match='hue_factor'):
        compat.adjust_hue(np.zeros((2, 2, 3), np.uint8), 0.6)


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
    monkeypatch.delenv(compat.TRUST_ENV, raising=False)
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'payload': _Evil()}, path)
    with pytest.raises(compat.UnsafeCheckpointError) as info:
        _load_checkpoint(path, map_location='cpu')
    msg = str(info.value)
    assert path in msg and '--trust-checkpoint' in msg
    assert compat.TRUST_ENV in msg and 'system' in msg


class Point:
    """A harmless class that is on no allow-list."""

    def __init__(self, x):
        self.x = x


def test_trusted_opt_in_loads_arbitrary_objects(tmp_path, monkeypatch):
    monkeypatch.delenv(compat.TRUST_ENV, raising=False)
    path = str(tmp_path / 'custom.pth')
    torch.save({'p': Point(3)}, path)
    with pytest.raises(compat.UnsafeCheckpointError, match='Point'):
        _load_checkpoint(path, map_location='cpu')
    with compat.trusted_checkpoints():
        assert _load_checkpoint(path)['p'].x == 3
    assert compat.TRUST_ENV not in os.environ


def test_empty_history_buffer_checkpoint_loads_safely(tmp_path,
                                                      monkeypatch):
    """A fresh HistoryBuffer holds empty numpy arrays, which pickle the
    call ``builtins.bytes()`` (protocol 2, torch's default)."""
    monkeypatch.delenv(compat.TRUST_ENV, raising=False)
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
    monkeypatch.delenv(compat.TRUST_ENV, raising=False)
    path = str(tmp_path / 'big.pth')
    torch.save({'x': _BigBytes()}, path)
    with pytest.raises(compat.UnsafeCheckpointError, match='bytes'):
        _load_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        compat._empty_bytes(10)
    assert compat._empty_bytes() == b''


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
        with pytest.raises(compat.CorruptCheckpointError) as info:
            if trusted:
                with compat.trusted_checkpoints():
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
        compat.safe_torch_load(path)


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        _load_checkpoint(str(tmp_path / 'nope.pth'))


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
    compat.atomic_write('one', path)
    compat.atomic_write(b'two', path)
    assert path.read_text() == 'two'


# --- pkg_resources -----------------------------------------------------
def test_missing_pkg_resources_names_the_fix(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == 'pkg_resources':
            raise ImportError('No module named pkg_resources')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', fake_import)
    with pytest.raises(ImportError, match="setuptools<81"):
        compat.check_pkg_resources()


def test_mmdet_style_base_config_resolves():
    # mmengine resolves `mmpretrain::` bases through pkg_resources.
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(osp.dirname(__file__), 'data', 'configs',
                 'cross_repo_base.py'))
    assert cfg.model.backbone.type == 'ResNet'
    assert pickle.dumps(cfg.to_dict())


def test_restricted_getattr_only_reaches_history_buffer_methods():
    assert compat._history_buffer_method(HistoryBuffer, 'mean') is \
        HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError):
        compat._history_buffer_method(os, 'system')
    with pytest.raises(pickle.UnpicklingError):
        compat._history_buffer_method(HistoryBuffer, '__init_subclass__')


def test_getattr_to_anything_else_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(compat.TRUST_ENV, raising=False)

    class Sneaky:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__class__'))

    path = str(tmp_path / 'sneaky.pth')
    torch.save({'x': Sneaky()}, path)
    with pytest.raises(compat.UnsafeCheckpointError):
        _load_checkpoint(path)
