"""What a task is: a small immutable bundle of pure functions for ONE model instance.

The trainer (:mod:`toylab.train`) never looks inside a task. It calls these functions on a
single instance and lets ``jax.vmap`` turn them into thousands; a new task is one new file that
builds a :class:`Task`, and the trainer does not change for it.

Vocabulary: ``hyper`` is the pytree of per-instance hyperparameters (arrays) that may differ
between instances trained side by side, e.g. the feature probability of each autoencoder.
Everything that must be the same for all of them (shapes, the loss variant) is closed over by
the task's factory and recorded in ``spec``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

PyTree = Any
Params = PyTree
Hyper = PyTree
Batch = PyTree

__all__ = ["Task", "PyTree", "Params", "Hyper", "Batch"]


class Task(NamedTuple):
    """A family of models, described for one instance.

    Attributes:
      name: short identifier, e.g. ``"superposition"``.
      spec: the static hyperparameters shared by every instance (JSON-ready); with an
        instance's config it identifies the instance and seeds its randomness.
      hyper: ``hyper(config) -> Hyper``. Validates one instance's config (a mapping read from
        a user) and turns it into arrays. Raises :class:`toylab.errors.ConfigError`.
      init: ``init(key, hyper) -> Params`` for one instance.
      sample: ``sample(key, hyper, batch_size) -> Batch``: a fresh training batch.
      loss: ``loss(params, batch, hyper) -> scalar``.
      flops_per_step: ``flops_per_step(batch_size) -> float``: FLOPs of one training step,
        forward and backward (backward ≈ 2× forward, Kaplan et al. 2020, §2.1). The
        evaluation schedule counts compute with it.
      metrics: ``metrics(params, hyper) -> dict[str, array]``: cheap, jittable measurements
        recorded at every evaluation beside the loss.
      elicit_mask: ``elicit_mask(params) -> PyTree[bool]``: which parameters an elicited
        evaluation fine-tunes (the rest stay frozen); ``None`` fine-tunes all of them.
      exact_loss: ``exact_loss(params, hyper) -> scalar``: the expected loss in closed form,
        for tasks that have one (a matrix target); ``None`` estimates it at each evaluation
        from held-out batches drawn with ``sample``.
    """

    name: str
    spec: Mapping[str, Any]
    hyper: Callable[[Mapping[str, Any]], Hyper]
    init: Callable[[jax.Array, Hyper], Params]
    sample: Callable[[jax.Array, Hyper, int], Batch]
    loss: Callable[[Params, Batch, Hyper], jax.Array]
    flops_per_step: Callable[[int], float]
    metrics: Callable[[Params, Hyper], dict[str, jax.Array]]
    elicit_mask: Callable[[Params], PyTree] | None = None
    exact_loss: Callable[[Params, Hyper], jax.Array] | None = None
