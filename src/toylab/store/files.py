"""The files of a store: recognising one before touching it, and its weight files beside it.

A store is an SQLite database (``--store PATH``) plus a folder ``PATH-arrays/`` (named like
SQLite's own ``PATH-wal``) with one safetensors file of weights per finished run. Weights are
never pickled: safetensors holds raw little-endian arrays and a JSON header, nothing to execute.
The store records each file's size and SHA-256 (of the bytes written), so that a file deleted,
truncated or overwritten since is recognised before it is trusted (:func:`weights_problem`).

Before a store is opened, its first 100 bytes (the SQLite header) must say three things: an
SQLite database, written by toylab (``PRAGMA application_id``), and not shorter than its own
page count. Anything else is refused with one line, and nothing in it is touched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import safetensors.numpy

from toylab.errors import StoreError
from toylab.io import atomic_write, nearest_creatable_folder

__all__ = ["APPLICATION_ID", "check_store_file", "check_creatable", "default_path", "arrays_folder",
           "WeightFile", "DamagedWeightFile", "write_arrays", "read_arrays", "weights_problem"]

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


def check_creatable(path: Path) -> None:
    """Refuse, before anything is written, a new store at ``path`` that could not be created.

    Raises:
      StoreError: ``path`` is a directory, its weight folder ``PATH-arrays`` is a file or holds
        files already, or no file can be created where ``path`` would go (a folder on the way
        is a file, or is read-only, or is not a real folder, as in ``/proc``).
    """
    check_store_file(path)
    folder = arrays_folder(path)
    if folder.exists() and not folder.is_dir():
        raise StoreError(f"{folder} is a file, but the store {path} keeps its weight files in a "
                          "folder of that name; move the file away or give another --store")
    if folder.exists() and any(folder.iterdir()):
        raise StoreError(f"{folder} already holds files but {path} does not exist; move them "
                          "away or give another --store")
    try:
        nearest_creatable_folder(path.parent)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create a store there ({exc.filename}: "
                          f"{exc.strerror or exc}); give another --store") from None


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


@dataclasses.dataclass(frozen=True)
class WeightFile:
    """A weight file as written: its name in the weight folder, size and SHA-256 (hex)."""

    name: str
    size: int
    sha256: str


def write_arrays(folder: Path, run: int, arrays: Mapping[str, np.ndarray]) -> WeightFile:
    """Write one run's weights atomically (temporary file, fsync, rename)."""
    name = arrays_file(run)
    data = safetensors.numpy.save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    atomic_write(folder / name, lambda file: file.write(data))
    return WeightFile(name, len(data), hashlib.sha256(data).hexdigest())


def read_arrays(folder: Path, name: str, size: int | None = None, sha256: str | None = None
                ) -> dict[str, np.ndarray]:
    """One run's weights, by the name :func:`write_arrays` gave them, checked against the
    ``size`` and ``sha256`` recorded then (without them, only the file's own structure).

    Raises:
      DamagedWeightFile: the file is missing or damaged; the message says which.
    """
    data, problem = _read(folder / name, size, sha256)
    if problem is None:
        try:
            return safetensors.numpy.load(data)
        except Exception as exc:  # safetensors raises its own SafetensorError, not an OSError
            problem = f"damaged (unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    raise DamagedWeightFile(name, problem)


def weights_problem(folder: Path, name: str, size: int | None, sha256: str | None) -> str | None:
    """What is wrong with a weight file (``"missing"``, ``"damaged (checksum mismatch)"``, ...),
    or None when it is the file that was written.

    With a recorded ``sha256`` the bytes are hashed (no parsing); a file recorded before
    checksums (``sha256`` None: a store of schema 1) is parsed instead, which finds a missing,
    truncated or garbled file but not a changed number.
    """
    data, problem = _read(folder / name, size, sha256)
    if problem is None and sha256 is None:
        try:
            safetensors.numpy.load(data)
        except Exception as exc:
            problem = f"damaged (unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return problem


class DamagedWeightFile(StoreError):
    """A weight file that is missing or not the one the store recorded."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"weight file {name} is {problem}")
        self.name, self.problem = name, problem


def _read(path: Path, size: int | None, sha256: str | None) -> tuple[bytes, str | None]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b"", "missing"
    except OSError as exc:
        return b"", f"unreadable ({exc.strerror or exc})"
    if size is not None and len(data) != size:
        return data, f"damaged ({len(data)} bytes, {size} written)"
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        return data, "damaged (checksum mismatch)"
    return data, None
