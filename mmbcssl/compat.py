"""Small, explicit fixes for known breakages of the pinned OpenMMLab stack.

Each fix is applied at run time by :func:`apply` (called on
``import mmbcssl``); no installed package is edited. Every fix names the
breakage it answers and has a test in ``tests/test_compat.py``.

1. ``pkg_resources``: mmengine 0.10.7 resolves ``mmdet::``/``mmpretrain::``
   base configs through it, and setuptools >= 81 no longer ships it. We fail
   on import with the fix rather than deep inside a config load.
2. ``mmcv.adjust_hue`` on numpy 2: ``np.uint8(hue_factor * 255)`` raises
   ``OverflowError`` for a negative shift, which breaks ``ColorJitter`` with
   ``hue > 0`` (DINO's augmentation) half of the time.
3. Checkpoint loading on torch >= 2.6: ``torch.load`` defaults to
   ``weights_only=True`` and mmengine never passes ``weights_only``, so
   resuming fails on mmengine's ``HistoryBuffer`` and numpy globals. We keep
   the safe loader and allow-list exactly those globals (and ``bytes()``,
   the data of an empty numpy array); on every torch version mmengine's
   checkpoint loaders go through :func:`safe_torch_load`, which refuses any
   other pickled global unless the user opts in (``--trust-checkpoint`` /
   ``MMBCSSL_TRUST_CHECKPOINT=1``), and names the file when it is truncated
   or corrupt.
4. Half-written checkpoints: mmengine's local file backend writes in place,
   so an interrupted save leaves a truncated ``epoch_N.pth`` and a
   ``last_checkpoint`` pointing at it. We register a local backend that
   writes to a temporary file and renames it into place, with the mode the
   user's umask gives (``mkstemp`` alone would leave 0600).
"""
import contextlib
import errno
import fnmatch
import os
import os.path as osp
import pickle
import re
import struct
import tempfile
import warnings
from typing import Any, Dict, Iterator, List, Optional, Union

import numpy as np

TRUST_ENV = 'MMBCSSL_TRUST_CHECKPOINT'

_applied = False
# mmcv's own adjust_hue, before the fix (set by apply()).
mmcv_adjust_hue = None


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside the allow-list."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is truncated or otherwise unreadable."""


class DiskFullError(OSError):
    """A write failed because the file system is full (or over quota)."""


# ---------------------------------------------------------------------------
# 1. pkg_resources
# ---------------------------------------------------------------------------
def check_pkg_resources() -> None:
    """Fail early, naming the fix, when ``pkg_resources`` is missing."""
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
# 2. mmcv.adjust_hue on numpy 2
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
# 3. Safe checkpoint loading
# ---------------------------------------------------------------------------
def _safe_checkpoint_globals() -> List[Any]:
    """Globals that mmengine, mmpretrain, mmdet and mmseg checkpoints pickle
    besides tensors and plain containers, and that cannot run code."""
    from mmengine.logging.history_buffer import HistoryBuffer

    # numpy 2 moved the private ``numpy.core`` to ``numpy._core``; torch
    # records whichever path the saving numpy used, so allow both.
    multiarray = [
        np.core.multiarray._reconstruct, np.core.multiarray.scalar
    ] if hasattr(np, 'core') else []
    try:
        from numpy._core import multiarray as _multiarray
        multiarray += [_multiarray._reconstruct, _multiarray.scalar]
    except ImportError:  # numpy 1
        pass
    dtypes = [type(np.dtype(t)) for t in np.sctypeDict.values()
              ] if hasattr(np, 'dtypes') else []
    return [HistoryBuffer, np.ndarray, np.dtype, *multiarray, *dtypes]


def checkpoints_trusted() -> bool:
    """Whether the user opted in to unpickling arbitrary checkpoint objects."""
    return os.environ.get(TRUST_ENV, '0').lower() in ('1', 'true', 'yes')


@contextlib.contextmanager
def trusted_checkpoints() -> Iterator[None]:
    """Allow arbitrary pickles inside this block (for files you made)."""
    saved = os.environ.get(TRUST_ENV)
    os.environ[TRUST_ENV] = '1'
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(TRUST_ENV)
        else:
            os.environ[TRUST_ENV] = saved


def _refusal_message(source: str, error: Exception) -> str:
    found = re.findall(r'(?:GLOBAL|global) ([\w.]+)', str(error))
    what = f'the pickled global {found[0]!r}' if found else \
        'pickled objects'
    return (f'refused to load checkpoint {source}: it contains {what}, '
            'which is not on mmbcssl\'s allow-list of safe types, and '
            'unpickling it could run arbitrary code. If you trust whoever '
            'made this file, re-run with --trust-checkpoint (tools/train.py, '
            f'tools/test.py) or set {TRUST_ENV}=1.')


