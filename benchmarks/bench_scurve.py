"""Model-steps per second on the S-curve task: toylab's compiled trainer against eager PyTorch.

Command::

    make bench        # runs every benchmark; or: .venv/bin/python benchmarks/bench_scurve.py

Setting (issue 3): 64 seeds of a d = 100 target of rank 10, Z = A·B (two 100×100 components),
MSE, full-batch Adam (lr 1e-3). The reference is the same loop written eagerly in PyTorch, the
seeds a batch dimension (``torch.bmm``), ``loss.backward()`` and ``torch.optim.Adam`` every
step. Both sides alternate in this process on the same machine; figures are medians.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _sidebyside import compare, trainer_steps_per_second  # noqa: E402

SEEDS, D, RANK, LR, INIT_SCALE = 64, 100, 10, 1e-3, 1e-3


def toylab_steps_per_second(steps: int) -> tuple[float, float]:
    from toylab.tasks.lowrank import lowrank

    return trainer_steps_per_second(
        lowrank(D), [{"rank": RANK, "init_scale": INIT_SCALE}], seeds=SEEDS, steps=steps,
        optimizer="adam", lr=LR)


def reference_steps_per_second(steps: int, warmup_steps: int = 3) -> float:
    """The same training loop, eager PyTorch, seeds as the leading tensor dimension."""
    import torch

    from toylab.tasks.lowrank import target_matrix

    torch.manual_seed(0)
    target = torch.tensor(target_matrix(D, "mse", {"rank": RANK}), dtype=torch.float32)
    target = target.expand(SEEDS, D, D).contiguous()
    A = torch.nn.Parameter(INIT_SCALE * torch.randn(SEEDS, D, D))
    B = torch.nn.Parameter(INIT_SCALE * torch.randn(SEEDS, D, D))
    optimizer = torch.optim.Adam([A, B], lr=LR)

    def step():
        optimizer.zero_grad()
        loss = 0.5 * ((target - torch.bmm(A, B)) ** 2).sum()  # sum over seeds: independent grads
        loss.backward()
        optimizer.step()

    for _ in range(warmup_steps):
        step()
    tic = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    parser.add_argument("--toylab-steps", type=int, default=300)
    parser.add_argument("--reference-steps", type=int, default=300)
    args = parser.parse_args()
    compare(lambda: toylab_steps_per_second(args.toylab_steps),
            lambda: reference_steps_per_second(args.reference_steps),
            rounds=args.rounds, models=SEEDS,
            setting=f"{SEEDS} seeds, d={D}, rank {RANK}, two components, MSE, full-batch Adam")


if __name__ == "__main__":
    main()
