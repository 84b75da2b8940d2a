"""Run folders: where a study writes, and how it writes without leaving half a file."""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "default_run_folder"]


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
