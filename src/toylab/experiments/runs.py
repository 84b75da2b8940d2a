"""Run folders: where a study writes, and how it writes without leaving half a file."""

from __future__ import annotations

import datetime
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_write", "default_run_folder", "json_safe"]


def default_run_folder(study: str, root: str | Path = "runs") -> Path:
    """``runs/<study>-<UTC timestamp>``: a new folder name for every run."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{study}-{stamp}"


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` through ``write(file)`` into a temporary file, then rename it in place.

    A crash mid-write leaves the previous file (or none), never a truncated one.
    """
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        write(tmp)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)
    return path


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as None (JSON has no NaN), dicts and lists walked."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
