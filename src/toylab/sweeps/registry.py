"""Which task a sweep trains: a registered name, an entry point, a module or a file of the user's.

A sweep spec names its task factory in one of four ways, and gives the factory's keyword
arguments as ``[task_params]``; neither the sweep machinery nor the trainer changes for a task:

- ``"superposition"``: a name registered with :func:`register_task` (toylab's own tasks are);
- ``"sae"``: a name an installed package declares in the entry-point group ``toylab.tasks``
  (``[project.entry-points."toylab.tasks"] sae = "mypkg.tasks:sae"`` in its pyproject.toml);
- ``"mypkg.tasks:sae"``: a factory in an importable module;
- ``"tasks/my_task.py:regression"``: a factory in a file, relative to the spec file's folder
  (or, for a spec built in Python, to the working directory when it was built).

A file is read once, when the spec is built, and its source travels with every chunk job, so a
Ray worker on another machine runs the very code the spec was checked against; the file must
therefore be self-contained (it may import installed packages, not modules beside it). A
module or an entry point is imported by name wherever the chunk trains, so it must be
installed (or on ``PYTHONPATH``) there too.

Every way fails in one line (:class:`toylab.errors.TaskError`): no such file or module, no
such attribute, not callable, a factory that returns something other than a
:class:`toylab.tasks.Task`, or a name two sources claim.

Example:
    >>> from toylab.sweeps import registry
    >>> registry.build_task("superposition", {"n_features": 3, "n_hidden": 2}).spec["n_features"]
    3
    >>> registry.task_factory("superpositon")
    Traceback (most recent call last):
    ...
    toylab.errors.TaskError: unknown task 'superpositon'; registered: lowrank, superposition; or name a factory as 'package.module:factory' or 'file.py:factory'
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import inspect
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from toylab.errors import ConfigError, TaskError
from toylab.tasks.base import Task
from toylab.tasks.lowrank import lowrank
from toylab.tasks.superposition import superposition

__all__ = ["ENTRY_POINT_GROUP", "register_task", "registered_tasks", "task_factory", "build_task",
           "TaskFile", "split_file_reference"]

ENTRY_POINT_GROUP = "toylab.tasks"
_FACTORIES: dict[str, Callable[..., Task]] = {}
_HINT = "or name a factory as 'package.module:factory' or 'file.py:factory'"


def register_task(name: str, factory: Callable[..., Task]) -> None:
    """Make ``factory(**task_params) -> Task`` available to sweeps as ``task = name``.

    The Ray backend sends the factory to its workers with the chunk, so a factory defined in
    a script works there too. Registering a name again replaces the factory.
    """
    if not name or not isinstance(name, str) or ":" in name:
        raise ConfigError(f"task name {name!r}: expected a non-empty string without ':'")
    _FACTORIES[name] = factory


def registered_tasks() -> list[str]:
    """The names a sweep spec may use as ``task``: registered ones and entry points, sorted."""
    return sorted(_FACTORIES.keys() | _entry_points().keys())


def task_factory(reference: str, root: str | Path | None = None) -> Callable[..., Task]:
    """The factory ``reference`` names (see the module docstring for the four spellings).

    Args:
      reference: a registered or entry-point name, ``"package.module:factory"`` or
        ``"path/to/file.py:factory"``.
      root: the folder a relative file path is read from (default: the working directory).

    Returns:
      A callable ``factory(**task_params) -> Task``; for a file, a :class:`TaskFile`.

    Raises:
      TaskError: the reference leads to nothing callable, or two sources claim the name.
    """
    if ":" not in reference:
        return _named(reference)
    if (file := split_file_reference(reference)) is not None:
        path, attribute = file
        path = Path(path).expanduser()
        path = (Path(root) if root is not None else Path.cwd()) / path if not path.is_absolute() else path
        if not path.is_file():
            raise TaskError(f"task {reference!r}: no such file {path}")
        factory = TaskFile(str(path.resolve()), attribute, path.read_text(encoding="utf-8"))
        factory.function  # noqa: B018  (imports the file now: a broken one fails before training)
        return factory
    module_name, _, attribute = reference.rpartition(":")
    if not module_name or not attribute:
        raise TaskError(f"task {reference!r}: expected 'package.module:factory' or 'file.py:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskError(f"task {reference!r}: cannot import {module_name!r} ({exc})") from None
    return _callable(getattr(module, attribute, None), reference, f"module {module_name!r}", attribute)


def split_file_reference(reference: str) -> tuple[str, str] | None:
    """``("path/to/file.py", "factory")`` for a file reference, else None.

    >>> split_file_reference("tasks/my_task.py:regression")
    ('tasks/my_task.py', 'regression')
    >>> split_file_reference("mypkg.tasks:sae") is None
    True
    """
    where, colon, attribute = reference.rpartition(":")
    if not colon or not (where.endswith(".py") or "/" in where or "\\" in where):
        return None
    if not attribute:
        raise TaskError(f"task {reference!r}: name the factory after the file, e.g. '{where}:my_task'")
    return where, attribute


def build_task(name: str, params: Mapping[str, Any], factory: Callable[..., Task] | None = None) -> Task:
    """``factory(**params)`` for the task ``name``, with unknown parameters named in one line.

    Raises:
      ConfigError: ``params`` do not fit the factory's signature.
      TaskError: the factory returned something other than a :class:`toylab.tasks.Task`.
    """
    factory = factory or task_factory(name)
    try:
        inspect.signature(factory).bind(**params)
    except TypeError as exc:
        accepted = ", ".join(inspect.signature(factory).parameters)
        raise ConfigError(f"task_params for {name!r}: {exc} (it takes {accepted})") from None
    task = factory(**params)
    if not isinstance(task, Task):
        raise TaskError(f"task {name!r}: the factory returned a {type(task).__name__}, not a "
                        "toylab.tasks.Task")
    return task


@dataclasses.dataclass(frozen=True)
class TaskFile:
    """A task factory defined in a file, carried as its source so that it pickles anywhere.

    Calling it calls the factory; the file's source runs once per process, as a module of its
    own (named after the path and the source's hash), and is never looked up by name, so a
    Ray worker that lacks the file, or has another version of it, still runs this one.
    """

    path: str  # absolute path of the file when the spec was built
    attribute: str  # the factory's name in the file
    source: str  # the file's text

    @property
    def function(self) -> Callable[..., Task]:
        """The factory itself (the file's module is executed on first use in a process)."""
        module = _file_module(self.path, self.source)
        short = f"{Path(self.path).name}:{self.attribute}"  # the full path follows in the message
        return _callable(getattr(module, self.attribute, None), short, self.path, self.attribute)

    @property
    def __signature__(self) -> inspect.Signature:
        # build_task checks task_params against the factory's own signature.
        return inspect.signature(self.function)

    def __call__(self, **params: Any) -> Task:
        return self.function(**params)


_FILE_MODULES: dict[str, types.ModuleType] = {}


def _file_module(path: str, source: str) -> types.ModuleType:
    name = "toylab_task_" + hashlib.blake2b(f"{path}\0{source}".encode(), digest_size=8).hexdigest()
    if name in _FILE_MODULES:
        return _FILE_MODULES[name]
    module = types.ModuleType(name)
    module.__file__ = path
    # In sys.modules while it runs: dataclasses and typing look a class's module up by name.
    sys.modules[name] = module
    try:
        exec(compile(source, path, "exec"), module.__dict__)
    except Exception as exc:
        del sys.modules[name]
        where = f" line {exc.lineno}" if isinstance(exc, SyntaxError) else ""
        raise TaskError(f"task file {path}{where} failed to import: {type(exc).__name__}: {exc}") from None
    _FILE_MODULES[name] = module
    return module


def _callable(value: Any, reference: str, where: str, attribute: str) -> Callable[..., Task]:
    if value is None:
        raise TaskError(f"task {reference!r}: {where} has no attribute {attribute!r}")
    if not callable(value):
        raise TaskError(f"task {reference!r}: {attribute} is not callable (a {type(value).__name__}); "
                        "name a function that returns a toylab.tasks.Task")
    return value


def _entry_points() -> dict[str, list[importlib.metadata.EntryPoint]]:
    # Read on every call, not cached: installing a package (or a test adding one to sys.path)
    # takes effect without restarting Python. One distribution found twice on sys.path is
    # one source, not a clash.
    found: dict[str, list[importlib.metadata.EntryPoint]] = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        same = found.setdefault(entry.name, [])
        if all(other.value != entry.value for other in same):
            same.append(entry)
    return found


def _named(name: str) -> Callable[..., Task]:
    entries = _entry_points().get(name, [])
    sources = sorted(f"{_owner(entry)} ({entry.value})" for entry in entries)  # not by sys.path order
    if name in _FACTORIES:
        factory = _FACTORIES[name]
        sources.insert(0, f"toylab's registry ({factory.__module__}:{factory.__qualname__})")
    if len(sources) > 1:
        raise TaskError(f"task {name!r} is claimed by {' and '.join(sources)}; name the one you mean "
                        "as 'package.module:factory'")
    if name in _FACTORIES:
        return _FACTORIES[name]
    if not entries:
        raise TaskError(f"unknown task {name!r}; registered: {', '.join(registered_tasks())}; {_HINT}")
    try:
        factory = entries[0].load()
    except Exception as exc:  # a plugin's own import error, whatever its type
        raise TaskError(f"task {name!r}: the entry point {entries[0].value!r} of {_owner(entries[0])} "
                        f"cannot be loaded ({type(exc).__name__}: {exc})") from None
    return _callable(factory, name, f"entry point {entries[0].value!r}", entries[0].attr or "")


def _owner(entry: importlib.metadata.EntryPoint) -> str:
    return f"package {entry.dist.name!r}" if entry.dist is not None else "an installed package"


register_task("superposition", superposition)
register_task("lowrank", lowrank)
