"""Result files that are never half-written and never silently replaced."""
import json
import os.path as osp
from typing import Any, Iterable

from mmbcssl.fileio import atomic_write
from .launch import UserError


def refuse_existing(paths: Iterable[str], overwrite: bool,
                    flag: str = '--out') -> None:
    """Stop before any work when a result file exists already.

    Args:
        paths (Iterable[str]): The files the run will write.
        overwrite (bool): The user passed ``--overwrite``.
        flag (str): The option that named the output, for the message.

    Raises:
        UserError: one of ``paths`` exists and ``overwrite`` is False.
    """
    if overwrite:
        return
    existing = [p for p in paths if p and osp.exists(p)]
    if existing:
        more = f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''
        raise UserError(
            f'{existing[0]}{more} exists already ({flag}): it holds an '
            'earlier result. Choose another path, or pass --overwrite to '
            'replace it.')


def write_json(path: str, obj: Any) -> None:
    """``obj`` as indented JSON, written atomically (a temporary file
    renamed into place), so a reader never sees half a file."""
    atomic_write(json.dumps(obj, indent=2, default=float) + '\n', path)
