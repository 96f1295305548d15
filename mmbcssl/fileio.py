"""The file-safety layer: checkpoints are read through an allow-list and
written atomically, and a damaged or refused file is named in one line.

:func:`apply` (called on ``import mmbcssl``) registers it with torch and
mmengine; no installed package is edited. Tests: ``tests/test_fileio.py``.

1. Safe loading. torch >= 2.6 defaults ``torch.load`` to
   ``weights_only=True`` and mmengine 0.10.7 never passes ``weights_only``,
   so resuming fails on mmengine's ``HistoryBuffer`` and numpy globals. We
   keep the safe loader and allow-list exactly those globals (and
   ``bytes()``, the data of an empty numpy array, and the
   ``argparse.Namespace`` of published training checkpoints); on every torch
   version mmengine's checkpoint loaders (local files and http(s) URLs) go
   through :func:`safe_torch_load`, which refuses any other pickled global
   unless the user opts in (``--trust-checkpoint`` /
   ``MMBCSSL_TRUST_CHECKPOINT=1``), and names the file when it is truncated
   or corrupt (:class:`CorruptCheckpointError`). torch's zip reader does not
   check the CRC-32 that the zip format stores for each record, so bytes
   changed inside a tensor record load as other weights (NaN, say); we check
   every record's CRC first (Python's ``zipfile``: 0.04 s for a 112 MB file
   read from the page cache) and name the bad record. Weights and features
   that are NaN or Inf are refused where they are loaded into a model,
   converted or extracted (:func:`first_nonfinite`,
   :class:`NonFiniteError`).
2. Atomic writes. mmengine's local file backend writes in place, so an
   interrupted save leaves a truncated ``epoch_N.pth`` and a
   ``last_checkpoint`` pointing at it. We register a local backend that
   writes through :func:`atomic_write`: a temporary file renamed into
   place, with the mode the user's umask gives (``mkstemp`` alone would
   leave 0600). A full disk raises :class:`DiskFullError`.
"""
import argparse
import contextlib
import errno
import fnmatch
import os
import os.path as osp
import pickle
import re
import struct
import tempfile
import zipfile
from typing import (Any, Dict, Iterator, List, Mapping, Optional, Tuple,
                    Union)

import numpy as np

from mmbcssl import compat

TRUST_ENV = 'MMBCSSL_TRUST_CHECKPOINT'

_applied = False


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside the allow-list."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is truncated or otherwise unreadable."""


class NonFiniteError(ValueError):
    """Weights or features hold NaN or Inf values."""


class DiskFullError(OSError):
    """A write failed because the file system is full (or over quota)."""


# ---------------------------------------------------------------------------
# 1. Safe checkpoint loading
# ---------------------------------------------------------------------------
def _safe_checkpoint_globals() -> List[Any]:
    """Globals that mmengine, mmpretrain, mmdet and mmseg checkpoints pickle
    besides tensors and plain containers, and that cannot run code.

    ``argparse.Namespace`` is the ``args`` of the published full checkpoints
    (facebookresearch/dino ``main_dino.py``, microsoft/esvit
    ``main_esvit.py``, facebookresearch/ConvNeXt ``utils.save_model``, timm's
    ``CheckpointSaver``). Unpickling one only creates an empty Namespace and
    fills its ``__dict__``; its attribute values go through the same
    allow-list, so a payload inside ``args`` is still refused.
    """
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
    return [
        HistoryBuffer, argparse.Namespace, np.ndarray, np.dtype,
        *multiarray, *dtypes
    ]


