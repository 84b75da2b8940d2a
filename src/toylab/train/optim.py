"""Optimizers and learning-rate schedules, all from optax."""

from __future__ import annotations

import optax

from toylab.train.config import TrainConfig

__all__ = ["learning_rate_schedule", "make_optimizer", "optimizer_key"]

# What the evaluation schedule and elicitation read; every other field may shape the optimizer.
_NOT_READ_BY_THE_OPTIMIZER = frozenset({"batch_size", "compute_factor", "eval_every_steps", "eval_every_seconds",
                                        "efficiency", "eval_batches", "elicit_steps", "elicit_lr"})


def learning_rate_schedule(config: TrainConfig) -> optax.Schedule:
    """``step -> lr``: linear warmup from 0, then constant, linear or cosine decay to 0.

    >>> s = learning_rate_schedule(TrainConfig(steps=100, lr=1.0, warmup_steps=10, schedule="linear"))
    >>> [round(float(s(t)), 3) for t in (0, 5, 10, 55, 100)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    decay_steps = config.steps - config.warmup_steps
    main = {
        "constant": optax.constant_schedule(config.lr),
        "linear": optax.linear_schedule(config.lr, 0.0, decay_steps),
        "cosine": optax.cosine_decay_schedule(config.lr, decay_steps),
    }[config.schedule]
    if not config.warmup_steps:
        return main
    warmup = optax.linear_schedule(0.0, config.lr, config.warmup_steps)
    return optax.join_schedules([warmup, main], [config.warmup_steps])


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """The optax optimizer that ``config`` names, driven by its learning-rate schedule."""
    lr = learning_rate_schedule(config)
    if config.optimizer == "adamw":
        decay = 0.01 if config.weight_decay is None else config.weight_decay
        return optax.adamw(lr, weight_decay=decay)
    if config.optimizer == "adam":
        return optax.adam(lr)
    decay = config.weight_decay or 0.0
    sgd = optax.sgd(lr, momentum=config.momentum or None)
    # Decoupled decay, scaled by the schedule like AdamW's: w ← w − lr_t (g + λ w).
    return optax.chain(optax.add_decayed_weights(decay), sgd) if decay else sgd


def optimizer_key(config: TrainConfig) -> str:
    """Equal for two configs whose :func:`make_optimizer` is the same optimizer, so that the
    trainer reuses a compiled step across runs that differ in length or evaluations only.

    Fields are left out by name, never picked in, so a field added later counts until it is
    known not to matter; ``steps`` matters only to a decaying schedule.
    """
    ignored = _NOT_READ_BY_THE_OPTIMIZER | ({"steps"} if config.schedule == "constant" else set())
    return config.model_dump_json(exclude=set(ignored))
