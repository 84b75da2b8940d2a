"""Why sweeps train in vectorized chunks: one sweep, three chunk sizes, side by side.

Command::

    make bench        # runs every benchmark; or: .venv/bin/python benchmarks/bench_sweep.py

Setting: the n = 2, m = 1 phase-diagram sweep (``toylab phase``), 8 × 8 cells × 2 seeds =
128 runs of 1000 steps at batch 1024, into a fresh store each time, with the runs packed into
one chunk of 128 (what the automatic size picks on any machine with a few GB), 16 chunks of 8,
and 128 chunks of 1 (one run per ``train`` call, as a loop over configs would do). Each size's
wall time covers everything the sweep does: compiling, training, evaluating and writing the
store. Sizes alternate over rounds; figures are medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

CHUNK_SIZES = (128, 8, 1)


def sweep_seconds(chunk_size: int, steps: int, folder: Path) -> float:
    from toylab import sweeps
    from toylab.experiments import phase

    spec = phase.sweep_spec(phase.preset("n2m1"), grid=8, seeds=2, steps=steps)
    store = folder / f"chunk{chunk_size}-{time.monotonic_ns()}.sqlite"
    tic = time.perf_counter()
    summary = sweeps.run(spec, store=store, chunk_size=chunk_size, progress=False)
    seconds = time.perf_counter() - tic
    assert summary.done == summary.runs == 128, summary
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    times: dict[int, list[float]] = {size: [] for size in CHUNK_SIZES}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for size in CHUNK_SIZES:
                times[size].append(sweep_seconds(size, args.steps, Path(folder)))
            print(f"round {round_ + 1}: " + ", ".join(
                f"chunks of {size}: {times[size][-1]:.1f} s" for size in CHUNK_SIZES), flush=True)
    best = statistics.median(times[CHUNK_SIZES[0]])
    print(f"\n128 runs × {args.steps} steps (n = 2, m = 1, batch 1024), whole sweep into a store:")
    for size in CHUNK_SIZES:
        median = statistics.median(times[size])
        print(f"chunks of {size:3d}: {median:6.1f} s  ({128 * args.steps / median:8.0f} model-steps/s; "
              f"{median / best:.1f}× the time of one chunk)")


if __name__ == "__main__":
    main()