def missing_file_message(path: str, what: str = 'checkpoint',
                         expected: str = 'a .pth file') -> Optional[str]:
    """Why ``path`` is not a file the tools can read, in one line; None
    when it is one.

    Args:
        path (str): The path given.
        what (str): What it should be, e.g. ``'checkpoint'``.
        expected (str): What the tool reads, for the message. Defaults to
            'a .pth file'.
    """
    if osp.isfile(path):
        return None
    if osp.isdir(path):
        pths = sorted(f for f in os.listdir(path) if f.endswith('.pth'))
        hint = f' (it holds {", ".join(pths[:3])}' + \
            (', ...)' if len(pths) > 3 else ')') if pths else ''
        return (f'{what} {path!r} is a directory; give {expected} inside '
                f'it{hint}')
    return f'{what} {path!r} not found'


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
    _check_zip_records(file, source)
    # Leaving a ``torch.serialization.safe_globals([...])`` block removes
    # its globals from the allow-list even when they were there before
    # (timm's checkpoint loading uses one for ``argparse.Namespace``), so
    # ours are registered again for every load.
    _allow_safe_globals()
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


def _check_zip_records(file: Any, source: str) -> None:
    """Check the CRC-32 of every record of a zip (torch >= 1.6) checkpoint.

    A file that is not a zip (legacy format, or truncated: the zip
    directory is at the end) is left to ``torch.load`` and
    :func:`_is_corruption`. A file object is read from where it stands and
    put back there.

    Raises:
        CorruptCheckpointError: a record whose bytes do not match its CRC,
            or whose header is damaged, naming the record.
    """
    if isinstance(file, (str, os.PathLike)):
        if not osp.isfile(file) or not zipfile.is_zipfile(file):
            return
        bad = _first_bad_record(file)
    elif all(hasattr(file, a) for a in ('read', 'seek', 'tell')):
        start = file.tell()
        try:
            bad = _first_bad_record(file) if zipfile.is_zipfile(file) \
                else None
        finally:
            file.seek(start)
    else:
        return
    if bad is not None:
        size = ''
        if isinstance(file, (str, os.PathLike)):
            size = f' ({osp.getsize(file)} bytes)'
        raise CorruptCheckpointError(
            f'checkpoint {source}{size} is corrupt: its record {bad!r} '
            'fails the zip CRC check (its bytes changed after it was '
            'written, on a disk or in a copy); re-download or re-create '
            'it (e.g. use the previous checkpoint in the same work dir)')


def _first_bad_record(file: Any) -> Optional[str]:
    """The name of the first record failing its CRC, or None."""
    try:
        with zipfile.ZipFile(file) as archive:
            return archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError,
            ValueError) as e:
        return f'<zip directory: {e}>'


def first_nonfinite(tensors: Mapping[str, Any]
                    ) -> Optional[Tuple[str, int, int]]:
    """The first floating-point tensor of ``tensors`` holding NaN or Inf,
    as ``(key, non-finite values, values)``; None when all are finite."""
    import torch
    for key, value in tensors.items():
        if (torch.is_tensor(value)
                and (value.is_floating_point() or value.is_complex())):
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                return key, bad, value.numel()
    return None


def check_finite_weights(tensors: Mapping[str, Any], source: str,
                         what: str = 'weights') -> None:
    """Refuse a state dict holding NaN or Inf.

    Raises:
        NonFiniteError: naming ``source``, the first bad key and how many
            of its values are not finite.
    """
    found = first_nonfinite(tensors)
    if found is not None:
        key, bad, total = found
        raise NonFiniteError(
            f'{source}: {what} {key!r} holds {bad} NaN/Inf value(s) of '
            f'{total} (and it is the first such key); nothing computed '
            'from it would mean anything. Use a checkpoint from before the '
            'training diverged, or re-download / re-create the file')


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
    compat.add_safe_globals(_safe_checkpoint_globals(),
                            _renamed_safe_globals())


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
        from torch.hub import download_url_to_file, get_dir

        # torch.hub's download folder, which mmengine's own loader uses
        model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
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
# 2. Atomic writes
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
    """Register safe loading and atomic writes once. Safe to call again."""
    global _applied
    if _applied:
        return
    _allow_safe_globals()
    _register_checkpoint_loaders()
    _register_atomic_local_backend()
    _applied = True
