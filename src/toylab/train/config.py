"""The trainer's settings: one frozen, validated record (bad values fail here, by name)."""

from __future__ import annotations

from typing import Literal

import pydantic

__all__ = ["TrainConfig"]


class TrainConfig(pydantic.BaseModel, frozen=True, extra="forbid"):
    """How to train and when to evaluate; the same for every instance in one call.

    Defaults are the reference settings of Elhage et al. (2022): AdamW, lr 1e-3, weight decay
    0.01, 10,000 steps, constant learning rate; the batch size is the task's own (1024 for the
    superposition task) unless set here.
    """

    steps: int = pydantic.Field(10_000, ge=1)  # optimizer steps per instance
    # Examples per step per instance, handed to the task's sample; None = the task's default.
    # A task without a sample function (it draws its own batches) refuses a value here.
    batch_size: int | None = pydantic.Field(None, ge=1)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = pydantic.Field(1e-3, gt=0)  # peak learning rate
    # Decoupled weight decay for adamw and sgd; None = the optimizer's reference value
    # (0.01 for adamw, 0 for sgd). Adam has none: use adamw to decay weights.
    weight_decay: float | None = pydantic.Field(None, ge=0)
    momentum: float = pydantic.Field(0.0, ge=0, lt=1)  # sgd only
    schedule: Literal["constant", "linear", "cosine"] = "constant"  # decay to 0 after warmup
    warmup_steps: int = pydantic.Field(0, ge=0)  # linear warmup from 0 to lr
    # Evaluation schedule (at every k× of compute): every compute_factor× of compute, every eval_every_steps steps,
    # every eval_every_seconds of wall time, whichever comes first, and at the end.
    compute_factor: float = pydantic.Field(4.0, gt=1)
    eval_every_steps: int | None = pydantic.Field(None, ge=1)
    eval_every_seconds: float | None = pydantic.Field(None, gt=0)
    efficiency: float = pydantic.Field(1.0, gt=0)  # effective-compute multiplier on FLOPs
    eval_batches: int = pydantic.Field(4, ge=1)  # held-out batches per evaluation
    # Elicitation: fine-tune a copy (the task's elicit_mask picks which parameters) with Adam,
    # cosine-decayed from elicit_lr, for elicit_steps before measuring again; 0 turns it off.
    elicit_steps: int = pydantic.Field(100, ge=0)
    elicit_lr: float = pydantic.Field(1e-2, gt=0)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.optimizer == "adam" and self.weight_decay:
            raise ValueError(
                f"weight_decay={self.weight_decay} needs --optimizer adamw (Adam has no decay)"
            )
        if self.warmup_steps >= self.steps and self.warmup_steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be < steps={self.steps}")
        return self
