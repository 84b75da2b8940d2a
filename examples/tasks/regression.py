"""A worked task: noisy linear regression, the smallest complete :class:`toylab.Task`.

A teacher ``w*`` (fixed by ``teacher_seed``, ``‖w*‖ ≈ 1``) labels Gaussian inputs, ``y = w*·x + σ ε``; each
instance fits ``w`` by least squares on fresh batches. Per-instance config: the label noise
``σ`` (``{"noise": 0.1}``). The expected loss has a closed form, so the trainer reports it
exactly instead of estimating it on held-out batches::

    E[½ (w·x − y)²] = ½ (‖w − w*‖² + σ²)        for x ~ N(0, I)

Train it::

    from toylab import TrainConfig, train
    result = train(regression(d=8), [{"noise": 0.0}, {"noise": 0.5}], seeds=4,
                   config=TrainConfig(steps=500, batch_size=64, optimizer="adam", lr=0.05))
    result.history("weight_error")[-1]   # (8,): ‖w − w*‖ per instance
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from toylab.errors import ConfigError
from toylab.tasks import Task


def regression(d: int = 8, teacher_seed: int = 0) -> Task:
    """Linear regression on ``d`` Gaussian inputs against a fixed random teacher."""
    if d < 1:
        raise ConfigError(f"d={d}: need at least one input")
    # Unit expected norm, so the same learning rate suits every d.
    teacher = (np.random.default_rng(teacher_seed).standard_normal(d) / np.sqrt(d)).astype(np.float32)

    def hyper(config: Mapping[str, Any]) -> dict[str, np.ndarray]:
        unknown = set(config) - {"noise"}
        if unknown:
            raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}; regression takes noise")
        noise = float(config.get("noise", 0.0))
        if not noise >= 0:
            raise ConfigError(f"noise={noise!r}: the label noise σ must be ≥ 0")
        return {"noise": np.float32(noise)}

    def init(key, hyper):
        del key, hyper  # least squares is convex: start every instance at 0
        return {"w": jnp.zeros(d)}

    def sample(key, hyper, batch_size):
        key_x, key_noise = jax.random.split(key)
        x = jax.random.normal(key_x, (batch_size, d))  # (batch, d)
        y = x @ teacher + hyper["noise"] * jax.random.normal(key_noise, (batch_size,))  # (batch,)
        return x, y

    def loss(params, batch, hyper):
        x, y = batch
        return 0.5 * jnp.mean((x @ params["w"] - y) ** 2)

    def exact_loss(params, hyper):
        return 0.5 * (jnp.sum((params["w"] - teacher) ** 2) + hyper["noise"] ** 2)

    def metrics(params, hyper, key):
        del hyper, key
        return {"weight_error": jnp.linalg.norm(params["w"] - teacher)}

    return Task(
        name="regression", spec={"d": d, "teacher_seed": teacher_seed},
        hyper=hyper, init=init, sample=sample, loss=loss,
        # Forward per example: the dot product (2d) and the squared error (3); a step is 3×.
        flops_per_step=lambda batch_size: 3.0 * (2 * d + 3) * batch_size,
        metrics=metrics, exact_loss=exact_loss, batch_size=64,
    )
