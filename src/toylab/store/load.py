"""Reading a store: runs and evaluations as pandas DataFrames, weights on request.

Example::

    import toylab
    data = toylab.load("runs/tms.sqlite")
    best = data.best()                      # one row per grid point, in grid order
    W = data.stack("W", best.run)           # (points, d_hidden, n_features)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from toylab.errors import ConfigError
from toylab.store.db import connect_readonly
from toylab.store.files import arrays_folder, read_arrays

__all__ = ["load", "SweepData"]

# The columns of SweepData.evaluations that are not metrics.
_EVALUATION_FIELDS = ("run", "step", "trigger", "flops", "compute", "wall_time")


@dataclasses.dataclass(frozen=True)
class SweepData:
    """A store's contents.

    Attributes:
      spec: the latest spec the store ran (canonical JSON data; ``axes`` as [name, values]).
      runs: one row per run: ``run`` (id), ``cell`` (grid point, in the spec's order),
        each axis's value and ``<axis>_index`` (its position on the axis), ``seed``, ``chunk``,
        ``status``, ``attempts``, ``loss`` (final raw loss), each final metric (elicited ones
        as ``elicited_<name>``), ``diverged_step``, ``error``, ``best`` (this run is its grid
        point's pick under the spec's selection), ``config``, ``task_params``, ``train``, ``key``.
      evaluations: one row per evaluation: ``run``, ``step``, ``trigger``, ``flops``,
        ``compute``, ``wall_time``, ``loss``, each metric, and ``elicited_<name>``.
      arrays: run id → {name: array} for every done run, when loaded with ``arrays=True``.
    """

    path: Path
    spec: dict[str, Any]
    runs: Any  # pandas.DataFrame
    evaluations: Any  # pandas.DataFrame
    arrays: dict[int, dict[str, np.ndarray]] | None = None

    def __post_init__(self) -> None:
        # run id -> (weight file, status), so that weights() is a lookup, not a scan per call
        index = {} if not len(self.runs) else dict(zip(
            self.runs["run"], zip(self.runs["arrays_file"], self.runs["status"], strict=True), strict=True))
        object.__setattr__(self, "_index", index)

    def best(self):
        """The best run of each grid point (rows of :attr:`runs`), in grid order."""
        return self.runs[self.runs["best"]].sort_values("cell").reset_index(drop=True)

    def weights(self, run: int) -> dict[str, np.ndarray]:
        """The weights of one done run (read from its file unless already loaded)."""
        if self.arrays is not None and run in self.arrays:
            return self.arrays[run]
        if run not in self._index:
            raise ConfigError(f"no run {run} in {self.path}")
        name, status = self._index[run]
        if not isinstance(name, str):
            raise ConfigError(f"run {run} has no weights (status {status})")
        return read_arrays(arrays_folder(self.path), name)

    def stack(self, name: str, runs: Iterable[int]) -> np.ndarray:
        """Array ``name`` of each of ``runs``, stacked: shape ``(len(runs), ...)``."""
        return np.stack([self.weights(int(run))[name] for run in runs])

    def train_result(self):
        """The whole sweep as one :class:`toylab.train.TrainResult`, as if one ``train`` call
        had trained every run: instances grid point by grid point, seeds inside, weights
        stacked, and the evaluation history from the store. Everything written for a
        ``TrainResult`` (summaries, figures) then works on a store.

        Raises:
          ConfigError: a run is not done (diverged, failed or unfinished: no weights), or the
            runs differ in task parameters or train settings (a sweep over ``train.*`` or
            ``task.*``), or their evaluations fell at different steps.
        """
        import jax

        from toylab.sweeps import registry
        from toylab.sweeps.worker import leaf_name
        from toylab.train import TrainConfig
        from toylab.train.trainer import Evaluation, Instance, TrainResult

        runs = self.runs.sort_values(["cell", "seed"])
        unfinished = runs[runs["status"] != "done"]
        if len(unfinished):
            raise ConfigError(f"{self.path}: {len(unfinished)} runs are not done "
                              f"({', '.join(sorted(set(unfinished['status'])))}); rerun the sweep first")
        for column in ("task_params", "train"):
            if len({json.dumps(value, sort_keys=True) for value in runs[column]}) > 1:
                raise ConfigError(f"{self.path}: the runs differ in {column}; one TrainResult holds one setting")
        task = registry.build_task(self.spec["task"], runs["task_params"].iloc[0])
        ids = [int(run) for run in runs["run"]]

        # Weights: the names flat_params gave each leaf, back into the task's own pytree.
        structure = jax.eval_shape(task.init, jax.random.key(0), task.hyper(runs["config"].iloc[0]))
        paths, treedef = jax.tree_util.tree_flatten_with_path(structure)
        names = [leaf_name(path) for path, _ in paths]
        params = jax.tree_util.tree_unflatten(treedef, [self.stack(name, ids) for name in names])

        # The evaluations were read by load(): one row per (run, step), metrics as columns.
        columns = [c for c in self.evaluations.columns if c not in _EVALUATION_FIELDS]
        elicited_names = [c for c in columns if c.startswith("elicited_")]
        raw_names = [c for c in columns if c not in elicited_names]
        by_run = {run: rows.sort_values("step") for run, rows in self.evaluations.groupby("run")}
        if len({tuple(by_run[run]["step"]) if run in by_run else () for run in ids}) != 1:
            raise ConfigError(f"{self.path}: the runs were evaluated at different steps")

        def stacked(k: int, name: str) -> np.ndarray:
            return np.stack([np.asarray(by_run[run][name].iloc[k], dtype=float) for run in ids])

        evaluations = []
        for k, first in enumerate(by_run[ids[0]].itertuples(index=False)):
            evaluations.append(Evaluation(
                step=int(first.step), trigger=first.trigger, flops=first.flops, compute=first.compute,
                wall_time=first.wall_time, raw={name: stacked(k, name) for name in raw_names},
                elicited={name.removeprefix("elicited_"): stacked(k, name) for name in elicited_names}))
        return TrainResult(task=task, config=TrainConfig(**runs["train"].iloc[0]),
                           instances=[Instance(config=c, seed=int(s)) for c, s in zip(runs["config"], runs["seed"])],
                           params=params, evaluations=evaluations)


def load(path: str | Path, *, arrays: bool = False) -> SweepData:
    """Read the store at ``path`` (read-only; safe while a sweep is writing it).

    Args:
      path: the store's SQLite file.
      arrays: also read the weights of every done run into :attr:`SweepData.arrays`.

    Raises:
      ConfigError: no such file, or a file that is not a toylab store.
    """
    import pandas as pd  # only readers pay for pandas

    path = Path(path)
    connection = connect_readonly(path)
    try:
        spec = json.loads(connection.execute(
            "SELECT spec FROM specs ORDER BY version DESC LIMIT 1").fetchone()[0])
        run_rows = connection.execute(
            "SELECT id, key, cell, task_params, config, train, seed, chunk, status, attempts, "
            "loss, metrics, diverged_step, error, arrays FROM runs ORDER BY id").fetchall()
        eval_rows = connection.execute(
            "SELECT run, step, trigger, flops, compute, wall_time, raw, elicited FROM evaluations "
            "ORDER BY run, step").fetchall()
    finally:
        connection.close()

    axes = spec["axes"]  # [[name, values], ...]
    cells = {_cell_text(dict(zip([a for a, _ in axes], values, strict=True))): index
             for index, values in enumerate(itertools.product(*(v for _, v in axes)))}
    positions = [{json.dumps(v, sort_keys=True, separators=(",", ":")): i for i, v in enumerate(values)}
                 for _, values in axes]
    records = []
    for (id_, key, cell, task_params, config, train, seed, chunk, status, attempts, loss,
         metrics, diverged_step, error, arrays_file) in run_rows:
        point = json.loads(cell)
        record = {"run": id_, "cell": cells.get(cell, -1)}
        for (name, _), position in zip(axes, positions, strict=True):
            record[name] = _hashable(point[name])
            record[f"{name}_index"] = position[json.dumps(point[name], sort_keys=True, separators=(",", ":"))]
        record.update(seed=seed, chunk=chunk, status=status, attempts=attempts, loss=loss)
        record.update({k: _hashable(v) for k, v in json.loads(metrics or "{}").items()})
        record.update(diverged_step=diverged_step, error=error, config=json.loads(config),
                      task_params=json.loads(task_params), train=json.loads(train), key=key,
                      arrays_file=arrays_file)
        records.append(record)
    runs = pd.DataFrame.from_records(records)
    if len(runs):
        runs["loss"] = runs["loss"].astype(float)
        runs["diverged_step"] = runs["diverged_step"].astype("Int64")
        runs["best"] = _best(runs, **spec["select"])

    evaluations = pd.DataFrame.from_records([
        {"run": run, "step": step, "trigger": trigger, "flops": flops, "compute": compute,
         "wall_time": wall_time, **_array_values(json.loads(raw)),
         **{f"elicited_{k}": v for k, v in _array_values(json.loads(elicited)).items()}}
        for run, step, trigger, flops, compute, wall_time, raw, elicited in eval_rows])

    weights = None
    if arrays:
        folder = arrays_folder(path)
        weights = {int(r["run"]): read_arrays(folder, r["arrays_file"])
                   for r in records if r["status"] == "done"}
    return SweepData(path=path, spec=spec, runs=runs, evaluations=evaluations, arrays=weights)


def _cell_text(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True, separators=(",", ":"))


def _hashable(value: Any) -> Any:
    # A list-valued axis (an importance vector) must group and compare: a tuple does.
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def _array_values(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: np.asarray(v, dtype=float) if isinstance(v, list) else v for k, v in metrics.items()}


def _best(runs, *, metric: str, mode: str):
    """True for each grid point's best done run (ties: the lowest seed)."""
    if metric not in runs:
        return runs["run"] < 0  # nothing done yet: no metric column, no best
    done = runs[runs["status"] == "done"]
    values = done[metric].astype(float)
    order = done.assign(_value=values if mode == "min" else -values).sort_values(["_value", "seed"])
    picked = order.drop_duplicates("cell")["run"]
    return runs["run"].isin(picked)
