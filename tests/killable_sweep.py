"""A sweep coordinator to SIGKILL: run by tests/test_sweep_kills.py as a fresh process, never imported by one.

    python tests/killable_sweep.py MODE SPEC REFERENCE

MODE ``sweep`` is the real thing: ``toylab.sweeps.run`` training with JAX (about 5 s of CPU to
import). MODE ``replay`` imports only ``toylab.store`` (0.5 s): it drives the same store calls
in the runner's order (open or create, check weight files, then per unfinished chunk
``mark_running``, training, ``finish_chunk``), with the outcomes a real uninterrupted sweep
wrote into REFERENCE standing in for training. Both write the same bytes, so kills of either
resume into the same store.

Protocol, one line each: the process prints ``ready`` once imported, then reads
``go STORE TARGET WAIT`` on stdin, where TARGET is ``KIND:N`` (stop at the N-th event of that
kind) or ``-`` (run to the end) and WAIT is ``block`` (print ``blocked`` there and sleep until
killed) or ``run`` (print ``paused`` there, read a line, and carry on: the killer sends that
line and fires after a random delay, measured from there). It prints an event line at each
point where a kill leaves a different store: ``go``; each SQL statement that writes (BEGIN,
CREATE, INSERT, UPDATE, DELETE, COMMIT; rows of runs and evaluations, inserted many at a time,
apart), named by the store call it belongs to; a weight file half written (``write``) and each
rename (``rename``); the start of a chunk's training (``train``); and ``finished``, after which
it sleeps too (so that every victim dies by SIGKILL, whatever moment the killer drew).

The events are observed by patching this process only (test code, not toylab's): the store's
methods set the phase, ``sqlite3.connect`` adds a trace callback, ``os.replace`` and the store's
``atomic_write`` report themselves, and the local backend's ``train_chunk`` reports a chunk.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from types import SimpleNamespace

WRITES = ("BEGIN", "CREATE", "INSERT", "UPDATE", "DELETE", "COMMIT")


def kind_of(event: str) -> str | None:
    """The kind of an event line: ``"go"`` → start, a statement or the store's rename while
    creating → create, ``mark_running``'s statements and ``train`` → chunk, a weight file's
    half write or rename → write, ``finish_chunk``'s statements → commit."""
    phase, _, what = event.partition(" ")
    if event == "go":
        return "start"
    if phase == "create":
        return "create"
    if phase == "running" or event.startswith("train"):
        return "chunk"
    if phase == "finish":
        return "write" if what.startswith(("write", "rename")) else "commit"
    return None


class _Victim:
    def __init__(self, target: str, wait: str):
        kind, _, count = target.partition(":")
        self.kind, self.count, self.wait = kind, int(count or 0), wait
        self.phase = "start"
        self.seen: dict[str, int] = {}

    def emit(self, what: str) -> None:
        event = what if what in ("go", "finished") or what.startswith("train") else f"{self.phase} {what}"
        print(event, flush=True)
        kind = kind_of(event)
        if kind is None:
            return
        self.seen[kind] = self.seen.get(kind, 0) + 1
        if kind == self.kind and self.seen[kind] == self.count:
            if self.wait == "block":
                print("blocked", flush=True)
                time.sleep(3600)
            print("paused", flush=True)
            sys.stdin.readline()


