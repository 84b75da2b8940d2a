"""toylab's errors: one hierarchy, with messages that fit on one line.

Every error toylab raises on purpose is a :class:`ToylabError`; the CLI prints any of them as a
single ``error: ...`` line and exits with status 2. The message names the offending value, says
what was expected and, where there is one, the fix.

- :class:`ConfigError`: bad input from a user (CLI flags, configs, sweep specs, arrays handed to
  a metric or a figure). A ``ValueError`` too, so ``except ValueError`` keeps working.
- :class:`StoreError`: a store file that cannot be used as asked (not a toylab store, damaged,
  holding a different sweep).
- :class:`Interrupted`: a run stopped by Ctrl-C; the message says what was kept and how to
  resume. The CLI prints it as one line and exits with status 130, as a shell expects.
- :class:`TaskError`: a task that breaks the :class:`toylab.tasks.Task` contract, or a task
  reference (``"module:factory"``, ``"file.py:factory"``) that does not lead to one.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

__all__ = ["ToylabError", "ConfigError", "StoreError", "TaskError", "Interrupted", "validated"]

Model = TypeVar("Model", bound=pydantic.BaseModel)


class ToylabError(Exception):
    """Base of every error toylab raises on purpose: the message is one line for a user."""


class ConfigError(ToylabError, ValueError):
    """Bad input from a user: the message is one line that names the value."""


class StoreError(ConfigError):
    """A store file that cannot be used as asked: foreign, damaged, or holding another sweep."""


class TaskError(ConfigError):
    """A task that breaks the Task contract, or a task reference that does not lead to one."""


class Interrupted(ToylabError):
    """Ctrl-C stopped a run; the message says what was kept and how to resume (e.g. a store)."""


def _describe(error: dict[str, Any]) -> str:
    message = error["msg"]
    # Pydantic prefixes custom ValueErrors raised in validators; the prefix is noise to a user.
    message = message.removeprefix("Value error, ")
    if not error["loc"] and error["type"] == "value_error":
        return message  # a whole-model check: its message names the values; the input is all of them
    where = ".".join(str(part) for part in error["loc"]) or "value"
    if "input" in error and error["type"] not in {"missing"}:
        return f"{where}={error['input']!r}: {message}"
    return f"{where}: {message}"


def validated(model: type[Model], /, **fields: Any) -> Model:
    """Build a pydantic ``model`` from ``fields``, turning validation failures into one line.

    >>> class Lr(pydantic.BaseModel):
    ...     lr: float = pydantic.Field(gt=0)
    >>> validated(Lr, lr=-1.0)
    Traceback (most recent call last):
    ...
    toylab.errors.ConfigError: lr=-1.0: Input should be greater than 0
    """
    try:
        return model(**fields)
    except pydantic.ValidationError as exc:
        raise ConfigError("; ".join(_describe(e) for e in exc.errors())) from None
