"""The superposition toy model: a tied-weight ReLU autoencoder on sparse features.

Elhage et al. (2022), "Toy Models of Superposition", §2 (https://transformer-circuits.pub/2022/toy_model).

Data, for one instance with ``n_features`` features: each ``x_i`` is 0 with probability
``S = 1 − p`` and otherwise drawn from U[0, 1), independently, fresh every step. Optional
feature groups (the paper's §7): a *correlated* group switches all its members on together; an
*anticorrelated* group has at most one member on at a time. Every feature's marginal
probability of being on is still ``p``.

Model::

    h  = W x                 # (d_hidden,)        W: (d_hidden, n_features)
    x̂  = ReLU(Wᵀ h + b)      # (n_features,)      "linear" output drops the ReLU;
                             #                     "untied" uses a separate W_dec for Wᵀ

Loss: importance-weighted MSE, ``L = E_x[(1/n) Σ_i I_i (x_i − x̂_i)²]``.

Per-instance config (what may differ between instances trained side by side)::

    {"feature_probability": 0.05,  # p, or a list of n per-feature values, each in (0, 1]
     "importance": 0.9}            # ratio r (I_i = r^i; 1 = equal), or a list of n weights

Example:
    >>> import jax
    >>> task = superposition(n_features=5, n_hidden=2)
    >>> hyper = task.hyper({"feature_probability": 0.05, "importance": 1.0})
    >>> params = task.init(jax.random.key(0), hyper)
    >>> params["W"].shape, params["b"].shape
    ((2, 5), (5,))
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import pydantic
from jaxtyping import Array, Float

from toylab import metrics, rng
from toylab.errors import ConfigError, validated
from toylab.memory import require_memory
from toylab.tasks.base import Task

__all__ = ["superposition", "SuperpositionSpec", "importance_weights"]


class SuperpositionSpec(pydantic.BaseModel, frozen=True, extra="forbid"):
    """Static hyperparameters shared by every instance of one superposition task."""

    n_features: int = pydantic.Field(5, ge=1, description="n: number of input features")
    n_hidden: int = pydantic.Field(2, ge=1, description="m: width of the bottleneck h")
    output: Literal["relu", "linear"] = "relu"  # x̂ = ReLU(·) as in the paper, or no ReLU
    tied: bool = True  # decoder is Wᵀ (the paper) or a separate W_dec
    correlated_groups: int = pydantic.Field(0, ge=0)  # groups whose members are on together
    anticorrelated_groups: int = pydantic.Field(0, ge=0)  # groups with at most one member on
    group_size: int = pydantic.Field(2, ge=2)  # members per (anti)correlated group
    # Initial weight scale, see superposition(): "xavier" per instance, std √(2/(n+m)), or the
    # reference notebook's, std √(2/(m(n+I))) for a notebook run of I = init_instances instances.
    init: Literal["xavier", "notebook"] = "xavier"
    init_instances: int = pydantic.Field(1, ge=1)
    # The data's random numbers: toylab's counter hash (toylab.rng, fused into the step, several
    # times faster on CPU) or JAX's threefry, which toylab used before and which reproduces
    # earlier runs exactly.
    rng: Literal["hash", "threefry"] = "hash"

    @pydantic.field_validator("n_features", "n_hidden", "correlated_groups", "anticorrelated_groups",
                              "group_size", "init_instances", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):  # pydantic reads True as 1
            raise ValueError("expected an integer, not a boolean")
        return value

    @pydantic.model_validator(mode="after")
    def _groups_fit(self) -> SuperpositionSpec:
        grouped = (self.correlated_groups + self.anticorrelated_groups) * self.group_size
        if grouped > self.n_features:
            raise ValueError(
                f"{grouped} grouped features do not fit in n_features={self.n_features}; "
                "use fewer groups or more features"
            )
        if self.init == "xavier" and self.init_instances != 1:
            raise ValueError(f"init_instances={self.init_instances} is the notebook's instance count; "
                             "it needs init='notebook'")
        return self

    def initial_std(self) -> float:
        """The standard deviation of every initial weight (see :func:`superposition`)."""
        n, m = self.n_features, self.n_hidden
        if self.init == "notebook":
            return math.sqrt(2.0 / (m * (n + self.init_instances)))
        return math.sqrt(2.0 / (n + m))


class _Instance(pydantic.BaseModel, frozen=True, extra="forbid"):
    feature_probability: float | list[float]
    importance: float | list[float] = 1.0


# Training runs in float32: a larger importance weight is infinite there, and so is the loss.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def importance_weights(importance: float | Sequence[float], n_features: int) -> np.ndarray:
    """Per-feature importance ``I``: a ratio ``r`` gives ``I_i = r^i``; a list is taken as is.

    Raises:
      ConfigError: a ratio that is not a finite number > 0, a list of the wrong length or with
        a negative or non-finite weight, or weights beyond float32 (``r^i`` for large ``i``).

    >>> importance_weights(0.5, 3).tolist()
    [1.0, 0.5, 0.25]
    """
    if isinstance(importance, (int, float, np.integer, np.floating)) and not isinstance(importance, bool):
        r = float(importance)
        if not (r > 0 and np.isfinite(r)):
            raise ConfigError(f"importance={importance!r}: the ratio r in I_i = r^i must be a finite number > 0")
        # The largest weight, r^0 = 1 or r^(n−1), checked in logs before n weights are computed.
        if (n_features - 1) * np.log(r) > np.log(_FLOAT32_MAX):
            raise ConfigError(f"importance={importance!r}: I_i = r^i reaches {r:g}^{n_features - 1}, beyond "
                              f"float32's largest number ({_FLOAT32_MAX:.3g}), the precision training runs in")
        return np.float64(r) ** np.arange(n_features, dtype=np.float64)
    try:
        weights = np.asarray(importance, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"importance={importance!r}: expected a ratio r or n_features={n_features} "
                          "numbers") from None
    if weights.shape != (n_features,):
        raise ConfigError(
            f"importance has {weights.size} values, expected n_features={n_features} "
            "(or one ratio r for I_i = r^i)"
        )
    if not np.all(np.isfinite(weights) & (weights >= 0) & (weights <= _FLOAT32_MAX)):
        bad = float(weights[~(np.isfinite(weights) & (weights >= 0) & (weights <= _FLOAT32_MAX))][0])
        raise ConfigError(f"importance={weights.tolist()}: weight {bad!r} is not a finite number in "
                          f"[0, {_FLOAT32_MAX:.3g}] (float32, the precision training runs in)")
    return weights


def _feature_probability(value: float | Sequence[float], n_features: int) -> np.ndarray:
    if np.ndim(value) == 0:
        # One value for every feature: checked once, then spread (no n-sized temporaries).
        _feature_probability([value], 1)
        return np.full(n_features, value, dtype=np.float64)
    probability = np.asarray(value, dtype=np.float64)
    if probability.shape != (n_features,):
        raise ConfigError(
            f"feature_probability has {probability.size} values, expected 1 or "
            f"n_features={n_features}"
        )
    bad = ~((probability > 0) & (probability <= 1))
    if bad.any():
        raise ConfigError(
            f"feature_probability={float(probability[bad][0])!r} is outside (0, 1]: it is the chance "
            "1 − S that a feature is non-zero"
        )
    return probability


def superposition(
    n_features: int = 5,
    n_hidden: int = 2,
    *,
    output: Literal["relu", "linear"] = "relu",
    tied: bool = True,
    correlated_groups: int = 0,
    anticorrelated_groups: int = 0,
    group_size: int = 2,
    init: Literal["xavier", "notebook"] = "xavier",
    init_instances: int = 1,
    rng: Literal["hash", "threefry"] = "hash",
) -> Task:
    """Build the superposition task (Elhage et al. 2022) for ``n_features`` → ``n_hidden``.

    Features ``0 .. correlated_groups·group_size − 1`` form the correlated groups, the next
    ``anticorrelated_groups·group_size`` the anticorrelated ones, the rest are independent.

    Initial weights are i.i.d. normal with mean 0, the bias 0. ``init="xavier"`` (the
    default) is Xavier-normal for one instance's (m, n) matrix: std = √(2/(n+m)), whatever
    else trains beside it. ``init="notebook"`` is the reference notebook's scale: it calls
    ``nn.init.xavier_normal_`` on its whole ``(instances, n, m)`` tensor, whose fans PyTorch
    computes as n·m and I·m, so std = √(2/(m(n+I))) with I = ``init_instances``; it depends
    on how many instances the notebook trained at once (0.62× xavier's at n=5, m=2, I=4;
    0.22× at n=200, m=20, I=20).

    The data's uniform numbers come from ``rng``: ``"hash"`` (the default), toylab's counter
    hash (:mod:`toylab.rng`), which XLA fuses into the step; or ``"threefry"``, JAX's default
    generator, which toylab used before and which reproduces runs made then exactly.

    Raises:
      ConfigError: a size ≤ 0, an unknown output or init, groups that do not fit, or
        ``init_instances`` ≠ 1 without ``init="notebook"``.
    """
    spec = validated(
        SuperpositionSpec,
        n_features=n_features,
        n_hidden=n_hidden,
        output=output,
        tied=tied,
        correlated_groups=correlated_groups,
        anticorrelated_groups=anticorrelated_groups,
        group_size=group_size,
        init=init,
        init_instances=init_instances,
        rng=rng,
    )
    return _build(spec)


# One Task object per spec: the trainer keeps its compiled functions per task object, so a
# second run of the same task skips tracing (see toylab.train.trainer.compiled_for).
@functools.lru_cache(maxsize=32)
def _build(spec: SuperpositionSpec) -> Task:
    n, m, g = spec.n_features, spec.n_hidden, spec.group_size
    # Checked before anything of size n is built (the group layout, each instance's settings):
    # one model's weights and their gradient (float32), and its per-feature settings with the
    # float64 temporaries that compute them.
    weights = m * n * (1 if spec.tied else 2) + n
    require_memory(2 * 4 * weights + 48 * n, what=f"n_features={n} × n_hidden={m}: one model's weights, "
                   "gradients and per-feature settings", fix="use fewer features or hidden dimensions")
    layout = _GroupLayout.build(spec)
    uniform = rng.uniform if spec.rng == "hash" else jax.random.uniform

    def hyper(config: Mapping[str, Any]) -> dict[str, np.ndarray]:
        instance = validated(_Instance, **config)
        probability = _feature_probability(instance.feature_probability, n)
        # An anticorrelated group is "on" with probability g·p, which must be a probability.
        overfull = layout.is_anticorrelated & (probability * g > 1)
        if overfull.any():
            raise ConfigError(
                f"feature_probability={float(probability[overfull][0])!r} is too dense for an "
                f"anticorrelated group of {g}: needs p ≤ 1/{g}"
            )
        return {
            "feature_probability": probability.astype(np.float32),
            "importance": importance_weights(instance.importance, n).astype(np.float32),
        }

    def init(key: jax.Array, hyper: dict[str, Array]) -> dict[str, Array]:
        del hyper  # the initial weights do not depend on the data distribution
        key_encoder, key_decoder = jax.random.split(key)
        std = spec.initial_std()
        params = {
            "W": std * jax.random.normal(key_encoder, (m, n)),  # (d_hidden, n_features)
            "b": jnp.zeros((n,)),  # (n_features,)
        }
        if not spec.tied:
            params["W_dec"] = std * jax.random.normal(key_decoder, (n, m))
        return params

    def sample(key: jax.Array, hyper: dict[str, Array], batch_size: int) -> Float[Array, "batch n_features"]:
        return layout.sample(key, hyper["feature_probability"], batch_size, uniform)

    def reconstruct(params: dict[str, Array], x: Float[Array, "batch n_features"]) -> Float[Array, "batch n_features"]:
        h = jnp.einsum("hf,bf->bh", params["W"], x)  # (batch, d_hidden)
        W_dec = params["W_dec"] if not spec.tied else params["W"].T  # (n_features, d_hidden)
        pre = jnp.einsum("fh,bh->bf", W_dec, h) + params["b"][None, :]  # (batch, n_features)
        return jax.nn.relu(pre) if spec.output == "relu" else pre

    def loss(params: dict[str, Array], x: Float[Array, "batch n_features"], hyper: dict[str, Array]) -> Array:
        error = (x - reconstruct(params, x)) ** 2  # (batch, n_features)
        return jnp.mean(hyper["importance"][None, :] * error)

    def measure(params: dict[str, Array], hyper: dict[str, Array], key: jax.Array) -> dict[str, Array]:
        del hyper, key  # measures of the weights alone
        W = params["W"]
        return {
            "features_per_dimension": metrics.features_per_dimension(W),
            "n_represented": metrics.n_represented(W).astype(jnp.float32),
            "bias_mean": jnp.mean(params["b"]),
        }

    def elicit_mask(params: dict[str, Array]) -> dict[str, bool]:
        # Elicitation before an evaluation, for this model: refit the bias with every weight matrix frozen.
        return {name: name == "b" for name in params}

    # Forward FLOPs per example: encode 2mn, decode 2mn, bias + ReLU 2n, weighted squared
    # error and its mean 4n (multiply-adds count as 2); a step is 3 forward passes.
    forward_flops = 4.0 * m * n + 6.0 * n
    return Task(
        name="superposition",
        # The default init is left out of the spec: the spec keys every instance's random
        # stream (and a results store's runs), which must not change for existing runs.
        # Threefry, toylab's first generator, is left out too, so that the runs of stores written
        # before toylab.rng keep their keys and resume exactly.
        spec=spec.model_dump(exclude=_defaults_of_old_runs(spec)),
        hyper=hyper,
        init=init,
        sample=sample,
        loss=loss,
        flops_per_step=lambda batch_size: 3.0 * forward_flops * batch_size,
        metrics=measure,
        elicit_mask=elicit_mask,
        batch_size=1024,  # Elhage et al. (2022)
    )


def _defaults_of_old_runs(spec: SuperpositionSpec) -> set[str]:
    """Spec fields left out of the task's spec (which keys each instance's random streams and a
    store's runs) when they hold what toylab did before the field existed."""
    left_out = {"init", "init_instances"} if spec.init == "xavier" else set()
    return left_out | ({"rng"} if spec.rng == "threefry" else set())


