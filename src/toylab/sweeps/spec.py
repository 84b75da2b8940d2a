"""A sweep spec: which task, which grid, how many seeds, how to train, how to pick the best seed.

A spec is written in TOML (stdlib ``tomllib``) or built in Python; either way it is validated
on construction, down to every grid point's config, and a bad value fails in one line that
names it. Example (``examples/sweep_tms.toml``)::

    task = "superposition"        # a registered name, "pkg.module:factory" or "file.py:factory"
    seeds = 3                     # K seed indices 0..K-1 per grid point
    seed = 0                      # base seed

    [task_params]                 # the task factory's arguments, fixed for the sweep
    n_features = 5
    n_hidden = 2

    [fixed]                       # per-instance config values shared by every grid point
    importance = 0.9

    [axes]                        # grid axes: the cartesian product, first axis slowest
    feature_probability = [0.03, 0.1, 0.3, 1.0]
    train.lr = [1e-3, 1e-2]       # "train." varies a TrainConfig field, "task." a task param

    [train]                       # TrainConfig fields shared by every run
    steps = 400
    batch_size = 64

    [select]                      # best of the K seeds per grid point
    metric = "loss"               # loss, elicited_loss, or any scalar metric of the task
    mode = "min"

An axis value may itself be a list, e.g. ``importance = [[1.0, 0.5], [1.0, 1.0]]`` sweeps two
per-feature importance vectors.

``task`` may also name a factory of the user's (:mod:`toylab.sweeps.registry`): a file path in
it is relative to the TOML file's folder (to the working directory for a spec built in
Python). The spec keeps the reference as written: it is part of every run's identity, so a
folder holding the spec, the task file and the store can move and its sweep still resumes.

Example:
    >>> spec = SweepSpec(task="superposition", task_params={"n_features": 3, "n_hidden": 2},
    ...                  axes={"feature_probability": [0.1, 1.0]}, seeds=2)
    >>> [(r.point, r.seed) for r in spec.runs()]
    [({'feature_probability': 0.1}, 0), ({'feature_probability': 0.1}, 1), ({'feature_probability': 1.0}, 0), ({'feature_probability': 1.0}, 1)]
    >>> SweepSpec(task="superposition", axes={"feature_probability": [0.1, 1.5]})
    Traceback (most recent call last):
    ...
    toylab.errors.ConfigError: grid point feature_probability=1.5: feature_probability=1.5 is outside (0, 1]: it is the chance 1 − S that a feature is non-zero
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import json
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic

from toylab.errors import ConfigError, _describe, validated
from toylab.sweeps import registry
from toylab.tasks.base import Task
from toylab.train.config import TrainConfig
from toylab.train.trainer import MAX_SEED, evaluation_shapes

__all__ = ["SweepSpec", "Selection", "PlannedRun", "load_spec", "canonical_json", "spec_changes",
           "extension_problems"]

# Axis names with these prefixes vary a TrainConfig field or a task factory argument instead of
# the per-instance config; runs that differ in them train in separate chunks.
_TRAIN, _TASK = "train.", "task."
# Runs in one sweep: each is a row and a weight file of the store, planned in memory first.
MAX_RUNS = 1_000_000


def canonical_json(value: Any) -> str:
    """The one JSON text of ``value`` that identifies it: sorted keys, no spaces, no NaN."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise ConfigError(f"{value!r} holds a NaN or infinite number, which no sweep can "
                          "identify a run by") from None


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class Selection(pydantic.BaseModel, frozen=True, extra="forbid"):
    """Which seed of a grid point is its best: the one with the lowest (or highest) metric."""

    metric: str = "loss"  # a column of the runs table: loss, elicited_loss, a scalar task metric
    mode: Literal["min", "max"] = "min"


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One (grid point, seed index) of a spec, resolved to what the trainer needs."""

    key: str  # hash of everything that determines the run's result: its identity in a store
    cell: str  # canonical JSON of the grid point: runs of one cell differ only in seed
    point: dict[str, Any]  # axis name -> value
    task_params: dict[str, Any]
    config: dict[str, Any]  # the per-instance config handed to the trainer
    train: TrainConfig
    seed: int  # seed index (the spec's base seed is shared by all runs)
    group: str  # runs with the same group can share one train() call


class SweepSpec(pydantic.BaseModel, frozen=True, extra="forbid"):
    """A grid of configs × seeds of one task, and how to train and select them.

    Construction validates everything, including every grid point's config against its task,
    and raises a one-line :class:`toylab.errors.ConfigError` naming the bad value.
    """

    task: str  # a registered name, "package.module:factory" or "path/to/file.py:factory"
    task_params: dict[str, Any] = {}  # keyword arguments of the task factory
    fixed: dict[str, Any] = {}  # per-instance config values shared by every grid point
    # Axis name -> values; the grid is their cartesian product, first axis slowest. Names are
    # per-instance config keys, "train.<TrainConfig field>" or "task.<task parameter>".
    axes: dict[str, list[Any]] = {}
    seeds: int = pydantic.Field(1, ge=1)  # K: seed indices 0..K−1 for every grid point
    # Base seed of every run; the trainer's keys take 32 bits, so a larger one is refused here,
    # before a store exists, rather than failing every run.
    seed: int = pydantic.Field(0, ge=0, le=MAX_SEED)
    train: TrainConfig = TrainConfig()
    select: Selection = Selection()

    @pydantic.field_validator("task_params", "fixed", "axes", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        # numpy values (np.logspace(...) as an axis) become the JSON numbers runs are keyed by.
        return _plain_data(value)

    # The factory `task` names, found once when the spec is built (for a file: with its source).
    _factory: Callable[..., Task] = pydantic.PrivateAttr()

    def __init__(self, *, root: str | Path | None = None, **fields: Any) -> None:
        """Validate ``fields``; ``root`` is the folder a task file path is relative to
        (:func:`load_spec` passes the TOML file's folder; default: the working directory)."""
        try:
            super().__init__(**_flatten_axes(fields))
        except pydantic.ValidationError as exc:
            raise ConfigError("; ".join(_describe(e) for e in exc.errors())) from None
        self._factory = registry.task_factory(self.task, root)  # an unknown task fails first
        self._expand(check=True)

    @property
    def task_factory(self) -> Callable[..., Task]:
        """The factory ``task`` names: ``factory(**task_params) -> Task``."""
        return self._factory

    def build_task(self, task_params: Mapping[str, Any]) -> Task:
        """The task for one grid point's ``task_params`` (a :class:`PlannedRun`'s)."""
        return registry.build_task(self.task, task_params, self._factory)

    # -- identity ----------------------------------------------------------------------------

    def canonical(self) -> dict[str, Any]:
        """The spec as JSON-ready data; axes as ``[name, values]`` pairs to keep their order."""
        data = self.model_dump(mode="json")
        data["train"] = self.train.identity()  # without fields newer than the store at their old values
        data["axes"] = [[name, values] for name, values in self.axes.items()]
        return data

    @property
    def digest(self) -> str:
        """Hash of the canonical spec: equal digests, equal sweeps."""
        return _digest(canonical_json(self.canonical()))

    # -- the grid ----------------------------------------------------------------------------

    def points(self) -> list[dict[str, Any]]:
        """Every grid point (axis name -> value), first axis slowest; ``[{}]`` without axes."""
        names = list(self.axes)
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*self.axes.values())]

    def runs(self) -> list[PlannedRun]:
        """Every (grid point, seed index), grid-point-major, each resolved for the trainer."""
        return self._expand(check=False)

    def _expand(self, *, check: bool) -> list[PlannedRun]:
        self._check_size()
        if check:
            self._check_axes()
        tasks: dict[str, Task] = {}
        trains: dict[str, TrainConfig] = {}
        runs = []
        for point in self.points():
            task_params = {**self.task_params, **_prefixed(point, _TASK)}
            train_updates = _prefixed(point, _TRAIN)
            config = {**self.fixed, **{k: v for k, v in point.items() if not k.startswith((_TASK, _TRAIN))}}
            where = ", ".join(f"{k}={v!r}" for k, v in point.items())
            task_key, train_key = canonical_json(task_params), canonical_json(train_updates)
            try:
                if task_key not in tasks:
                    tasks[task_key] = self.build_task(task_params)
                if train_key not in trains:
                    trains[train_key] = _train_config(self.train, train_updates)
                if check:
                    tasks[task_key].hyper(config)
            except ConfigError as exc:
                raise type(exc)(f"grid point {where}: {exc}" if where else str(exc)) from None
            train = trains[train_key]
            group = canonical_json({"task_params": task_params, "train": train.identity()})
            cell = canonical_json(point)
            for seed in range(self.seeds):
                identity = {"task": self.task, "group": group, "config": config,
                            "seed": self.seed, "seed_index": seed}
                runs.append(PlannedRun(key=_digest(canonical_json(identity)), cell=cell, point=point,
                                       task_params=task_params, config=config, train=train,
                                       seed=seed, group=group))
        if check:
            self._check_selection(next(iter(tasks.values())), runs)
        return runs

    def _check_size(self) -> None:
        # Counted before a single run is built: a grid of 10^10 points would fill the machine's
        # memory with planned runs before anything else could refuse it.
        sizes = [len(values) for values in self.axes.values()]
        count = math.prod(sizes) * self.seeds
        if count > MAX_RUNS:
            shape = " × ".join(map(str, [*sizes, self.seeds]))
            raise ConfigError(f"the sweep has {count} runs ({shape} seeds); a store holds at most "
                              f"{MAX_RUNS:,}: split it into several sweeps")

    def _check_axes(self) -> None:
        for name, values in self.axes.items():
            if not values:
                raise ConfigError(f"axes.{name} is empty: give at least one value")
            seen = set()
            for value in values:
                if (text := canonical_json(value)) in seen:
                    raise ConfigError(f"axes.{name} lists {value!r} twice: every grid point must be distinct")
                seen.add(text)
            if name.startswith(_TRAIN):
                field = name.removeprefix(_TRAIN)
                if field not in TrainConfig.model_fields:
                    raise ConfigError(f"axes.{name}: TrainConfig has no field {field!r}; "
                                      f"fields: {', '.join(TrainConfig.model_fields)}")
                if field in self.train.model_fields_set:
                    raise ConfigError(f"train.{field} is both set in [train] and an axis: keep one")
            elif name.startswith(_TASK):
                if name.removeprefix(_TASK) in self.task_params:
                    raise ConfigError(f"{name} is both in [task_params] and an axis: keep one")
            elif name in self.fixed:
                raise ConfigError(f"{name} is both in [fixed] and an axis: keep one")

    def _check_selection(self, task: Task, runs: list[PlannedRun]) -> None:
        # The metric names exist before any training: trace the task's metrics on shapes only.
        shapes = evaluation_shapes(task, runs[0].config, runs[0].train)
        scalars = [name for name, shape in shapes.items() if shape.shape == ()]
        if any(run.train.elicit_steps for run in runs):
            scalars += [f"elicited_{name}" for name in scalars]
        if self.select.metric not in scalars:
            raise ConfigError(f"select.metric={self.select.metric!r} is not a scalar metric of "
                              f"{self.task!r}; choose one of {', '.join(scalars)}")


