"""The version shims of mmbcssl.compat, each against its breakage, and
each checked again once its package moves past the version it was made
for."""
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
import torch._weights_only_unpickler as wou
from mmengine.logging import HistoryBuffer

import mmbcssl  # noqa: F401  (applies the shims)
from mmbcssl import compat, fileio


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


# --- torch's weights-only allow-list on torch 2.1 - 2.4 ---------------------
@pytest.fixture
def bare_torch_allow_list(monkeypatch):
    """torch's weights-only allow-list without what mmbcssl added, restored
    afterwards."""
    added = torch.serialization.get_safe_globals()
    current = wou._get_allowed_globals
    monkeypatch.setattr(wou, '_get_allowed_globals',
                        getattr(current, 'mmbcssl_original', current))
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(added)


def _checkpoint_with_history(path):
    buf = HistoryBuffer()  # empty: its arrays pickle `bytes()`
    buf_used = HistoryBuffer()
    buf_used.update(2.5)
    torch.save(dict(state_dict={'w': torch.ones(2)},
                    message_hub=dict(fresh=buf, used=buf_used,
                                     seed=np.int64(3))), path)


class _BigBytes:
    """``bytes(n)`` in a pickle."""

    def __reduce__(self):
        return (bytes, (10, ))


def test_private_allow_list_branch_loads_mmengine_checkpoints(
        tmp_path, bare_torch_allow_list):
    """The torch 2.1 - 2.4 branch, run on the installed torch (whose
    weights-only unpickler still consults the private function it
    extends)."""
    path = str(tmp_path / 'iter_1.pth')
    _checkpoint_with_history(path)
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(path, weights_only=True)  # torch alone refuses it
    compat.extend_private_allow_list(fileio._safe_checkpoint_globals(),
                                     fileio._renamed_safe_globals())
    ckpt = torch.load(path, weights_only=True)
    assert isinstance(ckpt['message_hub']['fresh'], HistoryBuffer)
    assert ckpt['message_hub']['used'].current() == 2.5
    assert ckpt['message_hub']['seed'] == 3
    # the stand-ins, not the builtins, are what the branch allows
    torch.save({'x': _BigBytes()}, path)
    with pytest.raises(pickle.UnpicklingError, match='bytes'):
        torch.load(path, weights_only=True)
    # applied twice, it wraps once
    patched = wou._get_allowed_globals
    compat.extend_private_allow_list([], {})
    assert wou._get_allowed_globals is patched


def test_allow_list_shim_takes_the_private_branch_only_before_torch_2_5():
    private = hasattr(wou._get_allowed_globals, 'mmbcssl_original')
    public = (fileio._empty_bytes, 'builtins.bytes') in \
        torch.serialization.get_safe_globals()
    needed_up_to = tuple(
        int(v) for v in compat.SHIMS['add_safe_globals'].needed_up_to.split(
            '.'))
    if compat.torch_version() <= needed_up_to:
        assert private and not public
    else:
        assert public and not private


# --- each shim is checked again when its package moves on ------------------
# add_safe_globals checks the torch version itself (the test above).
VERSIONED_SHIMS = ['check_pkg_resources', 'adjust_hue']


def test_every_shim_has_a_version_check():
    assert set(compat.SHIMS) == set(VERSIONED_SHIMS) | {'add_safe_globals'}
    for name in compat.SHIMS:
        assert callable(getattr(compat, name)), name


@pytest.mark.parametrize('name', VERSIONED_SHIMS)
def test_shim_is_checked_again_past_the_version_it_was_made_for(name):
    from importlib.metadata import version

    from packaging.version import Version
    shim = compat.SHIMS[name]
    installed = version(shim.package)
    assert Version(installed) <= Version(shim.needed_up_to), (
        f'{shim.package} {installed} is newer than {shim.needed_up_to}, the '
        f'newest version the shim mmbcssl.compat.{name} was checked against '
        f'(why it exists: {shim.why}). Check whether {shim.package} '
        f'{installed} still needs it: drop the shim if not, else raise its '
        'needed_up_to in mmbcssl.compat.SHIMS.')
