"""SIGKILL a sweep at 20 moments, resume after each: the store ends as an uninterrupted sweep's.

Each kill needs a new process, and a process that imports toylab.sweeps (JAX) spends ~5 s of
CPU on imports before it does anything (2 busy cores): with every victim a real sweep, this
test passes too, but takes 130 s. Most victims are therefore ``replay`` coordinators
(tests/killable_sweep.py): the runner's store calls, in its order, with a real sweep's
outcomes standing in for training, in a process that imports only toylab.store (~0.5 s). In
two of the four rounds the victim aimed at a chunk in training is a real ``toylab.sweeps.run``
training with JAX, and every round is finished by the real runner in this process, which
resumes whatever the kills left and trains the rest. Victims are started ahead of need, so
their imports overlap the work before them.

Moments are drawn with a seeded generator: a kind (start-up before the store exists, creating
the store, a chunk in training, a weight file being written, the chunk's transaction), which
occurrence of it in the work left, and whether the victim waits there for the kill (it lands
exactly there) or runs on and is killed after a random delay of up to 5 ms (it lands wherever
the victim got to, inside SQLite's commit included). Where each kill landed is the victim's last
event, printed with the state of the store it left (``pytest -s``).
"""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import jax
import numpy as np
import pytest

from killable_sweep import kind_of
from test_sweep import store_rows, write_spec

import toylab
from toylab import sweeps

VICTIM = Path(__file__).parent / "killable_sweep.py"
CHUNKS = 4  # 4 grid points × 2 seeds, 2 runs a chunk
ROUNDS, KILLS_PER_ROUND = 4, 5
JAX_ROUNDS = (1, 3)  # the rounds whose chunk kill is aimed at a real sweep, training with JAX


class Victims:
    """Victim processes, started ahead of need so that their imports overlap other work."""

    AHEAD = {"replay": 2, "sweep": 1}

    def __init__(self, spec: Path, reference: Path, modes: list[str]):
        self._spec, self._reference = spec, reference
        self._env = {**os.environ, "PYTHONPATH": str(Path(toylab.__file__).parent.parent),
                     "TOYLAB_TEST_JAX_CACHE": str(jax.config.jax_compilation_cache_dir)}
        self._unstarted = Counter(modes)  # victims still to start, by mode
        self._spares: dict[str, list[subprocess.Popen]] = {mode: [] for mode in self._unstarted}

    def start(self) -> None:
        """Start the spares: as many of each mode as AHEAD says, or as are still needed."""
        for mode, spares in self._spares.items():
            while len(spares) < self.AHEAD[mode] and self._unstarted[mode]:
                self._unstarted[mode] -= 1
                spares.append(subprocess.Popen(
                    [sys.executable, str(VICTIM), mode, str(self._spec), str(self._reference)], env=self._env,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))

    def run(self, mode: str, store: Path, target: str, wait: str, delay: float = 0.0) -> list[str]:
        """Aim a victim at ``target`` on ``store``, SIGKILL it there; its events, in order."""
        process = self._spares[mode].pop(0)
        self.start()
        watchdog = threading.Timer(120, process.kill)  # a victim that hangs must not hang the test
        watchdog.start()
        try:
            assert process.stdout.readline().strip() == "ready", process.stderr.read()
            process.stdin.write(f"go {store} {target} {wait}\n")
            process.stdin.flush()
            events = []
            for line in process.stdout:
                events.append(line.strip())
                if events[-1] == "paused":  # let it run on, and kill it `delay` later
                    process.stdin.write("on\n")
                    process.stdin.flush()
                    time.sleep(delay)
                    break
                if events[-1] in ("blocked", "finished"):
                    break
            process.send_signal(signal.SIGKILL)
            rest = process.stdout.read().splitlines()  # what it did between the decision and its death
        finally:
            watchdog.cancel()
        stderr = process.stderr.read()
        assert process.wait() == -signal.SIGKILL, stderr
        return [e for e in [*events, *rest] if e not in ("blocked", "paused")]

    def close(self) -> None:
        for spares in self._spares.values():
            for process in spares:
                process.kill()
                process.wait()


def unfinished_chunks(store: Path) -> int:
    if not store.exists():
        return CHUNKS
    with contextlib.closing(sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)) as db, db:
        return db.execute("SELECT COUNT(DISTINCT chunk) FROM runs WHERE status != 'done'").fetchone()[0]


