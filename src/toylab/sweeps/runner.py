"""Run a sweep into a store: plan, resume, dispatch chunks, write results (the one writer).

Algorithm:

1. expand the spec into runs (grid points × seed indices), each identified by a hash;
2. open the store: a new path gets every run, packed into chunks (``toylab.sweeps.chunks``);
   a store of the same spec is resumed; a store of another spec is refused, or with
   ``extend`` gets the runs it lacks in new chunks;
3. every chunk with a run not ``done`` or ``diverged`` is trained again, whole (``running``
   runs belong to a killed process, ``failed`` ones get another chance);
4. each finished chunk is written, weights first, then its rows in one transaction.
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
from toylab.store.db import Store
from toylab.sweeps.backends import BACKENDS, ChunkFailure, check_ray_address
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

    Raises:
      ConfigError: a bad spec or option.
      StoreError: a foreign or damaged store, or a store of another spec without ``extend``
        (nothing in the store is changed then).
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

    # -- 2. open or create the store, reconcile its spec with this one ----------------------
    if path.exists():
        db = Store.open(path)
        try:
            added = _reconcile(db, spec, planned, extend=extend, chunk_size=chunk_size)
        except BaseException:
            db.close()
            raise
    else:
        db = Store.create(path, spec.canonical(), spec.digest,
                          plan_chunks(planned, _chunk_sizer(spec, chunk_size)))
        added = len(planned)

    # -- 3./4. train unfinished chunks, write each as it finishes ---------------------------
    with db, _resumable(path):
        if isinstance(spec.task_factory, TaskFile):  # so that toylab.load can find it again
            db.set_note(TASK_FILE_NOTE, task_file_note(spec.task_factory, path))
        jobs = [make_job(chunk, runs, task=spec.task, seed=spec.seed, factory=spec.task_factory)
                for chunk, runs in db.unfinished_chunks().items()]
        counts = db.status_counts()
        total, finished_before = sum(counts.values()), counts["done"] + counts["diverged"]
        failures: list[str] = []
        with _SweepProgress(total, finished_before, len(jobs), enabled=progress) as bar:
            results = BACKENDS[backend](jobs, started=lambda job: db.mark_running(job.chunk),
                                        training=bar.training, address=address,
                                        max_attempts=max_attempts)
            for job, outcome in results:
                if isinstance(outcome, ChunkFailure):
                    db.fail_chunk(job.chunk, outcome.message)
                    failures.append(outcome.message)
                else:
                    db.finish_chunk(outcome)
                bar.advance(job.size)
        counts = db.status_counts()
    return SweepSummary(
        store=str(path), digest=spec.digest, backend=backend, runs=sum(counts.values()),
        done=counts["done"], diverged=counts["diverged"], failed=counts["failed"],
        unfinished=counts["pending"] + counts["running"], added=added,
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
               chunk_size: int | None) -> int:
    """Make the store hold ``spec``'s runs; returns how many runs were added."""
    held, digest = db.latest_spec()
    if digest == spec.digest:
        return 0
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
    db.extend(wanted, spec.digest, plan_chunks(new, _chunk_sizer(spec, chunk_size), db.next_chunk()))
    return len(new)


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

    def training(self, job, fraction: float) -> None:
        """The chunk in training is ``fraction`` done: its runs count that much (a chunk of
        hundreds of runs would otherwise hold the bar still until it ends)."""
        self._progress.update(self._task, completed=self._finished + fraction * job.size)

    def advance(self, runs: int) -> None:
        self._finished += runs
        self._progress.update(self._task, completed=self._finished)

    def __exit__(self, *exc) -> None:
        self._progress.stop()
