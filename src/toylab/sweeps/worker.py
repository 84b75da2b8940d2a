"""Train one chunk: one vectorized ``train`` call, its results turned into rows for the store.

This is all a worker does, in whatever process runs it (the coordinator itself for the local
backend, a Ray worker otherwise). It reads and writes no files: plain data in, plain data out,
and the coordinator alone writes the store.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from toylab.io import json_safe
from toylab.store.db import RunOutcome, StoredRun
from toylab.sweeps import registry
from toylab.tasks.base import Task
from toylab.train import TrainConfig, TrainResult, train

__all__ = ["ChunkJob", "make_job", "train_chunk", "flat_params", "leaf_name"]


@dataclasses.dataclass(frozen=True)
class ChunkJob:
    """A rectangle of runs, configs × seed indices, that trains as one ``train`` call."""

    chunk: int
    task: str
    task_params: dict[str, Any]
    train: dict[str, Any]  # TrainConfig fields
    seed: int  # the spec's base seed
    configs: list[dict[str, Any]]
    seeds: list[int]
    runs: list[int]  # run ids, config-major: runs[c · len(seeds) + s], the trainer's order
    # The coordinator's factory for `task`: a Ray worker has not seen the coordinator's
    # registrations (a task registered in a script) nor, perhaps, the user's task file, so
    # the job carries it (a file's factory as its source: registry.TaskFile).
    factory: Callable[..., Task] | None = None

    @property
    def size(self) -> int:
        return len(self.runs)


def make_job(chunk: int, runs: Sequence[StoredRun], *, task: str, seed: int,
             factory: Callable[..., Task] | None = None) -> ChunkJob:
    """The job for a chunk's stored runs, which the planner made a configs × seeds rectangle."""
    configs: dict[str, dict[str, Any]] = {}
    for run in runs:
        configs.setdefault(run.cell, run.config)
    seeds = sorted({run.seed for run in runs})
    by_position = {(run.cell, run.seed): run.id for run in runs}
    if len(by_position) != len(configs) * len(seeds):
        raise RuntimeError(f"chunk {chunk} is not a configs × seeds rectangle; the store is inconsistent")
    return ChunkJob(
        chunk=chunk, task=task, task_params=runs[0].task_params, train=runs[0].train, seed=seed,
        configs=list(configs.values()), seeds=seeds,
        runs=[by_position[cell, s] for cell in configs for s in seeds],
        factory=factory or registry.task_factory(task))


def train_chunk(job: ChunkJob, on_steps: Callable[[int], None] | None = None) -> list[RunOutcome]:
    """Train every run of ``job`` side by side; one outcome per run, in ``job.runs`` order.

    ``on_steps(steps_done)`` is called as training advances (the local backend's progress).
    """
    _use_compilation_cache()
    task = registry.build_task(job.task, job.task_params, job.factory)
    result = train(task, job.configs, seeds=job.seeds, seed=job.seed,
                   config=TrainConfig(**job.train), progress=on_steps or False)
    return [_outcome(result, index, run) for index, run in enumerate(job.runs)]


def flat_params(params: Any) -> dict[str, np.ndarray]:
    """A parameter pytree as ``{"W": ..., "factors/0": ...}``: names a weight file can hold."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    return {leaf_name(path): np.asarray(leaf) for path, leaf in leaves}


def leaf_name(path: Sequence[Any]) -> str:
    """The name :func:`flat_params` gives the leaf at a pytree ``path``: ``"factors/0"``."""
    return "/".join(_key_name(key) for key in path)


def _key_name(key: Any) -> str:
    for attribute in ("key", "idx", "name"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def _outcome(result: TrainResult, index: int, run: int) -> RunOutcome:
    losses = result.history("loss")[:, index]  # (evaluations,)
    arrays = flat_params(result.instance_params(index))
    finite = np.isfinite(losses)
    weights_finite = all(np.isfinite(a).all() for a in arrays.values())
    rows = [_evaluation_row(e, index) for e in result.evaluations]
    if finite.all() and weights_finite:
        final = rows[-1]
        metrics = {k: v for k, v in final["raw"].items() if k != "loss"}
        metrics.update({f"elicited_{k}": v for k, v in final["elicited"].items()})
        return RunOutcome(run, "done", final["raw"]["loss"], metrics, None, rows, arrays)
    # Diverged: keep the history up to the first non-finite loss; the weights are meaningless.
    first_bad = int(np.argmin(finite)) if not finite.all() else len(rows) - 1
    return RunOutcome(run, "diverged", None, None, rows[first_bad]["step"],
                      rows[:first_bad] if not finite.all() else rows, None)


def _evaluation_row(evaluation, index: int) -> dict[str, Any]:
    def pick(metrics: dict[str, np.ndarray]) -> dict[str, Any]:
        return json_safe({name: np.asarray(values[index]).tolist() for name, values in metrics.items()})

    return {"step": evaluation.step, "trigger": evaluation.trigger, "flops": evaluation.flops,
            "compute": evaluation.compute, "wall_time": evaluation.wall_time,
            "raw": pick(evaluation.raw), "elicited": pick(evaluation.elicited)}


def _use_compilation_cache() -> None:
    # A worker process compiles the same programs as the last one did: keep them on disk,
    # where the CLI keeps its own (unless the process already chose a cache).
    if jax.config.jax_compilation_cache_dir is None:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        jax.config.update("jax_compilation_cache_dir", str(root / "toylab" / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
