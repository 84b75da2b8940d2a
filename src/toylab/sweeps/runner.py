"""Run a sweep into a store: plan, resume, dispatch chunks, write results (the one writer).

Algorithm:

1. expand the spec into runs (grid points × seed indices), each identified by a hash;
2. open the store, still reading only: a new path gets every run, packed into chunks
   (``toylab.sweeps.chunks``); a store of the same spec is resumed; a store of another spec is
   refused, or with ``extend`` gets the runs it lacks in new chunks; every done run's weight
   file is checked against the size and SHA-256 recorded when it was written;
3. connect the backend (Ray), then write: create or extend the store, and set the runs whose
   weight file is missing or damaged back to pending. A refused spec or an unreachable
   cluster leaves the store as it was, or no store;
4. every chunk with a run not ``done`` or ``diverged`` is trained again, whole (``running``
   runs belong to a killed process, ``failed`` ones get another chance), and only its
   unfinished runs are written;
5. each finished chunk is written, weights first, then its rows in one transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from toylab.errors import ConfigError, Interrupted, StoreError
from toylab.store.db import UNFINISHED, Store
from toylab.store.files import check_creatable
from toylab.sweeps.backends import BACKENDS, ChunkFailure, check_ray_address, connected
from toylab.sweeps.chunks import auto_chunk_size, plan_chunks
from toylab.sweeps.load import TASK_FILE_NOTE, task_file_note
from toylab.sweeps.registry import TaskFile
from toylab.sweeps.spec import PlannedRun, SweepSpec, extension_problems, load_spec, spec_changes
from toylab.sweeps.worker import make_job

__all__ = ["run", "SweepSummary", "as_spec"]


@dataclasses.dataclass(frozen=True)
class SweepSummary:
    """What a call to :func:`run` did and where the store stands afterwards."""

    store: str
    digest: str  # the spec's hash
    backend: str
    runs: int  # runs in the store
    done: int
    diverged: int
    failed: int
    unfinished: int  # pending or running: only after an interruption
    added: int  # runs this call added to the store
    repaired: int  # done runs whose weight file was missing or damaged: set back and retrained
    trained: int  # runs this call finished (done or diverged)
    chunks: int  # chunks this call trained
    seconds: float
    failures: list[str]  # one line per failed chunk

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def as_spec(spec: SweepSpec | Mapping[str, Any] | str | Path) -> SweepSpec:
    """A :class:`SweepSpec` from a spec, a mapping of its fields, or a TOML file path."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        return SweepSpec(**spec)
    return load_spec(spec)


def run(
    spec: SweepSpec | Mapping[str, Any] | str | Path,
    *,
    store: str | Path,
    backend: str = "local",
    address: str | None = None,
    extend: bool = False,
    chunk_size: int | None = None,
    max_attempts: int = 3,
    progress: bool | None = None,
) -> SweepSummary:
    """Train every run of ``spec`` not yet finished in ``store``; resume is the default.

    Args:
      spec: a :class:`SweepSpec`, a mapping of its fields, or a TOML file path.
      store: the SQLite file (created if missing); weights go to ``<store>-arrays/``.
      backend: ``"local"`` (this process) or ``"ray"`` (Ray workers; the ``ray`` extra).
      address: a Ray cluster to join (``ray.init(address=...)``); default: a local Ray.
      extend: let a store of an older spec take the grid values or seeds this spec adds.
      chunk_size: runs per vectorized chunk for runs added now (default: from memory).
      max_attempts: tries per chunk on Ray before its runs are marked ``failed``.
      progress: a bar over the sweep's runs on stderr; ``None`` shows it on a terminal.

    Returns:
      A :class:`SweepSummary`. Read results with :func:`toylab.load`.

    A done run whose weight file is missing or is not the file written (its size or SHA-256
    differ) is trained again, and one line on stderr names the files.

    Raises:
      ConfigError: a bad spec or option, or a Ray cluster that cannot be reached (before any
        store is created or changed).
      StoreError: a foreign or damaged store, a store of another spec without ``extend``
        (nothing in the store is changed then), or a store that cannot be created at ``store``
        (nothing is left behind).
      Interrupted: Ctrl-C while chunks train; the message names the store, which keeps every
        finished chunk and resumes when called again.
    """
    tic = time.perf_counter()
    spec = as_spec(spec)
    if backend not in BACKENDS:
        raise ConfigError(f"--backend={backend!r}: choose {' or '.join(BACKENDS)}")
    if address and backend != "ray":
        raise ConfigError(f"--address={address!r} needs --backend ray")
    if backend == "ray":
        check_ray_address(address)  # before the store is created: a typo leaves nothing behind
    if chunk_size is not None and chunk_size < 1:
        raise ConfigError(f"--chunk-size={chunk_size}: need at least 1 run per chunk")
    if max_attempts < 1:
        raise ConfigError(f"max_attempts={max_attempts}: need at least 1")
    path = Path(store)
    planned = spec.runs()

    # -- 2. open the store or make sure one can be created; read, write nothing --------------
    db: Store | None = None
    damaged: list[tuple[int, str, str]] = []
    if path.exists():
        db = Store.open(path)
        try:
            new_runs = _reconcile(db, spec, planned, extend=extend, chunk_size=chunk_size)
            damaged = db.weight_file_problems()
            counts = db.status_counts()
        except BaseException:
            db.close()
            raise
        work = bool(new_runs or damaged or sum(counts[status] for status in UNFINISHED))
    else:
        check_creatable(path)
        new_runs = plan_chunks(planned, _chunk_sizer(spec, chunk_size))
        work = bool(new_runs)

    # -- 3. the backend first, then the writes ---------------------------------------------
    trained_any = False
    try:
        with connected(backend if work else "local", address):
            if db is None:
                db = Store.create(path, spec.canonical(), spec.digest, new_runs)
                added = len(new_runs)
            else:
                added = 0
                if new_runs is not None:
                    db.extend(spec.canonical(), spec.digest, new_runs)
                    added = len(new_runs)
                if damaged:
                    db.reset_runs(run for run, _, _ in damaged)
                    files = ", ".join(f"{name}: {problem}" for _, name, problem in damaged[:3])
                    print(f"store {path}: {len(damaged)} runs had missing or damaged weight files "
                          f"({files}{', ...' if len(damaged) > 3 else ''}); retraining them", file=sys.stderr)

            # -- 4./5. train unfinished chunks, write each as it finishes -------------------
            with _resumable(path):
                if isinstance(spec.task_factory, TaskFile):  # so that toylab.load can find it again
                    db.set_note(TASK_FILE_NOTE, task_file_note(spec.task_factory, path))
                chunks = db.unfinished_chunks()
                todo = {chunk: {r.id for r in runs if r.status in UNFINISHED} for chunk, runs in chunks.items()}
                jobs = [make_job(chunk, runs, task=spec.task, seed=spec.seed, factory=spec.task_factory)
                        for chunk, runs in chunks.items()]
                counts = db.status_counts()
                total, finished_before = sum(counts.values()), counts["done"] + counts["diverged"]
                failures: list[str] = []
                with _SweepProgress(total, finished_before, len(jobs), enabled=progress) as bar:
                    results = BACKENDS[backend](
                        jobs, started=lambda job: db.mark_running(job.chunk), address=address,
                        training=lambda job, fraction: bar.training(len(todo[job.chunk]), fraction),
                        max_attempts=max_attempts)
                    for job, outcome in results:
                        trained_any = True
                        if isinstance(outcome, ChunkFailure):
                            db.fail_chunk(job.chunk, outcome.message)
                            failures.append(outcome.message)
                        else:
                            # The chunk trained whole; its runs that were finished stay as they are.
                            db.finish_chunk([o for o in outcome if o.run in todo[job.chunk]])
                        bar.advance(len(todo[job.chunk]))
                counts = db.status_counts()
    except Exception as exc:
        # A store this call created and never wrote a result into goes: the command failed
        # (a backend that broke before its first chunk), and a refused command leaves nothing.
        # Ctrl-C is no failure: its message names the store, which the same command resumes.
        if db is not None and db.created and not trained_any and not isinstance(exc, Interrupted):
            db.discard()
            db = None
        raise
    finally:
        if db is not None:
            db.close()
    return SweepSummary(
        store=str(path), digest=spec.digest, backend=backend, runs=sum(counts.values()),
        done=counts["done"], diverged=counts["diverged"], failed=counts["failed"],
        unfinished=counts["pending"] + counts["running"], added=added, repaired=len(damaged),
        trained=counts["done"] + counts["diverged"] - finished_before,
        chunks=len(jobs), seconds=time.perf_counter() - tic, failures=failures)


