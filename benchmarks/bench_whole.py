"""What a user waits for: whole processes, start-up and compilation included, side by side.

Command::

    python benchmarks/bench_whole.py [--rounds R] [--instances N] [--steps S]
    python benchmarks/bench_whole.py --long

Setting (issue 13): ``toylab tms`` on 200 superposition instances (n = 20, m = 5, importance
0.9^i, feature probability 0.1, batch 1024, AdamW) for 200 steps, as a user types it: the CLI
from invocation to exit, its evaluations at every 4× of compute with elicitation (the default
budget), without (``--elicit-steps 0``), and as toylab ran before its counter-hash generator and
elicitation budget (``--rng threefry``, 100 refit steps at every evaluation after the first);
against the official notebook's eager PyTorch loop
(``torch_reference.train_reference``) as its own process, ``import torch`` included. The sides
alternate; each figure is the median of its rounds. The first toylab round also fills JAX's
persistent compilation cache, as a user's first run does; later rounds read it.

It also prints how much of this machine's matmul peak the compiled loop reaches (model FLOPs
from the task's ``flops_per_step`` over a 2048² float32 matmul's rate in JAX).

``--long`` times the issue's long run instead: ``toylab tms`` on 1000 instances for 2000 steps,
whole process, once. The eager loop would take most of an hour there (~620 model-steps/s on 2
cores), so it is timed as its own process at two shorter lengths and its whole-process time
at 2000 steps extrapolated on the line through them (start-up + steps × seconds per step); the
output says which figure is extrapolated.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
N_FEATURES, N_HIDDEN, IMPORTANCE, PROBABILITY, BATCH = 20, 5, 0.9, 0.1, 1024


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    tic = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})})
    return time.perf_counter() - tic


def toylab_command(instances: int, steps: int, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "toylab", "tms", "--n-features", str(N_FEATURES), "--n-hidden", str(N_HIDDEN),
            "--importance", str(IMPORTANCE), "--feature-probability", str(PROBABILITY),
            "--seeds", str(instances), "--steps", str(steps), "--batch", str(BATCH), "--json",
            "--out", str(out), "--overwrite", *extra]


def reference_command(instances: int, steps: int) -> list[str]:
    program = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import torch_reference; "
               f"torch_reference.train_reference({instances}, {N_FEATURES}, {N_HIDDEN}, {PROBABILITY}, "
               f"{IMPORTANCE}, {BATCH}, {steps})")
    return [sys.executable, "-c", program]


def matmul_peak() -> float:
    """GFLOP/s of a 2048 × 2048 float32 matmul in JAX on this machine (best of 5)."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((2048, 2048), jnp.float32)
    multiply = jax.jit(lambda x: x @ x)
    multiply(a).block_until_ready()
    best = min(_seconds(lambda: multiply(a).block_until_ready()) for _ in range(5))
    return 2 * 2048**3 / best / 1e9


def _seconds(call) -> float:
    tic = time.perf_counter()
    call()
    return time.perf_counter() - tic


def in_loop_gflops(instances: int) -> float:
    sys.path.insert(0, str(HERE))
    from _sidebyside import trainer_steps_per_second

    from toylab.tasks import superposition

    task = superposition(N_FEATURES, N_HIDDEN)
    rate, _ = trainer_steps_per_second(task, [{"feature_probability": PROBABILITY, "importance": IMPORTANCE}],
                                       seeds=instances, steps=40, batch_size=BATCH)
    return rate * instances * task.flops_per_step(BATCH) / 1e9


def long_run(instances: int = 1000, steps: int = 2000, eager_steps: tuple[int, int] = (20, 100)) -> None:
    print(f"machine: {os.cpu_count()} cores; {instances} instances × {steps} steps, n={N_FEATURES}, m={N_HIDDEN}, "
          f"batch {BATCH}, p={PROBABILITY}; whole processes", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        ours = timed(toylab_command(instances, steps, Path(folder) / "run"))
    print(f"toylab tms: {ours:.1f} s", flush=True)
    short, long = (timed(reference_command(instances, n)) for n in eager_steps)
    per_step = (long - short) / (eager_steps[1] - eager_steps[0])
    start_up = short - eager_steps[0] * per_step
    eager = start_up + steps * per_step
    print(f"eager PyTorch: {short:.1f} s at {eager_steps[0]} steps, {long:.1f} s at {eager_steps[1]} "
          f"({instances / per_step:.0f} model-steps/s, start-up {start_up:.1f} s); extrapolated to {steps} steps: "
          f"{eager:.0f} s")
    print(f"\ntoylab tms is {eager / ours:.1f}× the eager reference's whole process (the eager time extrapolated)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--long", action="store_true", help="the 1000 × 2000 run (eager side extrapolated)")
    args = parser.parse_args()
    if args.long:
        long_run()
        return
    # The last side is toylab as it was before the counter hash and the elicitation budget.
    sides = {"toylab tms": (), "toylab tms --elicit-steps 0": ("--elicit-steps", "0"),
             "toylab tms, threefry, 100 refits": ("--rng", "threefry", "--elicit-fraction", "1e9")}
    times: dict[str, list[float]] = {name: [] for name in [*sides, "eager PyTorch"]}
    print(f"machine: {os.cpu_count()} cores; {args.instances} instances × {args.steps} steps, n={N_FEATURES}, "
          f"m={N_HIDDEN}, batch {BATCH}, p={PROBABILITY}; whole processes", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for name, extra in sides.items():
                times[name].append(timed(toylab_command(args.instances, args.steps, Path(folder) / "run", *extra)))
            times["eager PyTorch"].append(timed(reference_command(args.instances, args.steps)))
            print(f"round {round_ + 1}: " + ", ".join(f"{name} {t[-1]:.1f} s" for name, t in times.items()),
                  flush=True)
    reference = statistics.median(times["eager PyTorch"])
    print()
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:30s} {median:6.1f} s   {reference / median:5.2f}× the eager reference")
    peak = matmul_peak()
    loop = in_loop_gflops(1000)
    print(f"\nmatmul peak (2048² float32, JAX): {peak:.0f} GFLOP/s; compiled loop, 1000 instances: "
          f"{loop:.1f} GFLOP/s of model FLOPs ({100 * loop / peak:.1f}% of the peak)")


if __name__ == "__main__":
    main()
