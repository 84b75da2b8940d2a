"""Reading a sweep back: the store's tables, plus the way back to its task and a TrainResult.

The store (:mod:`toylab.store`) reads runs, evaluations and weights and knows nothing of tasks;
this module rebuilds the task a sweep trained, the way the sweep found it, and stacks the runs
into one :class:`toylab.train.TrainResult`. ``toylab.load`` is :func:`load`.

Where a task file is looked for: a sweep records its task file's path twice in the store, as
it was (absolute) and relative to the store's folder. Reading it back tries the relative path
first, from wherever the store is now, then the absolute one: a project folder that holds the
store and the task file can move or be copied to another machine, and a store moved on its
own still finds the file where it was. The file's hash is recorded too: a file edited since
the sweep trained is used, with a warning.

Example::

    import toylab
    data = toylab.load("runs/tms.sqlite")   # a SweepResults: tables as DataFrames
    result = data.train_result()            # every run, as one train() call would return them
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from toylab import store
from toylab.errors import StoreError, TaskError
from toylab.store.load import EVALUATION_FIELDS, SweepData
from toylab.sweeps import registry
from toylab.sweeps.worker import leaf_name
from toylab.tasks.base import Task
from toylab.train import Evaluation, Instance, TrainConfig, TrainResult, parameter_shapes

__all__ = ["load", "SweepResults", "TASK_FILE_NOTE", "task_file_note"]

TASK_FILE_NOTE = "task_file"  # the store note that says where a sweep's task file was


def load(path: str | Path, *, arrays: bool = False) -> SweepResults:
    """Read the store at ``path`` (read-only; safe while a sweep is writing it).

    Args:
      path: the store's SQLite file.
      arrays: also read the weights of every done run into :attr:`SweepResults.arrays`.

    Raises:
      StoreError: no such file, or a file that is not a toylab store.
    """
    data = store.load(path, arrays=arrays)
    return SweepResults(**{field.name: getattr(data, field.name) for field in dataclasses.fields(data)})


@dataclasses.dataclass(frozen=True)
class SweepResults(SweepData):
    """A store's contents (:class:`toylab.store.SweepData`) and the task that produced them."""

    def task(self, task_params: dict[str, Any] | None = None) -> Task:
        """The sweep's task, rebuilt from its spec (and its recorded file, for a task file).

        Args:
          task_params: the factory's arguments; default: those of the first run.

        Raises:
          TaskError: the task's name, module or file cannot be found any more.
        """
        reference = self.spec["task"]
        if task_params is None:
            task_params = self.runs["task_params"].iloc[0] if len(self.runs) else self.spec["task_params"]
        factory = None
        if (file := registry.split_file_reference(reference)) is not None:
            factory = registry.task_factory(f"{self._task_file(reference)}:{file[1]}")
        return registry.build_task(reference, task_params, factory)

    def train_result(self, *, diverged: bool = False) -> TrainResult:
        """The whole sweep as one :class:`toylab.train.TrainResult`, as if one ``train`` call
        had trained every run: instances grid point by grid point, seeds inside, weights
        stacked, and the evaluation history from the store. Everything written for a
        ``TrainResult`` (summaries, figures) then works on a store.

        Args:
          diverged: keep diverged runs in their places, with NaN weights (the store keeps none
            for them) and the evaluations recorded before they diverged, NaN from there on, so
            that a summary flags them and reports every other run. By default they are refused.

        Raises:
          StoreError: a run is not done (failed or unfinished, or diverged unless ``diverged``:
            no weights), or the runs differ in task parameters or train settings (a sweep over
            ``train.*`` or ``task.*``), or the done runs were evaluated at different steps.
          TaskError: the sweep's task cannot be found any more (see the module docstring).
        """
        runs = self.runs.sort_values(["cell", "seed"])
        unfinished = runs[~runs["status"].isin({"done", "diverged"} if diverged else {"done"})]
        if len(unfinished):
            raise StoreError(f"{self.path}: {len(unfinished)} runs are not done "
                              f"({', '.join(sorted(set(unfinished['status'])))}); rerun the sweep first")
        for column in ("task_params", "train"):
            if len({json.dumps(value, sort_keys=True) for value in runs[column]}) > 1:
                raise StoreError(f"{self.path}: the runs differ in {column}; one TrainResult holds one setting")
        task = self.task(runs["task_params"].iloc[0])
        ids = [int(run) for run in runs["run"]]
        done = dict(zip(ids, runs["status"] == "done"))

        # Weights: the names flat_params gave each leaf, back into the task's own pytree.
        paths, treedef = jax.tree_util.tree_flatten_with_path(parameter_shapes(task, runs["config"].iloc[0]))

        def stacked_weights(path, shape) -> np.ndarray:
            return np.stack([self.weights(run)[leaf_name(path)] if done[run]
                             else np.full(shape.shape, np.nan, shape.dtype) for run in ids])

        params = jax.tree_util.tree_unflatten(treedef, [stacked_weights(path, shape) for path, shape in paths])

        # The evaluations were read by load(): one row per (run, step), metrics as columns. A
        # diverged run's rows stop at the step it diverged at.
        columns = [c for c in self.evaluations.columns if c not in EVALUATION_FIELDS]
        rows = self.evaluations[self.evaluations["run"].isin(ids)].set_index(["step", "run"]).sort_index()
        steps = {run: tuple(group.index.get_level_values("step")) for run, group in rows.groupby(level="run")}
        if len({steps.get(run, ()) for run in ids if done[run]}) > 1:
            raise StoreError(f"{self.path}: the runs were evaluated at different steps")

        evaluations = []
        for step, at_step in rows.groupby(level="step"):
            at_step = at_step.droplevel("step")
            first = at_step.iloc[0]

            def stacked(name: str) -> np.ndarray:
                blank = np.full(np.shape(first[name]), np.nan)
                return np.stack([np.asarray(at_step.at[run, name], dtype=float) if run in at_step.index else blank
                                 for run in ids])

            values = {name: stacked(name) for name in columns}
            evaluations.append(Evaluation(
                step=int(step), trigger=first["trigger"], flops=float(first["flops"]),
                compute=float(first["compute"]), wall_time=float(first["wall_time"]),
                raw={k: v for k, v in values.items() if not k.startswith("elicited_")},
                elicited={k.removeprefix("elicited_"): v for k, v in values.items() if k.startswith("elicited_")}))
        return TrainResult(task=task, config=TrainConfig(**runs["train"].iloc[0]),
                           instances=[Instance(config=c, seed=int(s)) for c, s in zip(runs["config"], runs["seed"])],
                           params=params, evaluations=evaluations)

    def _task_file(self, reference: str) -> Path:
        note = self.notes.get(TASK_FILE_NOTE)
        if note is None:
            raise TaskError(f"{self.path}: task {reference!r} is a file, but the store does not say "
                            "where it was; rerun the sweep with this toylab to record it")
        beside = self.path.resolve().parent / note["relative"]
        for candidate in (beside, Path(note["path"])):
            if candidate.is_file():
                break
        else:
            raise TaskError(f"{self.path}: task file {note['relative']} is neither beside the store "
                            f"({beside}) nor where the sweep read it ({note['path']}); put it back")
        if _sha256(candidate.read_text(encoding="utf-8")) != note["sha256"]:
            warnings.warn(f"{candidate} changed since the sweep in {self.path} trained; the task "
                          "is rebuilt from the file as it is now", stacklevel=3)
        return candidate


def task_file_note(factory: registry.TaskFile, store_path: str | Path) -> dict[str, str]:
    """What :class:`SweepResults` needs to find ``factory``'s file again from ``store_path``."""
    return {"path": factory.path,
            "relative": os.path.relpath(factory.path, Path(store_path).resolve().parent),
            "sha256": _sha256(factory.source)}


def _sha256(source: str) -> str:
    # Of the text as read (universal newlines), as the sweep read it: not of the raw bytes.
    return hashlib.sha256(source.encode()).hexdigest()