class _GroupLayout:
    """Static index arrays that let one uniform draw per feature generate grouped features.

    One draw ``u ~ U[0,1)`` per feature is enough. For an independent feature,
    ``x = u/p`` if ``u < p`` else 0: given ``u < p``, ``u/p`` is exactly U[0,1). An
    anticorrelated group of size g reads its leader's draw as ``r = u/p ∈ [0, g)`` when
    ``u < g·p``: ``floor(r)`` picks the member uniformly and ``r − floor(r)`` is its U[0,1)
    magnitude. A correlated group is on when its leader's ``u < p``; members other than the
    leader use their own draw, unconditioned, as magnitude. Half the random numbers of the
    usual two-draw recipe, the same distribution (to float32 resolution of ``u``).
    """

    def __init__(self, leader, position, size, is_correlated, is_anticorrelated):
        self.leader = leader  # (n_features,) index of the feature whose draw decides this one
        self.position = position  # (n_features,) index within its group (0 when independent)
        self.size = size  # (n_features,) group size (1 when independent)
        self.is_correlated = is_correlated
        self.is_anticorrelated = is_anticorrelated

    @classmethod
    def build(cls, spec: SuperpositionSpec) -> _GroupLayout:
        n, g = spec.n_features, spec.group_size
        leader, position, size = np.arange(n), np.zeros(n, int), np.ones(n, int)
        kinds = np.zeros(n, int)  # 0 independent, 1 correlated, 2 anticorrelated
        start = 0
        for kind, count in ((1, spec.correlated_groups), (2, spec.anticorrelated_groups)):
            for _ in range(count):
                members = np.arange(start, start + g)
                leader[members], position[members], size[members] = start, np.arange(g), g
                kinds[members] = kind
                start += g
        # Position and size are compared with floor(u/p), a float: store them as floats.
        return cls(leader, position.astype(np.float32), size.astype(np.float32), kinds == 1, kinds == 2)

    def sample(self, key: jax.Array, probability: Array, batch_size: int, uniform=jax.random.uniform) -> Array:
        n = self.leader.shape[0]
        u = uniform(key, (batch_size, n))  # (batch, n_features)
        if (self.size == 1).all():  # no groups: the common case, and the hot loop of training
            r = u / probability[None, :]
            return jnp.where(r < 1.0, r, 0.0)
        lead = u[:, self.leader]
        r = lead / probability[self.leader][None, :]  # (batch, n_features), in [0, size) when "on"
        size, position = self.size[None, :], self.position[None, :]
        member = jnp.minimum(jnp.floor(r), size - 1)
        exclusive = jnp.where((r < size) & (member == position), r - member, 0.0)
        if not self.is_correlated.any():
            return exclusive
        is_leader = (self.leader == np.arange(n))[None, :]
        together = jnp.where(r < 1.0, jnp.where(is_leader, r, u), 0.0)
        return jnp.where(self.is_correlated[None, :], together, exclusive)