@contextlib.contextmanager
def _resumable(path: Path):
    """Ctrl-C becomes :class:`Interrupted`, naming the store. Nothing needs undoing: a chunk's
    rows land in one transaction, so the store holds whole chunks only, and the chunk cut
    short is trained again on the next call."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: finished runs are in {path}; rerun the same command "
                          "to resume") from None

def _reconcile(db: Store, spec: SweepSpec, planned: list[PlannedRun], *, extend: bool,
               chunk_size: int | None) -> list[tuple[PlannedRun, int]] | None:
    """What the store lacks of ``spec``: None when it holds this spec, else the ``(run, chunk)``
    pairs ``extend`` adds (perhaps none). Reads only."""
    held, digest = db.latest_spec()
    if digest == spec.digest:
        return None
    wanted = spec.canonical()
    changes = "; ".join(spec_changes(held, wanted)[:3]) or "spec"
    if not extend:
        raise StoreError(f"store {db.path} holds a different sweep ({changes}); use --extend "
                          "to add runs or a new store")
    if problems := extension_problems(held, wanted):
        raise ConfigError(f"--extend only adds grid values or seeds, but {'; '.join(problems[:3])} "
                          f"would change the runs in {db.path}; use a new store")
    known = db.run_keys()
    new = [run for run in planned if run.key not in known]
    return plan_chunks(new, _chunk_sizer(spec, chunk_size), db.next_chunk())


def _chunk_sizer(spec: SweepSpec, chunk_size: int | None):
    if chunk_size is not None:
        return lambda run: chunk_size

    def from_memory(run: PlannedRun) -> int:
        task = spec.build_task(run.task_params)
        return auto_chunk_size(task, run.config, run.train)

    return from_memory


class _SweepProgress:
    """Runs finished out of the sweep's runs, on stderr (a terminal only, unless forced)."""

    def __init__(self, total: int, finished: int, chunks: int, *, enabled: bool | None):
        enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress = Progress(
            TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
            disable=not enabled or chunks == 0)
        self._task = self._progress.add_task("sweep", total=total, completed=finished)
        self._finished = finished

    def __enter__(self) -> _SweepProgress:
        self._progress.start()
        return self

    def training(self, runs: int, fraction: float) -> None:
        """The chunk in training, which finishes ``runs`` runs, is ``fraction`` done: they count
        that much (a chunk of hundreds of runs would otherwise hold the bar still until it ends)."""
        self._progress.update(self._task, completed=self._finished + fraction * runs)

    def advance(self, runs: int) -> None:
        self._finished += runs
        self._progress.update(self._task, completed=self._finished)

    def __exit__(self, *exc) -> None:
        self._progress.stop()
