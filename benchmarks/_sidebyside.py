"""Shared machinery of the side-by-side benchmarks: time toylab's trainer, alternate rounds."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable


def trainer_steps_per_second(task, configs, *, seeds: int, steps: int, **train_config) -> tuple[float, float]:
    """(steps/s of ``toylab.train`` on this batch of instances, seconds until step 1 ended).

    Elicitation is off and the only evaluations are at steps 0 and 1 and at the end, so the
    rate between the step-1 evaluation and the end is the compiled loop's own, compile excluded.
    """
    from toylab.train import TrainConfig, train

    config = TrainConfig(steps=steps + 1, elicit_steps=0, compute_factor=1e12, **train_config)
    result = train(task, configs, seeds=seeds, config=config, progress=False)
    first, last = result.evaluations[1], result.evaluations[-1]
    assert (first.step, last.step) == (1, steps + 1)
    return steps / (last.wall_time - first.wall_time), first.wall_time


def compare(ours: Callable[[], tuple[float, float]], theirs: Callable[[], float], *,
            rounds: int, models: int, setting: str) -> None:
    """Alternate the two sides ``rounds`` times; print each round, the medians and the ratio."""
    import torch

    print(f"machine: {os.cpu_count()} cores; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)", flush=True)
    our_rates, their_rates, startups = [], [], []
    for round_ in range(rounds):
        rate, startup = ours()
        our_rates.append(rate), startups.append(startup)
        their_rates.append(theirs())
        print(f"round {round_ + 1}: toylab {rate * models:9.1f} model-steps/s, "
              f"reference {their_rates[-1] * models:9.1f} model-steps/s", flush=True)
    ours_median, theirs_median = statistics.median(our_rates), statistics.median(their_rates)
    print(f"\n{setting}")
    print(f"toylab (JAX, compiled loop): {ours_median * models:9.1f} model-steps/s "
          f"({ours_median:.3f} steps/s; start-up incl. compile {statistics.median(startups):.1f} s)")
    print(f"eager PyTorch reference:     {theirs_median * models:9.1f} model-steps/s "
          f"({theirs_median:.3f} steps/s)")
    print(f"ratio: {ours_median / theirs_median:.2f}×")
