"""The store's database: schema, and every write a sweep makes (from one process only).

Tables (SQLite, WAL journal so that readers such as :func:`toylab.load` never block the
writer)::

    meta         key, value                      format marker, schema version, and notes
                                                 (``note.<name>``: JSON that sweeps keeps)
    specs        version, digest, spec, created  every spec the store has run (extends add one)
    runs         id, key, cell, task_params, config, train, seed, chunk, status, attempts,
                 loss, metrics, diverged_step, error, arrays, arrays_size, arrays_sha256,
                 spec_version
    evaluations  run, step, trigger, flops, compute, wall_time, raw, elicited

A run's status is ``pending`` → ``running`` → ``done`` | ``diverged`` | ``failed``. A chunk's
runs finish in ONE transaction, after their weight files are on disk: a kill at any moment
leaves each chunk either finished with its weights, or unfinished (and retrained on resume).

The database records each weight file's size and SHA-256. A file deleted, truncated or
overwritten after its run finished is found by :meth:`Store.weight_file_problems` (a sweep asks
before it resumes) and its run goes back to ``pending`` (:meth:`Store.reset_runs`) to be
trained again. Schema 1 (before checksums) is migrated when a sweep opens the store: the two
columns are added empty, and each old file is parsed (a missing, truncated or garbled file is
found; a changed number is not) and, when sound, gets its size and checksum recorded then.

One writer: :meth:`Store.open` takes an exclusive ``flock`` on the database file for as long as
the store is open, so a second sweep on the same store is refused instead of racing the first.
A killed writer leaves nothing that blocks the next: the kernel drops its ``flock`` with the
process, SQLite recovers the ``-wal`` it left (an unfinished transaction is discarded), and its
half-written temporary files (a weight file, a store being created) are removed on the next open
or create.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from toylab.errors import StoreError
from toylab.store.files import (APPLICATION_ID, arrays_folder, check_creatable, check_store_file, weights_problem,
                                write_arrays)

__all__ = ["Store", "StoredRun", "RunOutcome", "SCHEMA_VERSION", "FORMAT", "UNFINISHED", "connect_readonly"]

FORMAT = "toylab sweep store"
SCHEMA_VERSION = 2
READABLE_SCHEMAS = ("1", "2")  # 1: no weight-file checksums; migrated to 2 by Store.open
STATUSES = ("pending", "running", "done", "diverged", "failed")
UNFINISHED = ("pending", "running", "failed")
NOTE = "note."  # prefix of the meta keys that hold notes (Store.set_note)

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE specs (
    version INTEGER PRIMARY KEY,
    digest  TEXT NOT NULL,
    spec    TEXT NOT NULL,              -- canonical JSON (toylab.sweeps.SweepSpec.canonical)
    created REAL NOT NULL
);
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,  -- in the order runs were added
    key           TEXT NOT NULL UNIQUE, -- hash of everything that determines the result
    cell          TEXT NOT NULL,        -- canonical JSON of the grid point
    task_params   TEXT NOT NULL,
    config        TEXT NOT NULL,        -- the per-instance config given to the trainer
    train         TEXT NOT NULL,        -- TrainConfig, every field
    seed          INTEGER NOT NULL,     -- seed index
    chunk         INTEGER NOT NULL,     -- fixed when the run is added: resumes redo it alike
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN {STATUSES}),
    attempts      INTEGER NOT NULL DEFAULT 0,
    loss          REAL,                 -- final raw loss (NULL unless done)
    metrics       TEXT,                 -- final metrics, JSON (elicited ones prefixed)
    diverged_step INTEGER,              -- first evaluation with a non-finite loss
    error         TEXT,                 -- why a run failed
    arrays        TEXT,                 -- weight file in PATH-arrays/ (done runs only)
    arrays_size   INTEGER,              -- its size in bytes, as written
    arrays_sha256 TEXT,                 -- SHA-256 of its bytes, hex, as written
    spec_version  INTEGER NOT NULL REFERENCES specs(version)
);
CREATE INDEX runs_by_chunk ON runs(chunk);
CREATE TABLE evaluations (
    run       INTEGER NOT NULL REFERENCES runs(id),
    step      INTEGER NOT NULL,
    trigger   TEXT NOT NULL,
    flops     REAL NOT NULL,
    compute   REAL NOT NULL,
    wall_time REAL NOT NULL,
    raw       TEXT NOT NULL,            -- JSON metric -> value (lists for array metrics)
    elicited  TEXT NOT NULL,            -- JSON, {{}} when elicitation is off
    PRIMARY KEY (run, step)
);
"""


