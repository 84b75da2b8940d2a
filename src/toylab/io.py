"""Writing files safely: atomic writes, and values made fit for JSON.

The lowest layer of toylab beside :mod:`toylab.errors`: the store, sweeps, experiments and the
CLI all write through it, and it imports nothing of toylab.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_write", "json_safe", "nearest_creatable_folder"]


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` through ``write(file)`` into a temporary file, then rename it in place.

    A crash mid-write leaves the previous file (or none), never a truncated one; an exception
    in ``write`` also removes the temporary file before it propagates.
    """
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        try:
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)
    return path


def nearest_creatable_folder(path: Path) -> Path:
    """The nearest folder that exists on the way to ``path`` (``path`` itself or a parent),
    once an entry has been created in it and removed again.

    Making an entry is the only sure test that one can be made there: permission bits miss a
    read-only mount or a pseudo file system such as ``/proc``. Nothing is left behind.

    Raises:
      NotADirectoryError: that nearest existing entry is a file (``filename`` names it).
      OSError: no entry can be created in it.
    """
    existing = Path(path)
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(20, "a file, not a folder", str(existing))
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".toylab-check-", dir=existing))
    except OSError as exc:  # named after the folder that refuses, not the probe's random name
        raise OSError(exc.errno, exc.strerror, str(existing)) from None
    return existing


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as None (JSON has no NaN), dicts and lists walked.

    >>> json_safe({"loss": float("nan"), "steps": [1, float("inf")]})
    {'loss': None, 'steps': [1, None]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
