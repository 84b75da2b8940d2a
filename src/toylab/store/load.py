"""Reading a store: runs and evaluations as pandas DataFrames, weights on request.

The store knows tables and weight files, not tasks: :func:`toylab.sweeps.load` (what
``toylab.load`` is) adds the way back to a task and a ``TrainResult``.

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

from toylab.errors import StoreError
from toylab.store.db import NOTE, connect_readonly
from toylab.store.files import DamagedWeightFile, arrays_folder, read_arrays

__all__ = ["load", "SweepData", "EVALUATION_FIELDS"]

# The columns of SweepData.evaluations that are not metrics.
EVALUATION_FIELDS = ("run", "step", "trigger", "flops", "compute", "wall_time")


@dataclasses.dataclass(frozen=True)
class SweepData:
    """A store's contents.

    Attributes:
      spec: the latest spec the store ran (canonical JSON data; ``axes`` as [name, values]).
      runs: one row per run: ``run`` (id), ``cell`` (grid point, in the spec's order),
        each axis's value and ``<axis>_index`` (its position on the axis), ``seed``, ``chunk``,
        ``status``, ``attempts``, ``loss`` (final raw loss), each final metric (elicited ones
        as ``elicited_<name>``), ``diverged_step``, ``error``, ``best`` (this run is its grid
        point's pick under the spec's selection), ``config``, ``task_params``, ``train``, ``key``,
        ``arrays_file`` (the weight file of a done run), ``arrays_size`` and ``arrays_sha256``
        (its size and SHA-256 as written; missing in a store that predates them).
      evaluations: one row per evaluation: ``run``, ``step``, ``trigger``, ``flops``,
        ``compute``, ``wall_time``, ``loss``, each metric, and ``elicited_<name>``.
      arrays: run id → {name: array} for every done run, when loaded with ``arrays=True``.
      notes: what the sweep asked the store to keep (:meth:`toylab.store.Store.set_note`),
        e.g. ``task_file``.
    """

    path: Path
    spec: dict[str, Any]
    runs: Any  # pandas.DataFrame
    evaluations: Any  # pandas.DataFrame
    arrays: dict[int, dict[str, np.ndarray]] | None = None
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # run id -> (weight file, size, SHA-256, status): weights() is a lookup, not a scan per call
        index = {} if not len(self.runs) else dict(zip(self.runs["run"], zip(
            self.runs["arrays_file"], self.runs["arrays_size"], self.runs["arrays_sha256"], self.runs["status"],
            strict=True), strict=True))
        object.__setattr__(self, "_index", index)

    def best(self):
        """The best run of each grid point (rows of :attr:`runs`), in grid order."""
        return self.runs[self.runs["best"]].sort_values("cell").reset_index(drop=True)

    def weights(self, run: int) -> dict[str, np.ndarray]:
        """The weights of one done run (read from its file unless already loaded).

        Raises:
          StoreError: no such run, a run without weights, or a weight file that is missing or
            is not the one the sweep wrote (the message names it; rerunning the sweep retrains it).
        """
        if self.arrays is not None and run in self.arrays:
            return self.arrays[run]
        if run not in self._index:
            raise StoreError(f"no run {run} in {self.path}")
        name, size, sha256, status = self._index[run]
        if not isinstance(name, str):
            raise StoreError(f"run {run} has no weights (status {status})")
        return _read_weights(self.path, run, name, size, sha256)

    def stack(self, name: str, runs: Iterable[int]) -> np.ndarray:
        """Array ``name`` of each of ``runs``, stacked: shape ``(len(runs), ...)``."""
        return np.stack([self.weights(int(run))[name] for run in runs])


def load(path: str | Path, *, arrays: bool = False) -> SweepData:
    """Read the store at ``path`` (read-only; safe while a sweep is writing it).

    Args:
      path: the store's SQLite file.
      arrays: also read the weights of every done run into :attr:`SweepData.arrays`.

    Raises:
      StoreError: no such file, a file that is not a toylab store, or (``arrays=True``) a weight
        file that is missing or damaged (named in the message).
    """
    import pandas as pd  # only readers pay for pandas

    path = Path(path)
    connection = connect_readonly(path)
    try:
        spec = json.loads(connection.execute(
            "SELECT spec FROM specs ORDER BY version DESC LIMIT 1").fetchone()[0])
        columns = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
        checksums = "arrays_size, arrays_sha256" if "arrays_sha256" in columns else "NULL, NULL"  # schema 1
        run_rows = connection.execute(
            "SELECT id, key, cell, task_params, config, train, seed, chunk, status, attempts, "
            f"loss, metrics, diverged_step, error, arrays, {checksums} FROM runs ORDER BY id").fetchall()
        eval_rows = connection.execute(
            "SELECT run, step, trigger, flops, compute, wall_time, raw, elicited FROM evaluations "
            "ORDER BY run, step").fetchall()
        notes = {key.removeprefix(NOTE): json.loads(value) for key, value in connection.execute(
            "SELECT key, value FROM meta WHERE key LIKE ?", (f"{NOTE}%",))}
    finally:
        connection.close()

    axes = spec["axes"]  # [[name, values], ...]
    cells = {_cell_text(dict(zip([a for a, _ in axes], values, strict=True))): index
             for index, values in enumerate(itertools.product(*(v for _, v in axes)))}
    positions = [{json.dumps(v, sort_keys=True, separators=(",", ":")): i for i, v in enumerate(values)}
                 for _, values in axes]
    records = []
    for (id_, key, cell, task_params, config, train, seed, chunk, status, attempts, loss,
         metrics, diverged_step, error, arrays_file, arrays_size, arrays_sha256) in run_rows:
        point = json.loads(cell)
        record = {"run": id_, "cell": cells.get(cell, -1)}
        for (name, _), position in zip(axes, positions, strict=True):
            record[name] = _hashable(point[name])
            record[f"{name}_index"] = position[json.dumps(point[name], sort_keys=True, separators=(",", ":"))]
        record.update(seed=seed, chunk=chunk, status=status, attempts=attempts, loss=loss)
        record.update({k: _hashable(v) for k, v in json.loads(metrics or "{}").items()})
        record.update(diverged_step=diverged_step, error=error, config=json.loads(config),
                      task_params=json.loads(task_params), train=json.loads(train), key=key,
                      arrays_file=arrays_file, arrays_size=arrays_size, arrays_sha256=arrays_sha256)
        records.append(record)
    runs = pd.DataFrame.from_records(records)
    if len(runs):
        runs["loss"] = runs["loss"].astype(float)
        runs["diverged_step"] = runs["diverged_step"].astype("Int64")
        runs["arrays_size"] = runs["arrays_size"].astype("Int64")
        runs["best"] = _best(runs, **spec["select"])

    evaluations = pd.DataFrame.from_records([
        {"run": run, "step": step, "trigger": trigger, "flops": flops, "compute": compute,
         "wall_time": wall_time, **_array_values(json.loads(raw)),
         **{f"elicited_{k}": v for k, v in _array_values(json.loads(elicited)).items()}}
        for run, step, trigger, flops, compute, wall_time, raw, elicited in eval_rows])

    weights = None
    if arrays:
        weights = {r["run"]: _read_weights(path, r["run"], r["arrays_file"], r["arrays_size"], r["arrays_sha256"])
                   for r in records if r["status"] == "done"}
    return SweepData(path=path, spec=spec, runs=runs, evaluations=evaluations, arrays=weights, notes=notes)


def _read_weights(path: Path, run: int, name: str, size: Any, sha256: Any) -> dict[str, np.ndarray]:
    try:
        # Unrecorded (schema 1) values come as None, or pandas' NA from a DataFrame.
        return read_arrays(arrays_folder(path), name, int(size) if isinstance(size, int | np.integer) else None,
                           sha256 if isinstance(sha256, str) else None)
    except DamagedWeightFile as exc:
        raise StoreError(f"{path}: weight file {name} of run {run} is {exc.problem}; rerun the sweep "
                          "to retrain it") from None


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
