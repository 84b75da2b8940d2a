"""One error type for bad input, with messages that fit on one line.

Every check on user input (CLI flags, config files, arrays handed to a metric) raises
:class:`ConfigError`, a ``ValueError`` whose message names the offending value, says what was
expected and, where there is one, the fix. The CLI prints it as a single ``error: ...`` line.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

__all__ = ["ConfigError", "validated"]

Model = TypeVar("Model", bound=pydantic.BaseModel)


class ConfigError(ValueError):
    """Bad input from a user: the message is one line that names the value."""


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "value"
    message = error["msg"]
    # Pydantic prefixes custom ValueErrors raised in validators; the prefix is noise to a user.
    message = message.removeprefix("Value error, ")
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