def observe(store: Path) -> str:
    """What a kill left: runs by status, weight files (temporary ones apart), other files."""
    others = sorted(p.name.replace(store.name, "S") for p in store.parent.iterdir()
                    if p.name not in (store.name, f"{store.name}-arrays"))
    if not store.exists():
        return f"no store, {others}"
    with contextlib.closing(sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)) as db, db:
        status = dict(db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"))
    weights = [p.name for p in Path(f"{store}-arrays").iterdir()]
    temporary = sum(name.startswith(".") for name in weights)
    return f"{status}, {len(weights) - temporary} weight files + {temporary} temporary, {others}"


def landing(events: list[str]) -> str:
    last = events[-1]
    return {"start": "start-up, no store yet", "create": "creating the store", "chunk": "mid-chunk",
            "write": "writing a weight file", "commit": "in the chunk's transaction"}.get(
        kind_of(last), "after the sweep ended" if last == "finished" else last)


@pytest.mark.slow
def test_sigkill_at_20_moments_then_resume_equals_an_uninterrupted_sweep(tmp_path):
    tic = time.perf_counter()
    spec = write_spec(tmp_path, probabilities=(0.05, 0.2, 0.5, 1.0), steps=50)
    rng = np.random.default_rng(0)
    plan = []  # per round: (kind, wait, mode) of each kill
    for round_ in range(ROUNDS):
        kinds = ["start" if round_ % 2 == 0 else "create",
                 *rng.permutation(["chunk", "write", "commit", rng.choice(["chunk", "write", "commit"])])]
        jax_victim = kinds.index("chunk") if round_ in JAX_ROUNDS else -1
        plan.append([(str(kind), str(rng.choice(["block", "run"])), "sweep" if i == jax_victim else "replay")
                     for i, kind in enumerate(kinds)])
    reference = tmp_path / "reference.sqlite"
    victims = Victims(spec, reference, ["replay"] + [mode for kills in plan for *_, mode in kills])
    kills = []
    try:
        sweeps.run(spec, store=reference, chunk_size=2, progress=False)
        victims.start()  # after the reference: their imports would slow its training down
        # A replay run to its end: the events of a whole sweep, and the same store as training.
        dry = tmp_path / "dry" / "s.sqlite"
        dry.parent.mkdir()
        events = victims.run("replay", dry, "-", "run")
        assert store_rows(dry) == store_rows(reference)
        counts = Counter(kind_of(e) for e in events)
        per_chunk = {kind: counts[kind] // CHUNKS for kind in ("chunk", "write", "commit")}
        assert all(counts[kind] == CHUNKS * n > 0 for kind, n in per_chunk.items()) and counts["create"], counts

        for round_, round_kills in enumerate(plan):
            store = tmp_path / f"round{round_}" / "s.sqlite"
            store.parent.mkdir()
            for kind, wait, mode in round_kills:
                left = unfinished_chunks(store)
                if kind in ("start", "create"):
                    count = 1 if kind == "start" else int(rng.integers(1, counts["create"] + 1))
                else:  # among the next half of the chunks left, so that the round has work for 5 kills
                    count = int(rng.integers(1, -(-left // 2) * per_chunk[kind] + 1)) if left else 0
                target = f"{kind}:{count}" if count else "-"  # nothing left to train: killed after the end
                events = victims.run(mode, store, target, wait, delay=float(rng.uniform(0, 0.005)))
                kills.append((round_, mode, target, wait, landing(events), events[-1], observe(store)))
                if wait == "block" and count:  # it waited at the target for the kill
                    assert kind_of(events[-1]) == kind, (target, events[-3:])
            # The real runner resumes what the round's kills left, and trains the rest.
            summary = sweeps.run(spec, store=store, chunk_size=2, progress=False)
            assert (summary.done, summary.unfinished, summary.repaired) == (8, 0, 0)
            # Nothing left of the kills: no -wal, -shm, temporary store or weight file (before a
            # reader's connection, which leaves an empty -wal and -shm behind).
            assert sorted(p.name for p in store.parent.iterdir()) == ["s.sqlite", "s.sqlite-arrays"]
            assert store_rows(store) == store_rows(reference)
    finally:
        victims.close()
        print(f"\n{len(kills)} kills in {time.perf_counter() - tic:.1f} s")
        for round_, mode, target, wait, where, last, state in kills:
            print(f"round {round_} {mode:6} aimed at {target:9} ({wait:5}): {where:27} [{last}] → {state}")
        print(dict(Counter(where for *_, where, _, _ in kills)))
    assert len(kills) == ROUNDS * KILLS_PER_ROUND