def _plain_data(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_data(v) for v in value]
    return value


def _flatten_axes(fields: dict[str, Any]) -> dict[str, Any]:
    # TOML's dotted key `train.lr = [...]` under [axes] arrives as {"train": {"lr": [...]}}.
    axes = fields.get("axes")
    if not isinstance(axes, Mapping):
        return fields
    flat: dict[str, Any] = {}
    for name, values in axes.items():
        if isinstance(values, Mapping) and f"{name}." in (_TRAIN, _TASK):
            flat.update({f"{name}.{field}": v for field, v in values.items()})
        else:
            flat[name] = values
    return {**fields, "axes": flat}


def _prefixed(point: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k.removeprefix(prefix): v for k, v in point.items() if k.startswith(prefix)}


def _train_config(base: TrainConfig, updates: Mapping[str, Any]) -> TrainConfig:
    if not updates:
        return base
    return validated(TrainConfig, **{**base.model_dump(exclude_unset=True), **updates})


def load_spec(path: str | Path) -> SweepSpec:
    """Read a TOML sweep spec; every problem is one :class:`ConfigError` line naming ``path``.

    A task file named in it (``task = "my_task.py:factory"``) is read relative to its folder.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such sweep spec") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it as text ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return SweepSpec(root=path.parent, **data)
    except ConfigError as exc:
        raise type(exc)(f"{path}: {exc}") from None  # a TaskError stays one


# -- comparing specs: what a store holds against what a command asks for ---------------------


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def _short(value: Any, width: int = 40) -> str:
    text = canonical_json(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def spec_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two canonical specs, e.g. ``train.steps 300 → 500``."""
    old_flat, new_flat = _flat(_axes_as_dict(old)), _flat(_axes_as_dict(new))
    changes = []
    for name in sorted(old_flat.keys() | new_flat.keys()):
        before, after = old_flat.get(name, "unset"), new_flat.get(name, "unset")
        if before != after:
            changes.append(f"{name} {_short(before)} → {_short(after)}")
    return changes


def extension_problems(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Why ``new`` is not ``old`` plus grid values or seeds (empty when it is)."""
    old_axes, new_axes = dict(old["axes"]), dict(new["axes"])
    problems = [change for change in spec_changes(
        {k: v for k, v in old.items() if k not in ("axes", "seeds", "select")},
        {k: v for k, v in new.items() if k not in ("axes", "seeds", "select")})]
    if list(old_axes) != list(new_axes) and set(old_axes) != set(new_axes):
        problems.append(f"axes {list(old_axes)} → {list(new_axes)}")
    for name in old_axes.keys() & new_axes.keys():
        kept = {canonical_json(v) for v in new_axes[name]}
        lost = [v for v in old_axes[name] if canonical_json(v) not in kept]
        if lost:
            problems.append(f"axes.{name} drops {_short(lost)}")
    if new["seeds"] < old["seeds"]:
        problems.append(f"seeds {old['seeds']} → {new['seeds']}")
    return problems


def _axes_as_dict(spec: Mapping[str, Any]) -> dict[str, Any]:
    if "axes" not in spec:
        return dict(spec)
    return {**spec, "axes": {name: values for name, values in spec["axes"]}}
