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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _sidebyside import compare, trainer_steps_per_second  # noqa: E402

N_INSTANCES, N_FEATURES, N_HIDDEN, BATCH, PROBABILITY = 1000, 20, 5, 1024, 0.1


def toylab_steps_per_second(steps: int) -> tuple[float, float]:
    from toylab.tasks import superposition

    return trainer_steps_per_second(
        superposition(N_FEATURES, N_HIDDEN), [{"feature_probability": PROBABILITY, "importance": 1.0}],
        seeds=N_INSTANCES, steps=steps, batch_size=BATCH)


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
    compare(lambda: toylab_steps_per_second(args.toylab_steps),
            lambda: reference_steps_per_second(args.reference_steps),
            rounds=args.rounds, models=N_INSTANCES,
            setting=f"{N_INSTANCES} instances, n={N_FEATURES}, m={N_HIDDEN}, batch {BATCH}, "
                    f"p={PROBABILITY}, AdamW")


if __name__ == "__main__":
    main()
