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

__all__ = ["atomic_write", "json_safe"]


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