@dataclasses.dataclass(frozen=True)
class StoredRun:
    """A run as the store holds it (what a worker needs to train it)."""

    id: int
    key: str
    cell: str
    task_params: dict[str, Any]
    config: dict[str, Any]
    train: dict[str, Any]
    seed: int
    chunk: int
    status: str


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What training one run produced, ready to be written."""

    run: int
    status: str  # done or diverged
    loss: float | None
    metrics: dict[str, Any] | None
    diverged_step: int | None
    evaluations: list[dict[str, Any]]  # step, trigger, flops, compute, wall_time, raw, elicited
    arrays: dict[str, Any] | None  # name -> numpy array; None for a diverged run


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to a checked store (for loading while a sweep may be writing)."""
    check_store(path)
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def check_store(path: Path) -> None:
    """Refuse ``path`` unless it is an existing, undamaged toylab store of this schema."""
    check_store_file(path)
    if not path.exists():
        raise StoreError(f"{path}: no such store")
    # Without a -wal file, "immutable" reads the file as it is and creates nothing beside it
    # (no -wal, no -shm), so a damaged file is refused exactly as it was found. With one (a
    # killed writer's), the pages it holds are part of the store and must be read with it.
    mode = "mode=ro" if Path(f"{path}-wal").exists() else "immutable=1"
    _check_schema(sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True), path)