def safe_torch_load(file: Union[str, Any],
                    map_location: Any = None,
                    source: Optional[str] = None) -> Any:
    """``torch.load`` that only unpickles allow-listed globals.

    Uses torch's own ``weights_only`` unpickler (every torch we support has
    it) with :func:`_safe_checkpoint_globals` added, on every torch version:
    before torch 2.6 ``torch.load`` defaulted to the unsafe loader.

    Raises:
        UnsafeCheckpointError: the file pickles another global and the user
            has not opted in with ``MMBCSSL_TRUST_CHECKPOINT=1``.
    """
    import torch
    source = source or str(file)
    trusted = checkpoints_trusted()
    try:
        return torch.load(
            file, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as e:
        if not trusted and not _is_damaged_pickle(e):
            raise UnsafeCheckpointError(_refusal_message(source, e)) from None
        raise CorruptCheckpointError(_corrupt_message(file, source,
                                                      e)) from e
    except Exception as e:
        if not _is_corruption(e):
            raise
        raise CorruptCheckpointError(_corrupt_message(file, source,
                                                      e)) from e


def _is_corruption(error: Exception) -> bool:
    """Whether ``torch.load`` failed because the bytes are damaged.

    What torch 2.x raises for a file cut short or overwritten: an empty
    file gives ``EOFError``; a zip without its central directory (any
    truncation, since the directory is at the end) a ``RuntimeError`` from
    ``PytorchStreamReader``; a cut inside a record ``OSError`` EINVAL; other
    bytes a ``KeyError``/``ValueError`` from the legacy unpickler. Other
    ``RuntimeError``s (a CUDA tensor on a CPU-only machine) and missing or
    unreadable paths are not corruption.
    """
    if isinstance(error, (EOFError, KeyError, ValueError, struct.error)):
        return True
    if isinstance(error, RuntimeError):
        return any(s in str(error)
                   for s in ('PytorchStreamReader', 'corrupt file'))
    return isinstance(error, OSError) and error.errno == errno.EINVAL


# What pickle (and torch's weights-only unpickler) say about damaged bytes,
# as opposed to a global outside the allow-list.
_DAMAGED_PICKLE = ('Unsupported operand', 'pickle data was truncated',
                   'invalid load key', 'Memo value not found')


def _is_damaged_pickle(error: Exception) -> bool:
    return any(s in str(error) for s in _DAMAGED_PICKLE)


def _corrupt_message(file: Any, source: str, error: Exception) -> str:
    text = str(error)
    lines = [line.strip() for line in text.splitlines()
             if any(m in line for m in _DAMAGED_PICKLE)]
    reason = (lines[0] if lines else text.split('. ')[0].strip()
              or 'no data')
    size = ''
    if isinstance(file, (str, os.PathLike)) and osp.isfile(file):
        size = f' ({osp.getsize(file)} bytes)'
    return (f'checkpoint {source}{size} is truncated or corrupt '
            f'({type(error).__name__}: {reason}); an interrupted save or '
            'copy leaves such files. Use another checkpoint (e.g. the '
            'previous one in the same work dir) or copy it again.')


def _history_buffer_method(owner: Any, name: str) -> Any:
    """The only ``getattr`` a safe checkpoint may use.

    mmengine's ``HistoryBuffer.__getstate__`` pickles its statistics methods,
    and pickle writes ``HistoryBuffer.mean`` as ``getattr(HistoryBuffer,
    'mean')``. A general ``getattr`` would reach anything, so this
    stand-in only returns functions defined on ``HistoryBuffer`` itself.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if owner is HistoryBuffer and callable(vars(HistoryBuffer).get(name)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'GLOBAL builtins.getattr({owner!r}, {name!r}) is not allowed')


def _empty_bytes(*args: Any) -> bytes:
    """The only ``bytes(...)`` call a safe checkpoint may make: ``bytes()``.

    torch saves with pickle protocol 2, which writes a non-empty ``bytes``
    as ``_codecs.encode(...)`` (torch allows that) but an empty one as the
    call ``bytes()``; an empty numpy array (e.g. the history of a fresh
    mmengine ``HistoryBuffer``) pickles its data that way. ``bytes`` itself
    is not allowed: ``bytes(10 ** 12)`` would allocate a terabyte.
    """
    if args:
        raise pickle.UnpicklingError(
            f'GLOBAL builtins.bytes{args!r} is not allowed (only bytes())')
    return b''


def _renamed_safe_globals() -> Dict[str, Any]:
    """Allow-listed stand-ins, by the name the pickle stream uses."""
    # Protocol-2 pickles name builtins '__builtin__'.
    return {
        'builtins.getattr': _history_buffer_method,
        '__builtin__.getattr': _history_buffer_method,
        'builtins.bytes': _empty_bytes,
        '__builtin__.bytes': _empty_bytes,
    }


def _allow_safe_globals() -> None:
    import torch
    import torch.serialization
    safe = _safe_checkpoint_globals()
    renamed = _renamed_safe_globals()
    version = tuple(int(v) for v in re.findall(r'\d+', torch.__version__)[:2])
    if version >= (2, 5):  # (object, name) entries exist since torch 2.5
        torch.serialization.add_safe_globals(
            safe + [(obj, name) for name, obj in renamed.items()])
        return
    # torch 2.1 - 2.4: extend what the private weights-only unpickler's
    # allow-list function returns.
    import torch._weights_only_unpickler as wou
    original = wou._get_allowed_globals
    if getattr(original, '_mmbcssl_fixed', False):
        return

    def _get_allowed_globals():
        allowed = original()
        allowed.update({f'{g.__module__}.{g.__qualname__}': g for g in safe})
        allowed.update(renamed)
        return allowed

    _get_allowed_globals._mmbcssl_fixed = True
    wou._get_allowed_globals = _get_allowed_globals


def _register_checkpoint_loaders() -> None:
    """Route mmengine's local and http(s) checkpoint loading through
    :func:`safe_torch_load` (mmengine's loaders call ``torch.load`` with its
    version-dependent default)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename: str, map_location: Any = None) -> Any:
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(
                f'checkpoint {filename} not found: check the path given to '
                "--resume, load_from or init_cfg's checkpoint")
        return safe_torch_load(filename, map_location, source=filename)

    def load_from_http(filename: str,
                       map_location: Any = None,
                       model_dir: Optional[str] = None) -> Any:
        from mmengine.utils.dl_utils.hub import _get_torch_home
        from torch.hub import download_url_to_file
        model_dir = model_dir or osp.join(_get_torch_home(), 'checkpoints')
        os.makedirs(model_dir, exist_ok=True)
        cached = osp.join(model_dir, osp.basename(filename.split('?')[0]))
        if not osp.isfile(cached):
            download_url_to_file(filename, cached, progress=False)
        return safe_torch_load(cached, map_location, source=filename)

    CheckpointLoader.register_scheme('', load_from_local, force=True)
    CheckpointLoader.register_scheme(('http://', 'https://'),
                                     load_from_http,
                                     force=True)


