"""Task names a sweep can refer to: a registry mapping each name to its task factory.

A sweep spec names its task (``task = "superposition"``) and gives the factory's keyword
arguments (``[task_params]``). A new task plugs in by registering its factory; neither the
sweep machinery nor the trainer changes for it.

Example:
    >>> from toylab.sweeps import registry
    >>> registry.build_task("superposition", {"n_features": 3, "n_hidden": 2}).spec["n_features"]
    3
    >>> registry.build_task("superpositon", {})
    Traceback (most recent call last):
    ...
    toylab.errors.ConfigError: unknown task 'superpositon'; registered: lowrank, superposition
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from toylab.errors import ConfigError
from toylab.tasks.base import Task
from toylab.tasks.lowrank import lowrank
from toylab.tasks.superposition import superposition

__all__ = ["register_task", "task_factory", "build_task", "registered_tasks"]

_FACTORIES: dict[str, Callable[..., Task]] = {}


def register_task(name: str, factory: Callable[..., Task]) -> None:
    """Make ``factory(**task_params) -> Task`` available to sweeps as ``task = name``.

    The Ray backend sends the factory to its workers with the chunk, so a factory defined in
    a script works there too. Registering a name again replaces the factory.
    """
    if not name or not isinstance(name, str):
        raise ConfigError(f"task name {name!r}: expected a non-empty string")
    _FACTORIES[name] = factory


def registered_tasks() -> list[str]:
    """The names a sweep spec may use as ``task``, sorted."""
    return sorted(_FACTORIES)


def task_factory(name: str) -> Callable[..., Task]:
    """The factory registered as ``name``; a one-line :class:`ConfigError` lists the others."""
    try:
        return _FACTORIES[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; registered: {', '.join(registered_tasks())}") from None


def build_task(name: str, params: Mapping[str, Any], factory: Callable[..., Task] | None = None) -> Task:
    """``factory(**params)`` for the task ``name``, with unknown parameters named in one line."""
    factory = factory or task_factory(name)
    try:
        inspect.signature(factory).bind(**params)
    except TypeError as exc:
        accepted = ", ".join(inspect.signature(factory).parameters)
        raise ConfigError(f"task_params for {name!r}: {exc} (it takes {accepted})") from None
    return factory(**params)


register_task("superposition", superposition)
register_task("lowrank", lowrank)
