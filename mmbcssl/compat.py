"""Version shims: small, explicit fixes for known breakages of the pinned
OpenMMLab stack (``requirements/mminstall.txt``, ``tools/setup_env.py``).

:func:`apply` (called on ``import mmbcssl``) applies them; no installed
package is edited. Each shim is listed in :data:`SHIMS` with why it is
needed and the newest version of the package that is known to need it;
``tests/test_compat.py`` tests each against its breakage and fails once the
installed package is newer than that, so that the shim is checked again
(and dropped, or its version raised). The file-safety layer (safe
checkpoint loading, atomic writes) is :mod:`mmbcssl.fileio`.
"""
import re
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np

_applied = False
# mmcv's own adjust_hue, before the fix (set by apply()).
mmcv_adjust_hue = None


@dataclass(frozen=True)
class Shim:
    """What a shim answers.

    Args:
        package (str): The distribution whose breakage the shim answers.
        needed_up_to (str): The newest version of ``package`` known to
            need the shim (checked against its source).
        why (str): The breakage.
    """
    package: str
    needed_up_to: str
    why: str


SHIMS = {
    'check_pkg_resources': Shim(
        'mmengine', '0.10.7',
        "mmengine resolves 'mmdet::'/'mmpretrain::' base configs through "
        'pkg_resources (mmengine/utils/package_utils.py), which setuptools '
        '>= 81 no longer ships; we fail on import, naming the fix, rather '
        'than deep inside a config load'),
    'adjust_hue': Shim(
        'mmcv', '2.1.0',
        "mmcv.adjust_hue computes np.uint8(hue_factor * 255), which raises "
        'OverflowError on numpy 2 for a negative shift: ColorJitter with '
        "hue > 0 (DINO's augmentation) failed half of the time"),
    'add_safe_globals': Shim(
        'torch', '2.4',
        "torch.serialization.add_safe_globals takes (object, name) entries "
        'only since torch 2.5 (and exists only since 2.4); before, the '
        "weights-only unpickler's allow-list can only be extended through "
        'a private function. Taken on torch 2.1 - 2.4 only'),
}


# ---------------------------------------------------------------------------
# pkg_resources (needed up to mmengine 0.10.7)
# ---------------------------------------------------------------------------
def check_pkg_resources() -> None:
    """Fail early, naming the fix, when ``pkg_resources`` is missing.

    Shim ``SHIMS['check_pkg_resources']``: needed up to mmengine 0.10.7.
    """
    with warnings.catch_warnings():
        # setuptools >= 67 warns that pkg_resources is deprecated.
        warnings.simplefilter('ignore')
        try:
            import pkg_resources  # noqa: F401
        except ImportError as e:
            raise ImportError(
                'mmbcssl needs pkg_resources (mmengine 0.10.7 uses it to '
                "resolve 'mmdet::' and 'mmpretrain::' base configs), which "
                "setuptools >= 81 removed. Fix: pip install 'setuptools<81'"
            ) from e


# ---------------------------------------------------------------------------
# mmcv.adjust_hue on numpy 2 (needed up to mmcv 2.1.0)
# ---------------------------------------------------------------------------
def hue_shift_uint8(hue_factor: float) -> np.uint8:
    """The hue shift as a uint8 that wraps around, as numpy 1 computed it.

    numpy 1 cast ``hue_factor * 255`` to uint8 with C semantics: truncation
    toward zero, then modulo 256 (``-25.5 -> -25 -> 231``). numpy 2 raises
    ``OverflowError`` for the negative value instead.
    """
    return np.uint8(int(hue_factor * 255) % 256)