# ---------------------------------------------------------------------------
# 4. Atomic checkpoint writes
# ---------------------------------------------------------------------------
def current_umask() -> int:
    """The process's umask, read without changing it where possible.

    ``os.umask`` can only be read by setting it; between the two calls a
    file created by another thread would get mode 0666. Linux reports it in
    ``/proc/self/status``.
    """
    with contextlib.suppress(OSError, ValueError):
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_name_pattern(filepath: Union[str, os.PathLike]) -> str:
    """The glob pattern of :func:`atomic_write`'s temporary files for
    ``filepath`` (hidden, next to it)."""
    return f'.{osp.basename(os.fspath(filepath))}.*.part'


def remove_stale_temp_files(folder: str, pattern: str = '.*.part') -> list:
    """Remove temporary files that a killed :func:`atomic_write` left in
    ``folder`` (not recursive). Only call it where no other write to
    ``folder`` can be in progress.

    Returns:
        list: The removed paths.
    """
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir(folder)):
            if name.endswith('.part') and fnmatch.fnmatch(name, pattern):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(osp.join(folder, name))
                    removed.append(osp.join(folder, name))
    return removed


def atomic_write(data: Union[bytes, str],
                 filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` so that ``filepath`` is either the old or the new file.

    The bytes go to a temporary file in the same folder, are flushed to disk
    and then renamed over ``filepath`` (atomic on POSIX and Windows). The
    file gets the mode a plain ``open(filepath, 'w')`` would give (0666
    less the umask).

    Raises:
        DiskFullError: the file system is full or over quota; ``filepath``
            is left as it was and the temporary file is removed.
    """
    filepath = os.fspath(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode(encoding)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f'.{osp.basename(filepath)}.', suffix='.part')
    try:
        with os.fdopen(fd, 'wb') as f:
            if hasattr(os, 'fchmod'):  # mkstemp creates it 0600
                os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC,
                                                  errno.EDQUOT):
            raise DiskFullError(
                e.errno, f'no space left on the device while writing '
                f'{filepath} ({len(data) / 2**20:.1f} MB); nothing was '
                'replaced and the partial file was removed. Free space '
                '(or point --work-dir at a bigger disk) and run again',
                filepath) from e
        raise


def _register_atomic_local_backend() -> None:
    import mmengine.fileio.io as fileio_io
    from mmengine.fileio.backends import LocalBackend, register_backend

    class AtomicLocalBackend(LocalBackend):
        """mmengine's local backend whose writes are atomic."""

        def put(self, obj: bytes, filepath) -> None:
            atomic_write(obj, filepath)

        def put_text(self, obj: str, filepath, encoding: str = 'utf-8'):
            atomic_write(obj, filepath, encoding=encoding)

    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    # get_file_backend caches instances: drop the plain ones made so far.
    for key, backend in list(fileio_io.backend_instances.items()):
        if type(backend) is LocalBackend:
            del fileio_io.backend_instances[key]


def apply() -> None:
    """Apply every fix once. Safe to call again."""
    global _applied
    if _applied:
        return
    check_pkg_resources()
    _patch_adjust_hue()
    _allow_safe_globals()
    _register_checkpoint_loaders()
    _register_atomic_local_backend()
    _applied = True
