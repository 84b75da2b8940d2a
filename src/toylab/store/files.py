"""The files of a store: recognising one before touching it, and its weight files beside it.

A store is an SQLite database (``--store PATH``) plus a folder ``PATH-arrays/`` (named like
SQLite's own ``PATH-wal``) with one safetensors file of weights per finished run. Weights are
never pickled: safetensors holds raw little-endian arrays and a JSON header, nothing to execute.

Before a store is opened, its first 100 bytes (the SQLite header) must say three things: an
SQLite database, written by toylab (``PRAGMA application_id``), and not shorter than its own
page count. Anything else is refused with one line, and nothing in it is touched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import safetensors.numpy

from toylab.errors import StoreError
from toylab.io import atomic_write

__all__ = ["APPLICATION_ID", "check_store_file", "default_path", "arrays_folder", "write_arrays",
           "read_arrays"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
# "tlab" in ASCII: SQLite keeps it at bytes 68–71 of the header, so a store is recognised
# without running a query (the `file` command reports it too).
APPLICATION_ID = 0x746C6162


def check_store_file(path: Path) -> None:
    """Refuse ``path`` unless it is a toylab store (or does not exist yet).

    Raises:
      StoreError: a directory, a file that is not SQLite, an SQLite database of another
        application, or a store shorter than its header says (truncated).
    """
    if path.is_dir():
        raise StoreError(f"{path} is a directory; --store takes the path of a database file")
    if not path.exists():
        return
    with open(path, "rb") as file:
        header = file.read(100)
    size = path.stat().st_size
    refuse = f"{path} is not a toylab store"
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        what = "an empty file" if size == 0 else f"a {size}-byte file that is not an SQLite database"
        raise StoreError(f"{refuse}: {what}; nothing in it was changed (give a new path)")
    if int.from_bytes(header[68:72], "big") != APPLICATION_ID:
        raise StoreError(f"{refuse}: an SQLite database of another application (no toylab "
                          "application_id); nothing in it was changed (give a new path)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count is valid when bytes 92–95 repeat the change counter (SQLite ≥ 3.7). A
    # checkpoint cut short may leave the file short while the -wal file still holds the pages,
    # so a short file is damage only without a WAL to recover from.
    header_valid = header[24:28] == header[92:96]
    wal = Path(f"{path}-wal")
    if header_valid and size < pages * page_size and not (wal.exists() and wal.stat().st_size):
        raise StoreError(f"{path} is a damaged toylab store: {size} bytes where its header says "
                          f"{pages * page_size} (truncated?); nothing in it was changed")


def default_path(study: str, *, seed: int = 0, root: str | Path = "runs", **settings: object) -> Path:
    """``runs/<study>-<name><value>...[-seed<S>].sqlite``: one store per study and settings.

    The same command finds its own store again (to resume or read back), and other settings
    get another store. ``settings`` keep their order; a base ``seed`` of 0 is left out of the
    name, so that stores named before seeds were part of it are still found.

    >>> default_path("intro", k=8, s=10_000)
    PosixPath('runs/intro-k8-s10000.sqlite')
    >>> default_path("phase-n2m1", g=12, k=4, s=3000, seed=1)
    PosixPath('runs/phase-n2m1-g12-k4-s3000-seed1.sqlite')
    """
    parts = [study, *(f"{name}{value}" for name, value in settings.items())]
    if seed:
        parts.append(f"seed{seed}")
    return Path(root) / f"{'-'.join(parts)}.sqlite"


def arrays_folder(path: Path) -> Path:
    """``PATH-arrays/``: where the store at ``path`` keeps its weight files."""
    return Path(f"{path}-arrays")


def arrays_file(run: int) -> str:
    """The weight file of run ``run``, relative to :func:`arrays_folder`."""
    return f"run-{run:08d}.safetensors"


def write_arrays(folder: Path, run: int, arrays: Mapping[str, np.ndarray]) -> str:
    """Write one run's weights atomically (temporary file, fsync, rename); returns its name."""
    name = arrays_file(run)
    data = safetensors.numpy.save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    atomic_write(folder / name, lambda file: file.write(data))
    return name


def read_arrays(folder: Path, name: str) -> dict[str, np.ndarray]:
    """One run's weights, by the name :func:`write_arrays` returned."""
    return safetensors.numpy.load_file(os.fspath(folder / name))