def _check_schema(connection: sqlite3.Connection, path: Path) -> None:
    """Integrity and toylab's marker rows; closes ``connection``."""
    try:
        if (result := connection.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
            raise sqlite3.DatabaseError(result)
        meta = dict(connection.execute("SELECT key, value FROM meta"))
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise StoreError(f"{path} is a damaged toylab store ({exc}); nothing in it was changed") from None
    connection.close()
    if meta.get("format") != FORMAT or meta.get("schema") not in READABLE_SCHEMAS:
        raise StoreError(f"{path} has format {meta.get('format')!r} schema {meta.get('schema')!r}; "
                          f"this toylab reads {FORMAT!r} schema {' or '.join(READABLE_SCHEMAS)}")


class Store:
    """An open store, locked for writing by this process. Use :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, connection: sqlite3.Connection, lock_fd: int):
        self.path = path
        self.arrays = arrays_folder(path)
        self.created = False  # by this object's create(): discard() may remove it
        self._made: list[Path] = []  # the folders create() made for it, innermost first
        self._db = connection
        self._lock_fd = lock_fd

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, spec: Mapping[str, Any], digest: str,
               runs: Iterable[tuple[Any, int]]) -> Store:
        """A new store at ``path`` holding ``spec`` and its ``runs`` (PlannedRun, chunk) pairs.

        Built under a temporary name and renamed into place, so a kill during creation leaves
        no half-made store that a rerun would refuse as damaged (the temporary file it leaves
        is removed by the next create). A store that cannot be created is refused in one line
        and leaves nothing behind, not even the folders made for it.
        """
        path = Path(path)
        check_creatable(path)
        made = [parent for parent in path.absolute().parents if not parent.exists()]
        tmp: str | None = None
        fd = -1
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove_abandoned_creations(path)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_CREATING)
            # Held until the store is open: tells a later create that this file is not abandoned.
            fcntl.flock(fd, fcntl.LOCK_EX)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the store from its group
            connection = sqlite3.connect(tmp, isolation_level=None)
            try:
                connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                connection.execute("PRAGMA journal_mode = WAL")
                with _transaction(connection):
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            connection.execute(statement)
                    connection.executemany("INSERT INTO meta VALUES (?, ?)",
                                           [("format", FORMAT), ("schema", str(SCHEMA_VERSION))])
                    _insert_spec_and_runs(connection, spec, digest, runs)
            finally:
                connection.close()
            if path.exists():  # created by someone else meanwhile: theirs wins, ours goes
                raise StoreError(f"{path} appeared while this sweep was creating it; rerun")
            os.replace(tmp, path)
            tmp = None
            arrays_folder(path).mkdir(exist_ok=True)
            store = cls._opened(path, fd)
            store.created, store._made = True, made
            return store
        except BaseException as exc:
            if fd >= 0:
                os.close(fd)
            if tmp is not None:
                _remove_database(Path(tmp))
            for folder in made:  # innermost first; only the empty folders this call made
                with contextlib.suppress(OSError):
                    folder.rmdir()
            if isinstance(exc, OSError):
                raise StoreError(f"{path}: cannot create the store ({exc.strerror or exc})") from None
            raise

    @classmethod
    def open(cls, path: str | Path) -> Store:
        """An existing store, checked (refused if foreign or damaged) and locked for writing.

        A store of schema 1 is migrated to schema 2 (see the module docstring).
        """
        path = Path(path)
        check_store(path)
        folder = arrays_folder(path)
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"{folder} is a file, but the store {path} keeps its weight files in a "
                              "folder of that name; move the file away")
        lock_fd = os.open(path, os.O_RDONLY)
        try:
            # flock, not SQLite's fcntl locks: it lives as long as this fd, and a killed
            # process releases it, so a crashed sweep never leaves the store locked.
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise StoreError(f"{path} is being written by another sweep; wait for it to finish") from None
        try:
            return cls._opened(path, lock_fd)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def _opened(cls, path: Path, lock_fd: int) -> Store:
        """The store at ``path``, whose ``flock`` ``lock_fd`` holds: connected, migrated, tidied."""
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a commit survives a killed process; a power cut may lose the
            # last commits, which only means retraining those chunks.
            connection.execute("PRAGMA synchronous = NORMAL")
            _migrate(connection)
            for stale in arrays_folder(path).glob(".run-*"):  # a killed writer's half-written file
                stale.unlink()
        except BaseException:
            connection.close()
            raise
        return cls(path, connection, lock_fd)

    def close(self) -> None:
        self._db.close()
        os.close(self._lock_fd)  # after the connection: closing an fd drops its locks

    def discard(self) -> None:
        """Close and delete a store that :meth:`create` made here and nothing was written into
        since: the database, its empty weight folder and the folders made for it.

        For a command that failed after creating its store: it leaves nothing behind.
        """
        if not self.created:
            raise StoreError(f"{self.path} was not created by this sweep; it is kept")
        self._db.close()
        _remove_database(self.path)  # still under the flock: no other sweep opens it meanwhile
        os.close(self._lock_fd)
        for folder in (self.arrays, *self._made):
            with contextlib.suppress(OSError):  # not empty: someone put files there; they stay
                folder.rmdir()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------

    def latest_spec(self) -> tuple[dict[str, Any], str]:
        """The canonical spec most recently run on this store, and its digest."""
        spec, digest = self._db.execute(
            "SELECT spec, digest FROM specs ORDER BY version DESC LIMIT 1").fetchone()
        return json.loads(spec), digest

    def run_keys(self) -> set[str]:
        return {key for (key,) in self._db.execute("SELECT key FROM runs")}

    def next_chunk(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(chunk) + 1, 0) FROM runs").fetchone()[0]

    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(self._db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"))
        return counts

    def unfinished_chunks(self) -> dict[int, list[StoredRun]]:
        """Every run of each chunk that has a run not done or diverged, by chunk.

        A chunk trains whole, whatever part of it is unfinished (its batch width is part of its
        results); :attr:`StoredRun.status` says which runs need writing (:data:`UNFINISHED`).
        A ``running`` run belongs to a killed process.
        """
        rows = self._db.execute(
            "SELECT id, key, cell, task_params, config, train, seed, chunk, status FROM runs "
            f"WHERE chunk IN (SELECT chunk FROM runs WHERE status IN {UNFINISHED}) ORDER BY chunk, id")
        chunks: dict[int, list[StoredRun]] = {}
        for id_, key, cell, task_params, config, train, seed, chunk, status in rows:
            chunks.setdefault(chunk, []).append(StoredRun(
                id_, key, cell, json.loads(task_params), json.loads(config), json.loads(train),
                seed, chunk, status))
        return chunks

    def weight_file_problems(self) -> list[tuple[int, str, str]]:
        """``(run, file name, problem)`` for each done run whose weight file is missing or is not
        the file that was written (size, SHA-256); ``problem`` is e.g. ``"missing"`` or
        ``"damaged (checksum mismatch)"``. Reads every done run's file.

        A file of schema 1 (no checksum recorded) that is sound gets its size and checksum
        recorded now, so that from here on it is checked like any other.
        """
        problems, recorded = [], []
        rows = self._db.execute("SELECT id, arrays, arrays_size, arrays_sha256 FROM runs "
                                "WHERE status = 'done' ORDER BY id").fetchall()
        for run, name, size, sha256 in rows:
            if (problem := weights_problem(self.arrays, name, size, sha256)) is not None:
                problems.append((run, name, problem))
            elif sha256 is None:
                data = (self.arrays / name).read_bytes()
                recorded.append((len(data), hashlib.sha256(data).hexdigest(), run))
        if recorded:
            with _transaction(self._db):
                self._db.executemany("UPDATE runs SET arrays_size = ?, arrays_sha256 = ? WHERE id = ?", recorded)
        return problems

    # -- writing -----------------------------------------------------------------------------

    def reset_runs(self, runs: Iterable[int]) -> None:
        """Make ``runs`` pending again, as if never trained: no evaluations, loss, metrics or
        weight file (``attempts`` keeps counting). Their chunk trains again on the next sweep."""
        ids = [(int(run),) for run in runs]
        with _transaction(self._db):
            self._db.executemany("DELETE FROM evaluations WHERE run = ?", ids)
            self._db.executemany(
                "UPDATE runs SET status = 'pending', loss = NULL, metrics = NULL, diverged_step = NULL, "
                "error = NULL, arrays = NULL, arrays_size = NULL, arrays_sha256 = NULL WHERE id = ?", ids)

    def extend(self, spec: Mapping[str, Any], digest: str, runs: Iterable[tuple[Any, int]]) -> None:
        """Record ``spec`` as the store's latest and add its new ``(PlannedRun, chunk)`` pairs."""
        with _transaction(self._db):
            _insert_spec_and_runs(self._db, spec, digest, runs)

    def set_note(self, name: str, value: Any) -> None:
        """Keep ``value`` (JSON-ready) as note ``name``; :attr:`SweepData.notes` reads it back.

        Notes are what the layers above want to find again with the results (where the
        sweep's task file was); the store stores them and gives them no meaning.
        """
        with _transaction(self._db):
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"{NOTE}{name}", _dumps(value)))

    def mark_running(self, chunk: int) -> None:
        with _transaction(self._db):
            self._db.execute("UPDATE runs SET status = 'running', attempts = attempts + 1, error = NULL "
                             "WHERE chunk = ? AND status IN ('pending', 'running', 'failed')", (chunk,))

    def finish_chunk(self, outcomes: list[RunOutcome]) -> None:
        """Write weight files, then mark the runs finished with their history in one transaction."""
        # 1. weights first: a kill after this leaves files of unfinished runs, which the
        #    retrain overwrites with the same bytes; never a finished run without its weights
        self.arrays.mkdir(exist_ok=True)
        files = {o.run: write_arrays(self.arrays, o.run, o.arrays) if o.arrays is not None else None
                 for o in outcomes}
        # 2. one transaction for every run of the chunk
        with _transaction(self._db):
            for o in outcomes:
                self._db.execute("DELETE FROM evaluations WHERE run = ?", (o.run,))
                self._db.executemany(
                    "INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(o.run, e["step"], e["trigger"], e["flops"], e["compute"], e["wall_time"],
                      _dumps(e["raw"]), _dumps(e["elicited"])) for e in o.evaluations])
                file = files[o.run]
                self._db.execute(
                    "UPDATE runs SET status = ?, loss = ?, metrics = ?, diverged_step = ?, arrays = ?, "
                    "arrays_size = ?, arrays_sha256 = ?, error = NULL WHERE id = ?",
                    (o.status, o.loss, None if o.metrics is None else _dumps(o.metrics), o.diverged_step,
                     file and file.name, file and file.size, file and file.sha256, o.run))

    def fail_chunk(self, chunk: int, message: str) -> None:
        """Mark a chunk's unfinished runs failed; a later sweep on the store retries them."""
        with _transaction(self._db):
            self._db.execute("UPDATE runs SET status = 'failed', error = ? WHERE chunk = ? "
                             "AND status IN ('pending', 'running', 'failed')", (message, chunk))


