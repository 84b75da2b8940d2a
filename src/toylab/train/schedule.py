"""When to evaluate: every k× of compute or every interval, whichever comes first.

The rule comes from responsible-scaling evaluation policies: evaluate "after every 4× increase in
effective compute and after every fixed interval of time, whichever comes sooner, even during
training". Here both clocks restart at every evaluation, whatever fired it:

1. at step 0 (``init``), so every curve starts from the untrained model;
2. at the first step whose cumulative compute is at least ``k`` × the compute at the last
   evaluation (``compute``); the first milestone after ``init`` is one step, since k × 0 = 0
   would otherwise fire forever;
3. after ``every_steps`` steps or ``every_seconds`` of wall time since the last evaluation
   (``interval`` / ``time``), if given;
4. at the last step (``end``).

When several fire on the same step the trigger records all of them, joined by ``+``.
Compute is ``effective_compute = efficiency × FLOPs``; a constant efficiency multiplier scales
every milestone alike, so it changes the reported compute but not which steps fire.
"""

from __future__ import annotations

import math
from typing import NamedTuple

__all__ = ["EvalPoint", "next_evaluation", "planned_evaluations", "elicitation_steps"]


class EvalPoint(NamedTuple):
    step: int
    trigger: str


def next_evaluation(
    last_step: int,
    total_steps: int,
    *,
    compute_factor: float = 4.0,
    every_steps: int | None = None,
) -> EvalPoint | None:
    """The next step-determined evaluation after one at ``last_step`` (``None`` past the end).

    FLOPs per step are constant for a task, so "k× the compute" is "k× the steps".

    >>> next_evaluation(0, 100), next_evaluation(1, 100), next_evaluation(16, 100)
    (EvalPoint(step=1, trigger='compute'), EvalPoint(step=4, trigger='compute'), EvalPoint(step=64, trigger='compute'))
    >>> next_evaluation(64, 100, every_steps=30)
    EvalPoint(step=94, trigger='interval')
    >>> next_evaluation(94, 100)
    EvalPoint(step=100, trigger='end')
    """
    if last_step >= total_steps:
        return None
    # max(1, ·): the first milestone after step 0 is one step of compute. The small tolerance
    # keeps k=4 from landing on 4.000000001 × last_step through float rounding.
    candidates = {"compute": max(last_step + 1, math.ceil(compute_factor * last_step - 1e-9))}
    if every_steps is not None:
        candidates["interval"] = last_step + every_steps
    candidates["end"] = total_steps
    step = min(candidates.values())
    fired = [name for name, at in candidates.items() if at == step]
    return EvalPoint(step, "+".join(fired))


def planned_evaluations(
    total_steps: int, *, compute_factor: float = 4.0, every_steps: int | None = None
) -> list[EvalPoint]:
    """Every evaluation of a run without a wall-clock interval, in order, ``init`` first.

    >>> [p.step for p in planned_evaluations(100)]
    [0, 1, 4, 16, 64, 100]
    """
    points = [EvalPoint(0, "init")]
    while (point := next_evaluation(points[-1].step, total_steps,
                                    compute_factor=compute_factor, every_steps=every_steps)):
        points.append(point)
    return points


def elicitation_steps(elicit_steps: int, elicit_fraction: float | None, steps_since_previous: int) -> int:
    """Fine-tuning steps of the elicitation at an evaluation ``steps_since_previous`` steps after
    the one before it (0 at ``init``).

    ``min(elicit_steps, ⌈elicit_fraction × steps_since_previous⌉)``: an elicitation step costs
    about as much as a training step, so elicitation costs at most ``elicit_fraction`` of the
    training between evaluations; with the 4× schedule the early, closely spaced evaluations get
    a few steps and the late ones the full budget. ``elicit_fraction=None``: ``elicit_steps``
    always.

    >>> [elicitation_steps(100, 0.25, d) for d in (0, 1, 3, 12, 48, 136, 976)]
    [0, 1, 1, 3, 12, 34, 100]
    >>> elicitation_steps(100, None, 3)
    100
    """
    if elicit_fraction is None:
        return elicit_steps
    return min(elicit_steps, math.ceil(elicit_fraction * steps_since_previous - 1e-9))
