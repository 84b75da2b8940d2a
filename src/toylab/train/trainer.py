"""Train many instances of a task side by side, evaluating at every 4× of compute (or as set).

One call trains every (config, seed) pair of a task at once: ``jax.vmap`` batches the task's
one-instance functions, and the optimizer steps between two evaluations run as one compiled XLA
loop. Evaluations are the trainer's only logging: each records its trigger, step, compute, wall
time, the raw metrics and, when elicitation is on, the metrics after a brief fine-tune.

Example:
    >>> from toylab.tasks import superposition
    >>> task = superposition(n_features=5, n_hidden=2)
    >>> result = train(task, [{"feature_probability": 0.1}], seeds=2,
    ...                config=TrainConfig(steps=20, batch_size=32, elicit_steps=0))
    >>> result.params["W"].shape, [e.step for e in result.evaluations]
    ((2, 2, 5), [0, 1, 4, 16, 20])
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from toylab.errors import ConfigError, TaskError
from toylab.memory import available_bytes, describe_bytes, require_memory
from toylab.tasks.base import PyTree, Task, bind_data
from toylab.train.config import TrainConfig
from toylab.train.optim import make_optimizer, optimizer_key
from toylab.train.progress import LazyProgress, StepCallback
from toylab.train.schedule import EvalPoint, elicitation_steps, next_evaluation

__all__ = ["Instance", "Evaluation", "TrainResult", "Population", "train", "initial_params",
           "evaluation_shapes", "parameter_shapes", "batch_shapes", "memory_needed", "MAX_SEED", "compiled_for",
           "group_size"]

# Sub-streams of an instance's key; fixed so that adding one never shifts another.
_INIT, _DATA, _EVAL, _ELICIT, _STATE = range(5)
# The metrics' key within the evaluation stream; held-out batches use indices from 0 up.
_METRIC_KEY = 2**31 - 1
# Wall time one compiled segment aims for: short enough for a live progress bar and for
# time-interval evaluations to fire on time, long enough that dispatch costs nothing.
_SEGMENT_SECONDS = 0.5
# A CPU group's arrays (see _group_size): about the L2 caches of two cores.
_GROUP_BYTES = 2 * 2**20
# The base seed reaches the compiled key derivation as a 32-bit integer (JAX's with x64 off).
MAX_SEED = 2**31 - 1
# Tasks whose compiled functions stay in memory for the next train() call (least recent out).
_TASKS_KEPT = 16


@dataclasses.dataclass(frozen=True)
class Instance:
    """One model: a per-instance config of its task, and a seed index."""

    config: Mapping[str, Any]
    seed: int


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One evaluation of every instance. Metric arrays have shape ``(models, ...)``."""

    step: int
    trigger: str  # init, compute, interval, time, end; "+"-joined when several fire at once
    flops: float  # training FLOPs spent per instance so far
    compute: float  # effective compute: efficiency × flops
    wall_time: float  # seconds from the start of training to the end of this evaluation
    raw: dict[str, np.ndarray]
    elicited: dict[str, np.ndarray]  # empty when elicitation is off
    # Fine-tuning steps behind ``elicited`` (see toylab.train.schedule.elicitation_steps); None
    # where not recorded (evaluations read back from a results store).
    elicit_steps: int | None = None

    @property
    def elicitation_gap(self) -> np.ndarray | None:
        """Raw minus elicited loss per instance (≥ 0 when fine-tuning helped)."""
        if "loss" not in self.elicited:
            return None
        return self.raw["loss"] - self.elicited["loss"]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Trained weights (leading ``models`` axis) and the evaluation history."""

    task: Task
    config: TrainConfig
    instances: list[Instance]
    params: PyTree
    evaluations: list[Evaluation]
    state: PyTree | None = None  # the task's final state (leading models axis); None if it has none
    hyper: PyTree | None = None  # per-instance hyperparameters at the end (a population hook may change them)

    def history(self, metric: str = "loss", *, elicited: bool = False) -> np.ndarray:
        """A metric at every evaluation, shape ``(evaluations, models, ...)``."""
        rows = [e.elicited if elicited else e.raw for e in self.evaluations]
        if metric not in rows[-1]:
            raise KeyError(f"no {'elicited ' if elicited else ''}metric {metric!r}; have {sorted(rows[-1])}")
        return np.stack([row[metric] for row in rows])

    @property
    def steps(self) -> np.ndarray:
        return np.array([e.step for e in self.evaluations])

    @property
    def final(self) -> Evaluation:
        return self.evaluations[-1]

    def instance_params(self, index: int) -> PyTree:
        """The weights of instance ``index`` alone."""
        return jax.tree.map(lambda leaf: leaf[index], self.params)


@dataclasses.dataclass(frozen=True)
class Population:
    """Every instance between two compiled segments, as a population hook sees it.

    Leaves have a leading ``models`` axis (instance order as in :class:`TrainResult`). A hook
    returns ``dataclasses.replace(population, params=..., ...)`` with new values of the same
    shapes and dtypes, or ``None`` to leave the population as it is.
    """

    step: int
    evaluation: Evaluation  # the evaluation just recorded at this step
    params: PyTree
    opt_state: PyTree  # the optimizer's state: moments, and rates from optax.inject_hyperparams
    state: PyTree  # the task's own state; () for a stateless task
    hyper: PyTree  # per-instance hyperparameters (numpy)
    key: jax.Array  # for the hook's own randomness; depends on the base seed and the step


def _config_digest(task: Task, config: Mapping[str, Any]) -> int:
    canonical = json.dumps(
        {"task": task.name, "spec": task.spec, "config": config},
        sort_keys=True,
        default=lambda value: np.asarray(value).tolist(),
    )
    return int.from_bytes(hashlib.blake2b(canonical.encode(), digest_size=4).digest(), "little")


@jax.jit
@functools.partial(jax.vmap, in_axes=(None, 0, 0))
def _instance_keys(seed, digest, seed_index):
    # An instance's key depends on (base seed, its config, its seed index) only, so it trains
    # identically alone or among thousands, in any order.
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), digest), seed_index)


def train(
    task: Task,
    configs: Sequence[Mapping[str, Any]],
    *,
    seeds: int | Iterable[int] = 1,
    seed: int = 0,
    config: TrainConfig | None = None,
    progress: bool | None | Callable[[int], None] = None,
    on_evaluation: Callable[[Population], Population | None] | None = None,
) -> TrainResult:
    """Train every (config, seed index) pair of ``task`` side by side.

    Args:
      task: what to train (see :class:`toylab.tasks.Task`).
      configs: per-instance configs of the task, e.g. ``[{"feature_probability": 0.1}]``.
      seeds: a count K (seed indices 0..K−1) or explicit seed indices, for every config.
      seed: the base seed.
      config: optimizer, steps and evaluation schedule; defaults to :class:`TrainConfig`.
      progress: show a progress bar on stderr; ``None`` shows one when the run is long; or a
        function called with the number of steps done after each compiled segment (a caller's
        own progress display, e.g. a sweep's).
      on_evaluation: a population hook, called after every evaluation but the last with a
        :class:`Population`; what it returns replaces the weights, optimizer and task state
        and hyperparameters of every instance before training goes on. Population-based
        training is such a hook; evaluate every K steps (``TrainConfig.eval_every_steps``) to
        act every K steps.

    Returns:
      A :class:`TrainResult`; instance ``i`` is config ``i // len(seeds)``, seed ``i % len(seeds)``.
    """
    config = config or TrainConfig()
    seeds = _seed_indices(seeds, seed)
    if not configs or not seeds:
        raise ConfigError(f"nothing to train: {len(configs)} configs × {len(seeds)} seeds")
    # Before anything is allocated: a typo in a size or a seed count fails here, in one line,
    # instead of after minutes of swapping, in a MemoryError or the out-of-memory killer.
    instance_bytes = _instance_bytes(task, configs[0], config)
    needed = len(configs) * len(seeds) * instance_bytes + _nbytes(task.data)
    _require_device_memory(needed, len(configs) * len(seeds))
    group = group_size(len(configs) * len(seeds), instance_bytes)
    # Fresh data every step makes random-number generation the largest cost of a small model.
    # Threefry's non-partitionable layout draws the same quality of bits 2× faster on CPU
    # (measured: 0.16 s vs 0.33 s for 1000 × 1024 × 20 uniforms); its only advantage, sharding
    # one draw across devices, is unused here. Fixed here so results never depend on the
    # caller's global setting.
    try:
        with jax.threefry_partitionable(False):
            return _train(task, configs, seeds=seeds, seed=seed, config=config, group=group,
                          progress=progress, on_evaluation=on_evaluation)
    except (MemoryError, jax.errors.JaxRuntimeError) as exc:
        # The estimate is a lower bound (activations, XLA's scratch space are not in it): a
        # run that passed it can still run out, and should fail as one line too.
        if isinstance(exc, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" not in str(exc):
            raise
        raise ConfigError(f"out of memory training {len(configs) * len(seeds)} instances (estimated at least "
                          f"{describe_bytes(needed)}): use fewer seeds or configs, a smaller batch, or a "
                          "sweep, which trains in chunks sized to memory") from None


def initial_params(
    task: Task, configs: Sequence[Mapping[str, Any]], *, seeds: int | Iterable[int] = 1, seed: int = 0
) -> PyTree:
    """The weights :func:`train` starts every instance from (numpy, leading ``models`` axis).

    For comparing trained weights with their init, or integrating gradient flow from the same
    starting point as a discrete run (:func:`toylab.train.gradient_flow`).
    """
    seeds = _seed_indices(seeds, seed)
    if configs:
        hyper = task.hyper(configs[0])
        params = _nbytes(_parameter_shapes(task, hyper))
        _require_device_memory((params + _nbytes(hyper)) * len(configs) * len(seeds), len(configs) * len(seeds))
    with jax.threefry_partitionable(False):
        _, hyper, keys = _instances(task, configs, seeds, seed)
        return jax.device_get(_init(task)(hyper, keys, task.data)[0])


def evaluation_shapes(task: Task, config: Mapping[str, Any], train_config: TrainConfig | None = None
                      ) -> dict[str, jax.ShapeDtypeStruct]:
    """What every evaluation of one instance records (loss, the loss's aux, the metrics), by name.

    Traced on shapes only, so nothing trains or even initialises: a sweep checks the metric it
    selects on before any work. Elicited evaluations record the same names.
    """
    train_config = (train_config or TrainConfig()).model_copy(update={"elicit_steps": 0})
    _, hyper, keys = _instances(task, [config], 1, 0)
    evaluate = _evaluator(task, train_config, _batch_size(task, train_config))
    params, state = jax.eval_shape(_init(task), hyper, keys, task.data)
    raw, _ = jax.eval_shape(evaluate, params, hyper, state, task.data, keys, keys, 0)
    return {name: jax.ShapeDtypeStruct(value.shape[1:], value.dtype) for name, value in raw.items()}


def parameter_shapes(task: Task, config: Mapping[str, Any]) -> PyTree:
    """One instance's parameters as ``jax.ShapeDtypeStruct`` leaves, traced on shapes only."""
    return _parameter_shapes(task, task.hyper(config))


def batch_shapes(task: Task, config: Mapping[str, Any], train_config: TrainConfig | None = None) -> PyTree:
    """One instance's training batch as ``jax.ShapeDtypeStruct`` leaves; ``()`` for a task that
    draws its own (no ``sample``). Traced on shapes only."""
    return _batch_shapes(task, task.hyper(config), train_config or TrainConfig())


def memory_needed(task: Task, config: Mapping[str, Any], train_config: TrainConfig | None = None, *,
                  instances: int = 1) -> int:
    """Bytes that training ``instances`` instances like ``config`` in one call holds at least.

    Per instance: its parameters and their gradients, the optimizer's state, one training
    batch and the hyperparameters (with elicitation on, also the fine-tuned copy and its
    gradients); once: the task's shared ``data``. Shapes come from ``jax.eval_shape``, so
    nothing is allocated but the one instance's hyperparameters. A lower bound: activations
    and XLA's scratch space come on top, so a run above it cannot fit, one below it may not.
    """
    return instances * _instance_bytes(task, config, train_config or TrainConfig()) + _nbytes(task.data)


def _instance_bytes(task: Task, config: Mapping[str, Any], train_config: TrainConfig) -> int:
    """One instance's share of :func:`memory_needed`, the task's shared data left out."""
    hyper = task.hyper(config)
    params = _parameter_shapes(task, hyper)
    optimizer = _optimizer(task, train_config)
    opt_state = jax.eval_shape(lambda p, h: optimizer(h).init(p), params, hyper)
    batch = _batch_shapes(task, hyper, train_config)
    copies = 4 if train_config.elicit_steps else 2
    return copies * _nbytes(params) + _nbytes(opt_state) + _nbytes(batch) + _nbytes(hyper)


def group_size(instances: int, instance_bytes: int) -> int:
    """Instances per group of the compiled loop: all of them on an accelerator; on CPU as many
    as keep a group's arrays within ``_GROUP_BYTES``.

    On CPU a step over every instance at once streams each of its batch-sized arrays through
    memory (1000 superposition models at n = 20: 82 MB a batch), and every compiled call
    page-faults its scratch space in anew (~250 MB, 0.2 s, there). A group whose arrays stay in
    cache runs all of a segment's steps before the next group starts: measured on 2 cores,
    2.0× the model-steps/s for 1000 models at n = 20, 1.4× for 20 at n = 100 or 512 SAEs, and
    within noise where every instance together already fits (80 models at n = 5).
    """
    if jax.default_backend() != "cpu":
        return instances
    return int(np.clip(_GROUP_BYTES // max(instance_bytes, 1), 1, instances))


def _nbytes(tree: PyTree) -> int:
    return sum(int(np.prod(np.shape(leaf), dtype=np.float64)) * np.dtype(leaf.dtype).itemsize
               for leaf in jax.tree.leaves(tree) if hasattr(leaf, "dtype"))


def _device_memory() -> tuple[int, str]:
    """Bytes free where training's arrays live, and its name: an accelerator's own memory (its
    allocator's limit less what is in use), else the host's."""
    stats = jax.local_devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
    if stats and "bytes_limit" in stats:
        return stats["bytes_limit"] - stats.get("bytes_in_use", 0), f"the {jax.default_backend().upper()}"
    return available_bytes(), "this machine"


def _require_device_memory(needed: int, instances: int) -> None:
    """Refuse a run whose estimate exceeds the memory its arrays live in (host or accelerator)."""
    available, where = _device_memory()
    require_memory(needed, what=f"{instances} instances" if instances != 1 else "1 instance", where=where,
                   available=available,
                   fix="use fewer seeds or configs, a smaller batch, or a sweep, which trains in chunks sized to "
                       "memory (parameters, gradients, optimizer state, one batch)")


# The task's shared data is an argument of the traced function, as in training: a task
# indexes it with traced indices, which a numpy array bound as a constant would refuse.
def _parameter_shapes(task: Task, hyper: PyTree) -> PyTree:
    return jax.eval_shape(lambda k, h, d: bind_data(task, d).init(k, h), jax.random.key(0), hyper, task.data)


def _batch_shapes(task: Task, hyper: PyTree, train_config: TrainConfig) -> PyTree:
    if task.sample is None:
        return ()
    batch_size = _batch_size(task, train_config)
    return jax.eval_shape(lambda k, h, d: bind_data(task, d).sample(k, h, batch_size),
                          jax.random.key(0), hyper, task.data)


def _seed_indices(seeds: int | Iterable[int], seed: int) -> Sequence[int]:
    """The seed indices ``seeds`` names, after checking them and the base ``seed``; a count gives
    a ``range``, so that a count typed by mistake is refused before a list of it is built."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not -MAX_SEED - 1 <= seed <= MAX_SEED:
        raise ConfigError(f"seed={seed!r}: expected an integer from {-MAX_SEED - 1} to {MAX_SEED} "
                          "(JAX draws from 32-bit seeds)")
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"seeds={seeds}: need at least 1 seed per config")
        return range(seeds)
    try:
        indices = list(seeds)
    except TypeError:
        raise ConfigError(f"seeds={seeds!r}: expected a count ≥ 1 or a list of seed indices") from None
    bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < 2**32]
    if bad:
        raise ConfigError(f"seeds: seed index {bad[0]!r} is not an integer from 0 to {2**32 - 1}")
    return [int(i) for i in indices]


def _instances(task, configs, seeds, seed):
    """Instances (config-major), their stacked hyperparameters, and their keys."""
    seed_indices = list(_seed_indices(seeds, seed))
    if not configs or not seed_indices:
        raise ConfigError(f"nothing to train: {len(configs)} configs × {len(seed_indices)} seeds")
    instances = [Instance(dict(c), s) for c in configs for s in seed_indices]
    hyper_per_config = [task.hyper(c) for c in configs]  # validates each config once
    # Stacked on the host: jnp.stack of thousands of arguments compiles for seconds.
    hyper = jax.tree.map(lambda *leaves: np.repeat(np.stack(leaves), len(seed_indices), axis=0),
                         *hyper_per_config)
    digests = np.repeat([_config_digest(task, c) for c in configs], len(seed_indices))
    keys = _instance_keys(seed, digests.astype(np.uint32),
                          np.tile(np.asarray(seed_indices, np.uint32), len(configs)))
    return instances, hyper, keys


_stream = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))


def compiled_for(task: Task, key: tuple, build: Callable[[], Callable]) -> Callable:
    """The compiled function ``build()`` makes for ``task`` and ``key``, made once per task.

    A jitted function traces and lowers on its first call, ~1 s for a small task even when
    the persistent cache then skips XLA's compile; a fresh closure per train() call would
    pay that on every call (every chunk of a sweep, every study). Keyed on the task object's
    identity, as ``jax.jit`` keys on a function's: task factories return the same object for
    the same spec, and a task edited in a notebook is a new object. The task itself is kept
    with its functions, so its id cannot be reused while the entry lives.
    """
    entry = _COMPILED.pop(id(task), None) or (task, {})
    _COMPILED[id(task)] = entry
    while len(_COMPILED) > _TASKS_KEPT:
        _COMPILED.popitem(last=False)
    functions = entry[1]
    if key not in functions:
        functions[key] = build()
    return functions[key]


_COMPILED: collections.OrderedDict[int, tuple[Task, dict[tuple, Callable]]] = collections.OrderedDict()


def _init(task):
    """``init(hyper, keys, data) -> (params, state)``: every instance's initial weights and
    task state (``()`` for a stateless task)."""

    def build():
        @jax.jit
        def init_all(hyper, keys, data):
            bound = bind_data(task, data)
            params = jax.vmap(bound.init)(_stream(keys, _INIT), hyper)
            if task.init_state is None:
                return params, ()
            return params, jax.vmap(bound.init_state)(_stream(keys, _STATE), hyper)

        return init_all

    return compiled_for(task, ("init",), build)


def _train(task, configs, *, seeds, seed, config, group, progress, on_evaluation) -> TrainResult:
    # -- 1. set-up: instances, their hyperparameters and keys; the shared data, placed once ----
    instances, hyper, keys = _instances(task, configs, seeds, seed)
    batch_size = _batch_size(task, config)
    data = None if task.data is None else jax.device_put(task.data)

    # -- 2. init: weights, task state, optimizer state -------------------------------------------
    optimizer = _optimizer(task, config)
    params, state = _init(task)(hyper, keys, data)
    init_optimizer = compiled_for(task, ("optimizer init", _optimizer_key(task, config)), lambda: jax.jit(
        jax.vmap(lambda params, hyper: optimizer(hyper).init(params))))
    carry = Carry(params, init_optimizer(params, hyper), state, jnp.full(len(instances), jnp.nan, jnp.float32))

    # -- 3. compiled functions: the step loop, evaluation, elicitation ---------------------------
    run_segment = compiled_for(task, ("segment", _optimizer_key(task, config), batch_size),
                            lambda: _segment_runner(task, optimizer, batch_size))
    evaluate = _evaluator(task, config, batch_size)
    data_keys, eval_keys, elicit_keys = (_stream(keys, s) for s in (_DATA, _EVAL, _ELICIT))

    flops_per_step = task.flops_per_step(batch_size)
    started = time.perf_counter()
    evaluations: list[Evaluation] = []

    def record(point: EvalPoint) -> None:
        previous = evaluations[-1].step if evaluations else point.step
        tuning = elicitation_steps(config.elicit_steps, config.elicit_fraction, point.step - previous)
        raw, elicited = evaluate(carry.params, hyper, carry.state, data, eval_keys, elicit_keys, tuning,
                                 group=group)
        flops = flops_per_step * point.step
        evaluations.append(Evaluation(
            step=point.step, trigger=point.trigger, flops=flops,
            compute=config.efficiency * flops, wall_time=time.perf_counter() - started,
            raw=jax.tree.map(np.asarray, raw), elicited=jax.tree.map(np.asarray, elicited),
            elicit_steps=tuning if config.elicit_steps else 0,
        ))

    def act_on_population() -> None:
        # Between compiled segments a study may rewrite the whole population (population-based
        # training); the final evaluation is left alone so it describes the returned weights.
        nonlocal carry, hyper
        if on_evaluation is None or evaluations[-1].step == config.steps:
            return
        carry, hyper = _apply(on_evaluation, carry, hyper, evaluations[-1], seed)

    # -- 4. evaluation cadence: run compiled segments up to each planned evaluation --------------
    record(EvalPoint(0, "init"))
    act_on_population()
    step, segment_steps, last_eval_time = 0, 1, time.perf_counter()
    with (StepCallback(progress) if callable(progress) else LazyProgress(config.steps, enabled=progress)) as bar:
        while (planned := next_evaluation(evaluations[-1].step, config.steps,
                                          compute_factor=config.compute_factor,
                                          every_steps=config.eval_every_steps)):
            stop = min(planned.step, step + segment_steps)
            tic = time.perf_counter()
            carry = jax.block_until_ready(run_segment(carry, data_keys, hyper, data, step, stop, group=group))
            seconds_per_step = (time.perf_counter() - tic) / (stop - step)
            step = stop
            budget = min(_SEGMENT_SECONDS, (config.eval_every_seconds or np.inf) / 4)
            segment_steps = int(np.clip(budget / seconds_per_step, 1, 4 * segment_steps))
            if stop > 1:  # the first segment's time is mostly compilation: no basis for an ETA
                losses = np.asarray(carry.last_loss)
                finite = losses[np.isfinite(losses)]  # a diverged instance must not hide the rest
                bar.update(step, loss=float(finite.mean()) if finite.size else float("nan"),
                           eta_seconds=seconds_per_step * (config.steps - step))

            if step == planned.step:
                record(planned)
            elif config.eval_every_seconds and time.perf_counter() - last_eval_time >= config.eval_every_seconds:
                record(EvalPoint(step, "time"))
            else:
                continue
            act_on_population()
            last_eval_time = time.perf_counter()

    # -- 5. finish -------------------------------------------------------------------------------
    return TrainResult(task=task, config=config, instances=instances,
                       params=jax.device_get(carry.params), evaluations=evaluations,
                       state=jax.device_get(carry.state) if task.init_state else None,
                       hyper=jax.device_get(hyper))


class Carry(NamedTuple):
    """What the compiled loop carries from step to step, every leaf with a ``models`` axis."""

    params: PyTree
    opt_state: PyTree
    state: PyTree  # the task's own state; () for a stateless task
    last_loss: jax.Array  # (models,) the latest training loss, for the progress bar


def _batch_size(task: Task, config: TrainConfig) -> int | None:
    if task.sample is None:
        if config.batch_size is not None:
            raise ConfigError(f"batch_size={config.batch_size}: task {task.name!r} draws its own "
                              "batches (it has no sample function); leave batch_size unset")
        return None
    batch_size = config.batch_size or task.batch_size
    if batch_size is None:
        raise ConfigError(f"task {task.name!r} has no default batch size: set batch_size")
    return batch_size


def _draw(task: Task, key: jax.Array, hyper, batch_size: int | None):
    """A batch from the task's sample, or the key itself for a task that owns its batches."""
    return key if task.sample is None else task.sample(key, hyper, batch_size)


def _loss_with_aux(task: Task):
    """Any task's loss as ``(params, batch, hyper, state) -> (scalar, (aux, new_state))``."""
    if task.init_state is not None:
        def loss(params, batch, hyper, state):
            value, aux, new_state = task.loss(params, batch, hyper, state)
            return value, (aux, new_state)
    elif task.has_aux:
        def loss(params, batch, hyper, state):
            value, aux = task.loss(params, batch, hyper)
            return value, (aux, state)
    else:
        def loss(params, batch, hyper, state):
            return task.loss(params, batch, hyper), ({}, state)
    return loss


def _optimizer(task: Task, config: TrainConfig) -> Callable[[PyTree], optax.GradientTransformation]:
    """``hyper -> optimizer`` for one instance: the task's own, or the one ``config`` names.

    Built inside the compiled step from the instance's traced hyperparameters, so a task's
    optimizer may read a per-instance rate that a population hook changes between segments.
    """
    if task.optimizer is not None:
        return lambda hyper: task.optimizer(config, hyper)
    shared = make_optimizer(config)
    return lambda hyper: shared


def _optimizer_key(task: Task, config: TrainConfig) -> str:
    """Equal for two configs whose :func:`_optimizer` is the same. A task's own optimizer may
    read any field of the config, so then every field counts."""
    return config.model_dump_json() if task.optimizer is not None else optimizer_key(config)


def _segment_runner(task: Task, optimizer: Callable[[PyTree], optax.GradientTransformation],
                    batch_size: int | None):
    """``run(carry, data_keys, hyper, data, start, stop, group)``: steps start..stop−1 of every
    instance, ``group`` instances at a time (see :func:`group_size`), compiled once per group size.

    The bounds are traced, so ``fori_loop`` lowers to one XLA while-loop reused for every
    segment length (a ``lax.scan`` needs a static length and would recompile per segment).
    """

    def one_step(task, params, opt_state, state, hyper, data_key, step):
        # Data for step t comes from the instance's key folded with t: no state to carry, and a
        # resumed or re-segmented run sees exactly the same batches.
        batch = _draw(task, jax.random.fold_in(data_key, step), hyper, batch_size)
        (loss, (_, state)), grads = jax.value_and_grad(_loss_with_aux(task), has_aux=True)(
            params, batch, hyper, state)
        updates, opt_state = optimizer(hyper).update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if task.project is not None:
            params = task.project(params, hyper)
        return Carry(params, opt_state, state, loss)

    @functools.partial(jax.jit, static_argnames="group")
    def run(carry, data_keys, hyper, data, start, stop, group):
        bound = bind_data(task, data)

        def one_instance(args):  # lax.map vmaps it over each group of instances
            carry, hyper, data_key = args
            return jax.lax.fori_loop(start, stop, lambda step, c: one_step(
                bound, c.params, c.opt_state, c.state, hyper, data_key, step), carry)

        # Groups one after another, each through all of the segment's steps; instances never
        # interact, so this is the same computation as every instance in lockstep.
        return jax.lax.map(one_instance, (carry, hyper, data_keys), batch_size=group)

    return run


def _apply(hook, carry: Carry, hyper, evaluation: Evaluation, seed: int):
    """Run a population hook and check that what it returns still fits the compiled loop."""
    population = Population(step=evaluation.step, evaluation=evaluation, params=carry.params,
                            opt_state=carry.opt_state, state=carry.state, hyper=hyper,
                            key=jax.random.fold_in(jax.random.key(seed), evaluation.step))
    changed = hook(population)
    if changed is None:
        return carry, hyper
    for field in ("params", "opt_state", "state", "hyper"):
        before, after = getattr(population, field), getattr(changed, field)
        shapes = [jax.tree.map(lambda leaf: (np.shape(leaf), np.dtype(getattr(leaf, "dtype", type(leaf)))), tree)
                  for tree in (before, after)]
        if jax.tree.structure(before) != jax.tree.structure(after) or shapes[0] != shapes[1]:
            raise TaskError(f"the population hook changed the structure, shapes or dtypes of "
                            f"{field} at step {evaluation.step}; it may only change values")
    return (Carry(changed.params, changed.opt_state, changed.state, carry.last_loss),
            jax.tree.map(np.asarray, changed.hyper))


def _evaluator(task: Task, config: TrainConfig, batch_size: int | None):
    """``evaluate(params, hyper, state, data, eval_keys, elicit_keys, elicit_steps, group) -> (raw, elicited)``,
    compiled once per task and the config fields it reads (the elicitation's length is an
    argument: one compilation serves every budget)."""
    reads = config.model_dump(include={"eval_batches", "elicit_steps", "elicit_lr"})
    return compiled_for(task, ("evaluate", batch_size, *sorted(reads.items())),
                     lambda: _build_evaluator(task, config, batch_size))


def _build_evaluator(task: Task, config: TrainConfig, batch_size: int | None):
    """``evaluate(params, hyper, state, data, eval_keys, elicit_keys, elicit_steps, group) -> (raw, elicited)``,
    ``group`` instances at a time (all by default; see :func:`group_size`).

    The loss is the task's exact expected loss where it has one; otherwise it is measured on
    held-out batches drawn from a key fixed per instance, so every evaluation of a run sees the
    same data and differences between evaluations are the model's. A loss's auxiliary outputs
    are the mean over those batches.
    """
    held_out_aux = task.has_aux or task.init_state is not None

    def measure(task, params, hyper, state, eval_key):
        def held_out(index):
            batch = _draw(task, jax.random.fold_in(eval_key, index), hyper, batch_size)
            return _loss_with_aux(task)(params, batch, hyper, state)[:2]

        values = {}
        if task.exact_loss is None or held_out_aux:
            losses, (aux, _) = jax.lax.map(held_out, jnp.arange(config.eval_batches))
            values = {"loss": jnp.mean(losses), **jax.tree.map(lambda a: jnp.mean(a, axis=0), aux)}
        if task.exact_loss is not None:
            values["loss"] = task.exact_loss(params, hyper)
        metrics = task.metrics(params, hyper, jax.random.fold_in(eval_key, _METRIC_KEY))
        if clash := set(values) & set(metrics):
            raise TaskError(f"task {task.name!r}: {sorted(clash)} is both a metric and an output "
                            "of the loss; rename one")
        return {**values, **metrics}

    def elicit(task, params, hyper, state, elicit_key, steps):
        # A brief fine-tune of a copy: the task says which parameters may move.
        mask = task.elicit_mask(params) if task.elicit_mask else jax.tree.map(lambda _: True, params)
        labels = jax.tree.map(lambda tune: "tune" if tune else "freeze", mask)
        # Cosine decay to 0: a constant rate would leave the tuned copy jittering around the
        # optimum, and the elicited score a little worse than the raw one at convergence.
        # The length is traced (optax's cosine schedule wants a Python int), so the schedule is
        # written out: elicit_lr · ½(1 + cos(π t / steps)).
        def lr(t):
            return config.elicit_lr * 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(t / jnp.maximum(steps, 1), 1.0)))

        tuner = optax.multi_transform({"tune": optax.adam(lr), "freeze": optax.set_to_zero()}, labels)
        loss = _loss_with_aux(task)

        def tune_step(index, carry):
            params, tuner_state = carry
            batch = _draw(task, jax.random.fold_in(elicit_key, index), hyper, batch_size)
            grads, _ = jax.grad(loss, has_aux=True)(params, batch, hyper, state)
            updates, tuner_state = tuner.update(grads, tuner_state, params)
            params = optax.apply_updates(params, updates)
            return (task.project(params, hyper) if task.project else params), tuner_state

        tuned, _ = jax.lax.fori_loop(0, steps, tune_step, (params, tuner.init(params)))
        return tuned

    @functools.partial(jax.jit, static_argnames="group")
    def evaluate(params, hyper, state, data, eval_keys, elicit_keys, elicit_steps, group=None):
        bound = bind_data(task, data)

        def evaluate_one(args):  # lax.map vmaps it over each group of instances (all by default)
            params, hyper, state, eval_key, elicit_key = args
            raw = measure(bound, params, hyper, state, eval_key)
            if not config.elicit_steps:
                return raw, {}
            tuned = elicit(bound, params, hyper, state, elicit_key, elicit_steps)
            return raw, measure(bound, tuned, hyper, state, eval_key)

        instances = len(eval_keys)
        return jax.lax.map(evaluate_one, (params, hyper, state, eval_keys, elicit_keys),
                           batch_size=min(group or instances, instances))

    return evaluate
