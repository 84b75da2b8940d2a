"""Optimizers and learning-rate schedules, all from optax."""

from __future__ import annotations

import optax

from toylab.train.config import TrainConfig

__all__ = ["learning_rate_schedule", "make_optimizer"]


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