def adjust_hue(img: np.ndarray,
               hue_factor: float,
               backend: Optional[str] = None) -> np.ndarray:
    """``mmcv.adjust_hue`` with the hue shift of :func:`hue_shift_uint8`.

    Same arguments, checks and result as mmcv 2.1's function (both the cv2
    and the pillow backend); only the uint8 shift is computed so that it
    also works on numpy 2. Rewritten rather than wrapped because the broken
    expression sits in the middle of mmcv's function.

    Shim ``SHIMS['adjust_hue']``: needed up to mmcv 2.1.0.
    """
    import cv2
    from mmcv.image.io import imread_backend
    from PIL import Image

    backend = backend or imread_backend
    if backend not in ('cv2', 'pillow'):
        raise ValueError(f'backend: {backend} is not supported. '
                         "Supported backends are 'cv2', 'pillow'")
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f'hue_factor:{hue_factor} is not in [-0.5, 0.5].')
    if not (isinstance(img, np.ndarray) and img.ndim in (2, 3)):
        raise TypeError('img should be ndarray with dim=[2 or 3].')
    shift = hue_shift_uint8(hue_factor)
    if backend == 'pillow':
        assert img.dtype == np.uint8, 'Pillow backend only support uint8 type'
        rgb = Image.fromarray(np.ascontiguousarray(img[..., ::-1]), 'RGB')
        h, s, v = rgb.convert('HSV').split()
        h = np.asarray(h, dtype=np.uint8) + shift  # uint8 wraps around
        hsv = Image.merge('HSV', (Image.fromarray(h, 'L'), s, v))
        return np.asarray(hsv.convert('RGB'), dtype=img.dtype)[..., ::-1]
    hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2HSV_FULL)
    hsv[..., 0] += shift  # uint8 wraps around the hue circle
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL).astype(img.dtype)


def _patch_adjust_hue() -> None:
    import mmcv
    import mmcv.image
    import mmcv.image.photometric

    global mmcv_adjust_hue
    if mmcv.image.photometric.adjust_hue is not adjust_hue:
        # Kept for the test that compares both on positive shifts.
        mmcv_adjust_hue = mmcv.image.photometric.adjust_hue
    # mmpretrain's ColorJitter calls ``mmcv.adjust_hue``; mmcv re-exports
    # the function under three names.
    for module in (mmcv, mmcv.image, mmcv.image.photometric):
        module.adjust_hue = adjust_hue


# ---------------------------------------------------------------------------
# torch's weights-only allow-list (needed on torch 2.1 - 2.4)
# ---------------------------------------------------------------------------
def torch_version() -> tuple:
    """(major, minor) of the installed torch."""
    import torch
    return tuple(int(v) for v in re.findall(r'\d+', torch.__version__)[:2])


def add_safe_globals(safe: List[Any], renamed: Dict[str, Any]) -> None:
    """Let torch's weights-only unpickler build ``safe`` (classes and
    functions, under their own names) and ``renamed`` (stand-ins, under the
    name the pickle stream uses, e.g. ``'builtins.bytes'``).

    Shim ``SHIMS['add_safe_globals']``: torch >= 2.5 takes both through
    ``torch.serialization.add_safe_globals``; torch 2.1 - 2.4 (the oldest
    torch the README supports is 2.1) go through
    :func:`extend_private_allow_list`. Drop that branch when the oldest
    supported torch is 2.5.
    """
    if torch_version() >= (2, 5):
        import torch.serialization
        torch.serialization.add_safe_globals(
            safe + [(obj, name) for name, obj in renamed.items()])
    else:
        extend_private_allow_list(safe, renamed)


def extend_private_allow_list(safe: List[Any],
                              renamed: Dict[str, Any]) -> None:
    """Add ``safe`` and ``renamed`` to what the private
    ``torch._weights_only_unpickler._get_allowed_globals`` returns: on torch
    2.1 - 2.4 the weights-only unpickler has no other allow-list that takes
    names. Newer torch still consults that function, so a test runs this
    branch on the installed torch."""
    import functools

    import torch._weights_only_unpickler as wou
    original = wou._get_allowed_globals
    if hasattr(original, 'mmbcssl_original'):  # extended already
        return

    # torch caches its own function the same way; ours copies its dict
    # rather than changing torch's cached one.
    @functools.lru_cache(maxsize=1)
    def _get_allowed_globals() -> Dict[str, Any]:
        allowed = dict(original())
        allowed.update({f'{g.__module__}.{g.__qualname__}': g for g in safe})
        allowed.update(renamed)
        return allowed

    _get_allowed_globals.mmbcssl_original = original
    wou._get_allowed_globals = _get_allowed_globals


def apply() -> None:
    """Apply every unconditional shim once. Safe to call again.
    (:func:`add_safe_globals` is called by :func:`mmbcssl.fileio.apply`.)"""
    global _applied
    if _applied:
        return
    check_pkg_resources()
    _patch_adjust_hue()
    _applied = True
