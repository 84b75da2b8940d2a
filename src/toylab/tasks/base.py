"""What a task is: a small immutable bundle of pure functions for ONE model instance.

The trainer (:mod:`toylab.train`) never looks inside a task. It calls these functions on a
single instance and lets ``jax.vmap`` turn them into thousands; a new task is one new file that
builds a :class:`Task`, and the trainer does not change for it.

Vocabulary: ``hyper`` is the pytree of per-instance hyperparameters (arrays) that may differ
between instances trained side by side, e.g. the feature probability of each autoencoder.
Everything that must be the same for all of them (shapes, the loss variant) is closed over by
the task's factory and recorded in ``spec``. ``data`` is a pytree of arrays shared by every
instance (a data set, the activations a sparse autoencoder reads): the trainer hands it to the
compiled loop once, neither copied per instance nor baked into the program as a constant.

The simplest task gives ``name, spec, hyper, init, sample, loss, flops_per_step, metrics``.
Everything after those is optional and changes nothing when left out:

=================  =====================================================================
``batch_size``     the task's default examples per step, handed to ``sample``
``sample=None``    the task owns what a batch is: ``loss`` receives the step's key instead
                   and draws (or rolls out) whatever it needs
``has_aux``        ``loss`` returns ``(scalar, aux)``; aux (a dict of arrays) is recorded at
                   every evaluation beside the metrics
``init_state``     task-owned state carried through the compiled loop (an environment's
                   state, a running statistic): ``loss`` then takes it last and returns
                   ``(scalar, aux, new_state)``
``data``           shared arrays; every function of the task receives them as ``data=``
``optimizer``      ``optimizer(train_config, hyper) -> optax.GradientTransformation``
``project``        ``project(params, hyper) -> params`` after every update (e.g. unit-norm
                   decoder columns)
=================  =====================================================================
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

PyTree = Any
Params = PyTree
Hyper = PyTree
Batch = PyTree
State = PyTree

__all__ = ["Task", "PyTree", "Params", "Hyper", "Batch", "State", "bind_data"]


class Task(NamedTuple):
    """A family of models, described for one instance.

    Attributes:
      name: short identifier, e.g. ``"superposition"``.
      spec: the static hyperparameters shared by every instance (JSON-ready); with an
        instance's config it identifies the instance and seeds its randomness.
      hyper: ``hyper(config) -> Hyper``. Validates one instance's config (a mapping read from
        a user) and turns it into arrays. Raises :class:`toylab.errors.ConfigError`.
      init: ``init(key, hyper) -> Params`` for one instance.
      sample: ``sample(key, hyper, batch_size) -> Batch``: a fresh training batch. ``None``
        when the task owns what a batch is (a full-batch loss, a rollout, entries drawn from
        the task's own spec): ``loss`` then receives the step's key as its batch, and
        ``TrainConfig.batch_size`` must be left unset.
      loss: ``loss(params, batch, hyper) -> scalar``; ``-> (scalar, aux)`` when ``has_aux``;
        with ``init_state``: ``loss(params, batch, hyper, state) -> (scalar, aux, new_state)``
        (aux may be ``{}``). The trainer differentiates the scalar only.
      flops_per_step: ``flops_per_step(batch_size) -> float``: FLOPs of one training step,
        forward and backward (backward ≈ 2× forward, Kaplan et al. 2020, §2.1); ``batch_size``
        is ``None`` for a task without ``sample``. The evaluation schedule counts compute with it.
      metrics: ``metrics(params, hyper, key) -> dict[str, array]``: cheap, jittable measurements
        recorded at every evaluation beside the loss. ``key`` is fixed per instance, so every
        evaluation of a run measures on the same random draws.
      elicit_mask: ``elicit_mask(params) -> PyTree[bool]``: which parameters an elicited
        evaluation fine-tunes (the rest stay frozen); ``None`` fine-tunes all of them.
      exact_loss: ``exact_loss(params, hyper) -> scalar``: the expected loss in closed form,
        for tasks that have one (a matrix target); ``None`` estimates it at each evaluation
        from held-out batches drawn with ``sample``.
      batch_size: examples per step when ``TrainConfig.batch_size`` is unset.
      has_aux: whether a stateless ``loss`` returns ``(scalar, aux)``.
      init_state: ``init_state(key, hyper) -> State``, or ``None`` for a stateless task.
      data: arrays shared by every instance, or ``None``. When given, the trainer calls every
        function above that takes ``hyper`` (and ``project``) with the keyword ``data=``.
      optimizer: ``optimizer(train_config, hyper) -> optax.GradientTransformation`` for one
        instance; ``None`` uses the one ``TrainConfig`` names. It is built inside the compiled
        step from the instance's (traced) ``hyper``, so a per-instance learning rate may live
        there, and a study may change it between segments (population-based training).
      project: ``project(params, hyper) -> params``, applied after every optimizer update and
        every elicitation step: a constraint kept exactly, e.g. unit-norm decoder columns.
        ``init`` should return parameters that already satisfy it.
    """

    name: str
    spec: Mapping[str, Any]
    hyper: Callable[[Mapping[str, Any]], Hyper]
    init: Callable[..., Params]
    sample: Callable[..., Batch] | None
    loss: Callable[..., Any]
    flops_per_step: Callable[[int | None], float]
    metrics: Callable[..., dict[str, jax.Array]]
    elicit_mask: Callable[[Params], PyTree] | None = None
    exact_loss: Callable[..., jax.Array] | None = None
    batch_size: int | None = None
    has_aux: bool = False
    init_state: Callable[..., State] | None = None
    data: PyTree | None = None
    optimizer: Callable[[Any, Hyper], Any] | None = None
    project: Callable[..., Params] | None = None


_TAKES_DATA = ("init", "sample", "loss", "metrics", "exact_loss", "init_state", "project")


def bind_data(task: Task, data: PyTree | None) -> Task:
    """``task`` with ``data=`` bound into each of its functions; unchanged when it has none.

    The trainer binds the traced ``data`` argument of its compiled functions, so the arrays
    are an input of the program rather than a constant folded into it.
    """
    if task.data is None:
        return task
    return task._replace(**{
        name: functools.partial(getattr(task, name), data=data)
        for name in _TAKES_DATA if getattr(task, name) is not None
    })