def _migrate(connection: sqlite3.Connection) -> None:
    """Bring an open store of an older schema to :data:`SCHEMA_VERSION`."""
    (schema,) = connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if schema == "1":
        with _transaction(connection):
            connection.execute("ALTER TABLE runs ADD COLUMN arrays_size INTEGER")
            connection.execute("ALTER TABLE runs ADD COLUMN arrays_sha256 TEXT")
            connection.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))


_CREATING = ".creating"  # suffix of a store being built (Store.create)


def _remove_abandoned_creations(path: Path) -> None:
    """Remove the temporary files of creations of ``path`` whose process died (SIGKILL).

    A living creator holds an ``flock`` on its file, so a file whose lock can be taken is
    abandoned; SQLite's ``-wal``/``-shm`` beside it go with it.
    """
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*{_CREATING}"):
        try:
            fd = os.open(candidate, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # another sweep is creating the same store right now
        else:
            _remove_database(candidate)
        finally:
            os.close(fd)


def _remove_database(path: Path) -> None:
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        name.unlink(missing_ok=True)


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _insert_spec_and_runs(connection: sqlite3.Connection, spec: Mapping[str, Any], digest: str,
                          runs: Iterable[tuple[Any, int]]) -> None:
    version = connection.execute(
        "INSERT INTO specs (digest, spec, created) VALUES (?, ?, ?)",
        (digest, _dumps(spec), time.time())).lastrowid
    connection.executemany(
        "INSERT INTO runs (key, cell, task_params, config, train, seed, chunk, spec_version) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(run.key, run.cell, _dumps(run.task_params), _dumps(run.config),
          _dumps(run.train.model_dump(mode="json")), run.seed, chunk, version) for run, chunk in runs])
