"""The trainer's settings: one frozen, validated record (bad values fail here, by name).

Every number is checked when the record is built, however it is built (``TrainConfig(...)``,
``TrainConfig.model_validate``, a sweep spec's ``[train]`` table, a CLI flag): floats must be
finite, counts must be integers (not ``True``) that fit the compiled loop's int32 step counter,
and a bad value raises a one-line :class:`toylab.errors.ConfigError` that names it, e.g.
``lr=inf: Input should be a finite number``.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from toylab.errors import ConfigError, _describe

__all__ = ["TrainConfig", "MAX_STEPS"]

# Steps and step counts are traced as int32 inside the compiled loop (JAX's default integer
# with x64 off): a larger count would overflow there after hours of training.
MAX_STEPS = 2**31 - 1


def _field(default: Any, **limits: Any) -> Any:
    """A field whose float values must be finite (pydantic lets inf and NaN through by default)."""
    return pydantic.Field(default, allow_inf_nan=False, **limits)


class _OneLineErrors(type(pydantic.BaseModel)):
    """Builds a model as pydantic does, but a bad field is a one-line :class:`ConfigError`.

    On the metaclass, not in ``__init__``: pydantic calls a custom ``__init__`` also when the
    model is a field of another (a sweep spec's ``train``), and would wrap the ConfigError
    into the outer model's error; a nested TrainConfig must fail as pydantic's own, by path
    (``train.lr=inf: ...``).
    """

    def __call__(cls, *args: Any, **fields: Any) -> Any:
        try:
            return super().__call__(*args, **fields)
        except pydantic.ValidationError as exc:
            raise ConfigError("; ".join(_describe(e) for e in exc.errors())) from None


class TrainConfig(pydantic.BaseModel, frozen=True, extra="forbid", metaclass=_OneLineErrors):
    """How to train and when to evaluate; the same for every instance in one call.

    Defaults are the reference settings of Elhage et al. (2022): AdamW, lr 1e-3, weight decay
    0.01, 10,000 steps, constant learning rate; the batch size is the task's own (1024 for the
    superposition task) unless set here.

    Raises:
      ConfigError: a bad field, by name (also a ``ValueError``).

    Example:
      >>> TrainConfig(lr=float("inf"))
      Traceback (most recent call last):
      ...
      toylab.errors.ConfigError: lr=inf: Input should be a finite number
    """

    steps: int = pydantic.Field(10_000, ge=1, le=MAX_STEPS)  # optimizer steps per instance
    # Examples per step per instance, handed to the task's sample; None = the task's default.
    # A task without a sample function (it draws its own batches) refuses a value here.
    batch_size: int | None = pydantic.Field(None, ge=1, le=MAX_STEPS)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = _field(1e-3, gt=0)  # peak learning rate
    # Decoupled weight decay for adamw and sgd; None = the optimizer's reference value
    # (0.01 for adamw, 0 for sgd). Adam has none: use adamw to decay weights.
    weight_decay: float | None = _field(None, ge=0)
    momentum: float = _field(0.0, ge=0, lt=1)  # sgd only
    schedule: Literal["constant", "linear", "cosine"] = "constant"  # decay to 0 after warmup
    warmup_steps: int = pydantic.Field(0, ge=0, le=MAX_STEPS)  # linear warmup from 0 to lr
    # Evaluation schedule (at every k× of compute): every compute_factor× of compute, every eval_every_steps steps,
    # every eval_every_seconds of wall time, whichever comes first, and at the end.
    compute_factor: float = _field(4.0, gt=1)
    eval_every_steps: int | None = pydantic.Field(None, ge=1, le=MAX_STEPS)
    eval_every_seconds: float | None = _field(None, gt=0)
    efficiency: float = _field(1.0, gt=0)  # effective-compute multiplier on FLOPs
    eval_batches: int = pydantic.Field(4, ge=1, le=MAX_STEPS)  # held-out batches per evaluation
    # Elicitation: fine-tune a copy (the task's elicit_mask picks which parameters) with Adam,
    # cosine-decayed from elicit_lr, for elicit_steps before measuring again; 0 turns it off.
    elicit_steps: int = pydantic.Field(100, ge=0, le=MAX_STEPS)
    elicit_lr: float = _field(1e-2, gt=0)
    # Elicitation scaled to the run: an evaluation fine-tunes for min(elicit_steps,
    # ⌈elicit_fraction × steps trained since the previous evaluation⌉) steps, so elicitation
    # costs at most that fraction of training (see toylab.train.schedule.elicitation_steps).
    # None: elicit_steps at every evaluation, as toylab did before the field existed.
    elicit_fraction: float | None = _field(None, gt=0)

    def identity(self) -> dict[str, Any]:
        """The fields that name a run (a store keys its runs by them), JSON-ready.

        A field added after stores were written is left out while it holds the value that
        reproduces the old behaviour, so the runs of those stores keep their keys.
        """
        return self.model_dump(mode="json", exclude={"elicit_fraction"} if self.elicit_fraction is None else None)

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> TrainConfig:
        """As pydantic's, but a bad field is a one-line :class:`ConfigError`, as when built directly."""
        try:
            return super().model_validate(obj, **options)
        except pydantic.ValidationError as exc:
            raise ConfigError("; ".join(_describe(e) for e in exc.errors())) from None

    @pydantic.field_validator("steps", "batch_size", "warmup_steps", "eval_every_steps", "eval_batches",
                              "elicit_steps", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        # Pydantic reads True as 1: `steps = true` in a sweep spec would train one step.
        if isinstance(value, bool):
            raise ValueError("expected an integer, not a boolean")
        return value

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.optimizer == "adam" and self.weight_decay:
            raise ValueError(
                f"weight_decay={self.weight_decay} needs --optimizer adamw (Adam has no decay)"
            )
        if self.warmup_steps >= self.steps and self.warmup_steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be < steps={self.steps}")
        return self
