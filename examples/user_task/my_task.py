"""A task of your own: noisy linear regression, ``y = w*·x + ε``, learned by one weight vector.

Sweep it from the repository root (the spec names this file relative to its own folder)::

    toylab sweep examples/user_task/sweep.toml --store runs/user_task.sqlite

and read the results back in Python::

    import toylab
    data = toylab.load("runs/user_task.sqlite")
    data.best()                       # the best seed per noise level, as a DataFrame
    result = data.train_result()      # every run as one TrainResult (rebuilt from this file)

The factory closes over what every instance shares (the input dimension, the teacher); the
per-instance config, here only the label noise, becomes arrays in ``hyper`` so that instances
with different noise train side by side. This file is shipped to Ray workers as its source:
it may import installed packages (jax, numpy, toylab), not modules beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from toylab.errors import ConfigError
from toylab.tasks import Task


def regression(d: int = 8, teacher_seed: int = 0) -> Task:
    """Linear regression onto a fixed random teacher ``w*`` (unit norm in expectation).

    Args:
      d: input dimension.
      teacher_seed: which teacher; every instance of one sweep learns the same one.

    Per-instance config: ``noise`` (σ ≥ 0, default 0), the standard deviation of ε. The
    expected loss at the teacher is σ², so the best reachable loss differs per instance while
    ``teacher_error`` = ‖w − w*‖² → 0 for all of them.
    """
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ConfigError(f"d={d!r}: expected a positive number of input dimensions")
    teacher = (np.random.default_rng(teacher_seed).standard_normal(d) / math.sqrt(d)).astype(np.float32)  # (d,)

    def hyper(config: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if unknown := set(config) - {"noise"}:
            raise ConfigError(f"unknown config {sorted(unknown)}: regression takes only noise")
        noise = config.get("noise", 0.0)
        if isinstance(noise, bool) or not isinstance(noise, int | float) or not noise >= 0:
            raise ConfigError(f"noise={noise!r}: expected a standard deviation ≥ 0")
        return {"noise": np.float32(noise)}

    def init(key: jax.Array, hyper: dict[str, jax.Array]) -> dict[str, jax.Array]:
        del hyper
        return {"w": 0.1 * jax.random.normal(key, (d,))}  # (d,)

    def sample(key: jax.Array, hyper: dict[str, jax.Array], batch_size: int) -> dict[str, jax.Array]:
        key_x, key_noise = jax.random.split(key)
        x = jax.random.normal(key_x, (batch_size, d))  # (batch, d)
        y = x @ teacher + hyper["noise"] * jax.random.normal(key_noise, (batch_size,))  # (batch,)
        return {"x": x, "y": y}

    def loss(params: dict[str, jax.Array], batch: dict[str, jax.Array], hyper: dict[str, jax.Array]) -> jax.Array:
        del hyper
        return jnp.mean((batch["x"] @ params["w"] - batch["y"]) ** 2)

    # key=None: toylab passes a random key to metrics from its next release on; this task
    # needs none, and the default keeps it working with both.
    def metrics(params: dict[str, jax.Array], hyper: dict[str, jax.Array],
                key: jax.Array | None = None) -> dict[str, jax.Array]:
        del hyper, key
        return {"teacher_error": jnp.sum((params["w"] - teacher) ** 2)}

    # Forward FLOPs per example: the dot product 2d, the residual and its square 2, the mean 1;
    # a step is ~3 forward passes (backward ≈ 2×).
    return Task(name="regression", spec={"d": d, "teacher_seed": teacher_seed}, hyper=hyper, init=init,
                sample=sample, loss=loss, flops_per_step=lambda batch_size: 3.0 * (2 * d + 3) * batch_size,
                metrics=metrics)