def _instrument(victim: _Victim) -> None:
    from toylab.store import db, files

    for name, phase in (("create", "create"), ("open", "open"), ("mark_running", "running"),
                        ("finish_chunk", "finish"), ("reset_runs", "repair"), ("extend", "extend")):
        original = getattr(db.Store, name)

        def in_phase(*args, _original=original, _phase=phase, **kwargs):
            before, victim.phase = victim.phase, _phase
            try:
                return _original(*args, **kwargs)
            finally:
                victim.phase = before

        setattr(db.Store, name, functools.wraps(original)(in_phase))

    connect = sqlite3.connect

    def traced_connect(*args, **kwargs):
        connection = connect(*args, **kwargs)
        connection.set_trace_callback(lambda sql: victim.emit(f"sql {sql.split()[0]}") if _reported(sql) else None)
        return connection

    sqlite3.connect = traced_connect
    replace = os.replace

    def traced_replace(source, destination, **kwargs):
        victim.emit(f"rename {Path(destination).name}")
        return replace(source, destination, **kwargs)

    os.replace = traced_replace
    atomic_write = files.atomic_write

    def halves(path, write):
        buffer = io.BytesIO()
        write(buffer)
        data = buffer.getvalue()

        def in_two(file):
            file.write(data[: len(data) // 2])
            file.flush()  # on disk (in the page cache) when the kill comes: a torn temporary file
            victim.emit(f"write {path.name}")
            file.write(data[len(data) // 2:])

        return atomic_write(path, in_two)

    files.atomic_write = halves


def _reported(sql: str) -> bool:
    # Rows inserted many at a time (runs, evaluations) would make the count of events depend
    # on the number of evaluations; a kill among them is a kill before the statements after.
    sql = sql.lstrip().upper()
    return sql.startswith(WRITES) and not sql.startswith(("INSERT INTO RUNS", "INSERT INTO EVALUATIONS"))


def _replay(store: Path, reference: Path, victim: _Victim) -> None:
    """The runner's store calls, in its order, with REFERENCE's outcomes for training."""
    from toylab.store.db import UNFINISHED, RunOutcome, Store
    from toylab.store.files import arrays_folder, read_arrays

    with contextlib.closing(sqlite3.connect(f"{reference.resolve().as_uri()}?mode=ro", uri=True)) as ref, ref:
        spec, digest = ref.execute("SELECT spec, digest FROM specs ORDER BY version").fetchone()
        rows = ref.execute("SELECT id, key, cell, task_params, config, train, seed, chunk, status, loss, "
                           "metrics, diverged_step, arrays FROM runs ORDER BY id").fetchall()
        history: dict[int, list] = {}
        for run, step, trigger, flops, compute, wall_time, raw, elicited in ref.execute(
                "SELECT run, step, trigger, flops, compute, wall_time, raw, elicited FROM evaluations "
                "ORDER BY run, step"):
            history.setdefault(run, []).append(dict(step=step, trigger=trigger, flops=flops, compute=compute,
                                                    wall_time=wall_time, raw=json.loads(raw),
                                                    elicited=json.loads(elicited)))
    planned, outcomes = [], {}
    for run, key, cell, task_params, config, train, seed, chunk, status, loss, metrics, diverged_step, arrays in rows:
        train_config = json.loads(train)
        planned.append((SimpleNamespace(key=key, cell=cell, task_params=json.loads(task_params),
                                        config=json.loads(config), seed=seed,
                                        train=SimpleNamespace(model_dump=lambda mode, t=train_config: t)), chunk))
        outcomes[run] = RunOutcome(run, status, loss, None if metrics is None else json.loads(metrics),
                                   diverged_step, history.get(run, []),
                                   None if arrays is None else read_arrays(arrays_folder(reference), arrays))
    if store.exists():
        db = Store.open(store)
        if damaged := db.weight_file_problems():
            db.reset_runs(run for run, _, _ in damaged)
    else:
        db = Store.create(store, json.loads(spec), digest, planned)
    with db:
        for chunk, runs in db.unfinished_chunks().items():
            db.mark_running(chunk)
            victim.emit(f"train {chunk}")
            db.finish_chunk([outcomes[r.id] for r in runs if r.status in UNFINISHED])


def main() -> None:
    mode, spec, reference = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if mode == "sweep":
        import jax

        # The tests' compile cache (conftest), so that this process compiles nothing they did.
        jax.config.update("jax_compilation_cache_dir", os.environ["TOYLAB_TEST_JAX_CACHE"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        from toylab import sweeps
        from toylab.sweeps import backends
    else:
        import toylab.store.db  # noqa: F401  (what replay needs, imported before "ready")
    print("ready", flush=True)
    command, store, target, wait = sys.stdin.readline().split()
    assert command == "go", command
    victim = _Victim(target, wait)
    _instrument(victim)
    victim.emit("go")
    if mode == "sweep":
        train_chunk = backends.train_chunk

        def reported(job, *args, **kwargs):
            victim.emit(f"train {job.chunk}")
            return train_chunk(job, *args, **kwargs)

        backends.train_chunk = reported
        sweeps.run(spec, store=store, chunk_size=2, progress=False)
    else:
        _replay(Path(store), reference, victim)
    victim.phase = "start"
    victim.emit("finished")
    with contextlib.suppress(KeyboardInterrupt):
        time.sleep(3600)


if __name__ == "__main__":
    main()
