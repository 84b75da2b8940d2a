"""Model-steps per second: toylab's compiled JAX trainer against the eager PyTorch notebook.

Command::

    make bench        # installs the `bench` extra (CPU PyTorch), then runs this file

Setting (issue 2): 1000 superposition instances, n = 20 features, m = 5 hidden,
batch 1024, feature probability 0.1, AdamW (lr 1e-3, weight decay 0.01), a fresh batch every
step. Both sides run in this process on the same machine, alternating, so the ratio compares
like with like; each side's figure is the median of its rounds.

- toylab: :func:`toylab.train.train` with elicitation off and no evaluations between the
  first step and the end; its rate is measured between those two evaluations, so compilation
  is excluded (and reported apart).
- reference: ``benchmarks/torch_reference.py``, a faithful eager re-implementation of the
  official notebook's loop (instances as a tensor dimension), timed after warm-up steps.

Expected: toylab ≥ 3× the reference on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

N_INSTANCES, N_FEATURES, N_HIDDEN, BATCH, PROBABILITY = 1000, 20, 5, 1024, 0.1


def toylab_steps_per_second(steps: int) -> tuple[float, float]:
    """(steps/s of the trained batch, seconds spent before the first step finished)."""
    from toylab.tasks import superposition
    from toylab.train import TrainConfig, train

    config = TrainConfig(steps=steps + 1, batch_size=BATCH, elicit_steps=0, compute_factor=1e12)
    result = train(superposition(N_FEATURES, N_HIDDEN),
                   [{"feature_probability": PROBABILITY, "importance": 1.0}],
                   seeds=N_INSTANCES, config=config, progress=False)
    first, last = result.evaluations[1], result.evaluations[-1]  # after step 1, at the end
    assert (first.step, last.step) == (1, steps + 1)
    return steps / (last.wall_time - first.wall_time), first.wall_time


def reference_steps_per_second(steps: int) -> float:
    import torch_reference

    return torch_reference.steps_per_second(
        N_INSTANCES, N_FEATURES, N_HIDDEN, PROBABILITY, importance_ratio=1.0,
        batch_size=BATCH, steps=steps, warmup_steps=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per side")
    parser.add_argument("--toylab-steps", type=int, default=40)
    parser.add_argument("--reference-steps", type=int, default=12)
    args = parser.parse_args()

    import torch

    print(f"machine: {os.cpu_count()} cores; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)", flush=True)
    ours, theirs, startup = [], [], []
    for round_ in range(args.rounds):
        rate, seconds = toylab_steps_per_second(args.toylab_steps)
        ours.append(rate), startup.append(seconds)
        theirs.append(reference_steps_per_second(args.reference_steps))
        print(f"round {round_ + 1}: toylab {rate * N_INSTANCES:8.0f} model-steps/s, "
              f"reference {theirs[-1] * N_INSTANCES:8.0f} model-steps/s", flush=True)
    toylab_rate, reference_rate = statistics.median(ours), statistics.median(theirs)
    print(f"\n{N_INSTANCES} instances, n={N_FEATURES}, m={N_HIDDEN}, batch {BATCH}, "
          f"p={PROBABILITY}, AdamW")
    print(f"toylab (JAX, compiled loop): {toylab_rate * N_INSTANCES:8.0f} model-steps/s "
          f"({toylab_rate:.3f} steps/s; start-up incl. compile {statistics.median(startup):.1f} s)")
    print(f"eager PyTorch reference:     {reference_rate * N_INSTANCES:8.0f} model-steps/s "
          f"({reference_rate:.3f} steps/s)")
    print(f"ratio: {toylab_rate / reference_rate:.2f}×")


if __name__ == "__main__":
    main()
