"""Multi-component learning: fit a matrix target with a product of matrices.

Jermyn & Shlegeris (2022), "Multi-Component Learning and S-Curves"; theory from Saxe,
McClelland & Ganguli (2014). A model ``Z = F_1 F_2 ⋯ F_N`` (N ≥ 2 components) learns a d×d
target ``C``; every target singular value needs all components to be right at once, so each is
learned in its own S-curve and the loss is a staircase of plateaus.

Target: ``C = U diag(s) Vᵀ`` with random orthogonal ``U, V`` and ``rank`` non-zero singular
values, given or drawn from U[1, 4) (sorted, largest first), all from ``target_seed``; or an
explicit d×d ``target``.

Losses (``Z`` and ``C`` of shape (d, d)):

- ``mse``:     ``L = ½ ‖C − Z‖_F²``;
- ``ce``:      ``C`` and ``Z`` are the logits of ONE softmax over all d² entries,
  ``L = KL(p_C ‖ p_Z) = −Σ p_C log p_Z − H(p_C)``: cross-entropy offset by the target's
  entropy, so ``Z = C`` has zero loss (so does ``Z = C + c`` for any constant c);
- ``ce-rows``: the same with a softmax per row, averaged over rows;
- ``ce-prob``: ``C`` is itself a probability distribution over the d² entries (entries ≥ 0,
  summing to 1), ``L = KL(C ‖ softmax(vec Z))``. A generated target is a non-negative rank-k
  matrix ``Σ_k s_k |a_k| |b_k|ᵀ`` normalised to sum 1.

Training is full-batch (the loss above, exactly) unless ``entries_per_step`` is set: then each
step sees a minibatch of target entries, drawn uniformly for ``mse`` (``½ d² · mean`` of the
squared errors: an unbiased estimate) and from the target distribution for the cross-entropy
losses (the mean of ``−log p_Z`` plus the fixed negative entropy: an unbiased estimate of KL).

Per-instance config (may differ between instances trained side by side)::

    {"rank": 2,                     # or "singular_values": [3, 2, 1] (its length is the rank)
     "init_scale": 1e-3,            # ε
     "target_seed": 0}              # U, V (and random singular values); or "target": d×d

Init: ``random`` draws every entry of every component from N(0, ε²); ``aligned`` starts the
components on the target's singular vectors, balanced: ``F_1 = ε U``, ``F_i = ε I`` inside,
``F_N = ε Vᵀ``, so every mode starts at strength ``u₀ = ε^N`` (Saxe et al.'s setting).

Example:
    >>> import jax
    >>> task = lowrank(d=4, components=2, init="aligned")
    >>> hyper = task.hyper({"singular_values": [3.0, 1.0], "init_scale": 0.1})
    >>> params = task.init(jax.random.key(0), hyper)
    >>> [f.shape for f in params["factors"]]
    [(4, 4), (4, 4)]
    >>> round(float(task.metrics(params, hyper, None)["mode_strength"][0]), 6)  # ε² = 0.01
    0.01
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import pydantic
from jaxtyping import Array, Float

from toylab.errors import ConfigError, validated
from toylab.memory import require_memory
from toylab.metrics import lowrank as lowrank_metrics
from toylab.tasks.base import Task

__all__ = ["lowrank", "LowRankSpec", "LOSSES", "target_matrix"]

LOSSES = ("mse", "ce", "ce-rows", "ce-prob")
# Learned vectors (columns of the first component) and target directions compared for
# competition ("bumps"): the first 8 of each, enough to see the top modes interact.
_OVERLAP_MODES = 8


class LowRankSpec(pydantic.BaseModel, frozen=True, extra="forbid"):
    """Static hyperparameters shared by every instance of one low-rank task."""

    d: int = pydantic.Field(100, ge=1)  # target and model are d × d
    components: int = pydantic.Field(2, ge=2)  # N: Z is a product of N matrices
    width: int | None = pydantic.Field(None, ge=1)  # inner width of the product; None = d
    loss: Literal["mse", "ce", "ce-rows", "ce-prob"] = "mse"
    init: Literal["random", "aligned"] = "random"
    entries_per_step: int | None = pydantic.Field(None, ge=1)  # None = full-batch gradient

    @pydantic.field_validator("d", "components", "width", "entries_per_step", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):  # pydantic reads True as 1
            raise ValueError("expected an integer, not a boolean")
        return value

    @pydantic.model_validator(mode="after")
    def _aligned_fits(self) -> LowRankSpec:
        if self.init == "aligned" and (self.width or self.d) > self.d:
            raise ValueError(f"width={self.width} > d={self.d}: aligned init needs width ≤ d")
        return self


# Training runs in float32: targets, losses and initial products must be normal float32 numbers.
# Python floats, so that comparing a larger number with them does not cast it to float32.
_FLOAT32_MAX, _FLOAT32_TINY = float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny)
# A singular value below this fraction of the largest is indistinguishable from 0 in the
# target's SVD (float64 rounding of a product of orthogonal matrices): hyper() zeroes it.
_RELATIVE_ZERO = 1e-9


class _Instance(pydantic.BaseModel, frozen=True, extra="forbid"):
    rank: int | None = pydantic.Field(None, ge=1)
    singular_values: list[float] | None = None
    init_scale: float = pydantic.Field(1e-3, gt=0, allow_inf_nan=False)
    target_seed: int = pydantic.Field(0, ge=0)
    target: Any = None  # an explicit d × d matrix (array-like)


def _orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    # QR of a Gaussian matrix, with R's diagonal made positive: Haar-distributed (Mezzadri 2007).
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def target_matrix(d: int, loss: str, config: Mapping[str, Any]) -> np.ndarray:
    """The d×d target an instance config describes (float64), validated.

    Raises:
      ConfigError: rank > d, a non-positive or too long list of singular values, a target of
        the wrong shape or with NaNs, or (``ce-prob``) a target that is not a distribution.
    """
    instance = validated(_Instance, **config)
    if instance.target is not None:
        if instance.rank is not None or instance.singular_values is not None:
            raise ConfigError("give either target or rank/singular_values, not both")
        try:
            target = np.asarray(instance.target, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"target of type {type(instance.target).__name__}: expected a d × d matrix "
                              f"of numbers, d = {d}") from None
        if target.shape != (d, d):
            raise ConfigError(f"target has shape {target.shape}, expected (d, d) = ({d}, {d})")
        if not np.isfinite(target).all():
            raise ConfigError("target contains NaN or inf")
        if loss == "ce-prob":
            _check_distribution(target)
        else:
            largest = float(np.max(np.abs(target)))
            if largest < _FLOAT32_TINY:
                raise ConfigError(f"target's largest entry is {largest:g}: a target must have an entry of at "
                                  f"least float32's smallest normal number ({_FLOAT32_TINY:.2g}); "
                                  "below it the float32 target is 0 and there is nothing to learn")
            _check_scale(loss, "target", largest, _frobenius(target.ravel()))
        return target
    s = _singular_values(d, instance)
    rng = np.random.default_rng(instance.target_seed)
    if loss == "ce-prob":
        # Non-negative rank-k factors keep every entry ≥ 0; normalised, a distribution. The
        # normalisation makes the target independent of the scale of s: dividing s by its
        # largest value first is exact, and keeps s = 1e308 from overflowing the sum.
        a, b = np.abs(rng.standard_normal((2, d, s.size)))
        target = (a * (s / s.max())) @ b.T
        return target / target.sum()
    if instance.singular_values is not None:
        # |C_ij| ≤ s_max and ‖C‖_F = ‖s‖: checked before the target is built.
        label = f"singular_values={instance.singular_values}"
        if s.min() < _FLOAT32_TINY:
            raise ConfigError(f"{label}: {s.min():g} is below float32's smallest normal number "
                              f"({_FLOAT32_TINY:.2g}), the precision training runs in; it would read as 0")
        _check_scale(loss, label, float(s.max()), _frobenius(s))
    U, V = _orthogonal(rng, d), _orthogonal(rng, d)
    return (U[:, : s.size] * s) @ V[:, : s.size].T


def _frobenius(values: np.ndarray) -> float:
    """‖values‖₂ in float64 without overflow of the squares (inf only when the norm is)."""
    largest = float(np.max(np.abs(values)))
    return 0.0 if largest == 0 else largest * float(np.linalg.norm(values / largest))


def _check_scale(loss: str, label: str, largest_entry: float, norm: float) -> None:
    """The target must be finite in float32, where training runs; for mse also its loss ½‖C‖²."""
    if loss == "mse" and 0.5 * norm * norm > _FLOAT32_MAX:
        raise ConfigError(f"{label}: the mse loss at Z = 0, ½‖C‖² = {0.5 * norm * norm:.3g}, is beyond "
                          f"float32's largest number ({_FLOAT32_MAX:.3g}), the precision training runs in")
    if largest_entry > _FLOAT32_MAX:
        raise ConfigError(f"{label}: target entries reach {largest_entry:.3g}, beyond float32's largest "
                          f"number ({_FLOAT32_MAX:.3g}), the precision training runs in")


def _singular_values(d: int, instance: _Instance) -> np.ndarray:
    if instance.singular_values is not None:
        s = np.asarray(instance.singular_values, dtype=np.float64)
        if instance.rank is not None and instance.rank != s.size:
            raise ConfigError(f"rank={instance.rank} but {s.size} singular values were given")
        if not (s.size and np.all(np.isfinite(s)) and np.all(s > 0)):
            raise ConfigError(f"singular_values={s.tolist()}: need at least one, all finite and > 0")
        if s.min() < _RELATIVE_ZERO * s.max():
            raise ConfigError(f"singular_values={s.tolist()}: {s.min():g} is below {_RELATIVE_ZERO:g} × the "
                              f"largest ({s.max():g}); the target's SVD cannot tell it from 0")
    else:
        rank = instance.rank or 1
        s = np.sort(np.random.default_rng(instance.target_seed).uniform(1.0, 4.0, rank))[::-1]
    if s.size > d:
        raise ConfigError(f"rank={s.size} exceeds d={d}: a d×d target has rank at most d")
    return s


def _check_distribution(target: np.ndarray) -> None:
    if (target < 0).any():
        i, j = np.argwhere(target < 0)[0]
        raise ConfigError(f"target[{i}, {j}]={target[i, j]:.4g} is negative: "
                          "a ce-prob target must be a probability distribution")
    if not np.isclose(target.sum(), 1.0, atol=1e-6):
        raise ConfigError(f"target sums to {target.sum():.6g}, not 1: "
                          "a ce-prob target must be a probability distribution")


def lowrank(
    d: int = 100,
    *,
    components: int = 2,
    width: int | None = None,
    loss: Literal["mse", "ce", "ce-rows", "ce-prob"] = "mse",
    init: Literal["random", "aligned"] = "random",
    entries_per_step: int | None = None,
) -> Task:
    """Build the multi-component matrix-learning task (Jermyn & Shlegeris 2022).

    Raises:
      ConfigError: d or components out of range, an unknown loss or init, or an aligned init
        wider than d.
    """
    spec = validated(LowRankSpec, d=d, components=components, width=width, loss=loss,
                     init=init, entries_per_step=entries_per_step)
    return _build(spec)


# One Task object per spec: the trainer keeps its compiled functions per task object, so a
# second run of the same task skips tracing (see toylab.train.trainer.compiled_for).
@functools.lru_cache(maxsize=32)
def _build(spec: LowRankSpec) -> Task:
    d, n_components, loss = spec.d, spec.components, spec.loss
    inner = spec.width or d
    # Checked before any d × d array exists: an instance's target is built on the host in
    # float64 with about ten d × d temporaries (two random orthogonal factors with their QR,
    # the target, its SVD), and one model holds its factors and their gradients in float32.
    factors = d * inner * 2 + inner * inner * (n_components - 2)
    require_memory(10 * 8 * d * d + 2 * 4 * factors, what=f"d={d}, width={inner}, components={n_components}: "
                   "one target and one model's factors", fix="use a smaller d or width")

    def hyper(config: Mapping[str, Any]) -> dict[str, np.ndarray]:
        target = target_matrix(d, loss, config)
        _check_init_scale(validated(_Instance, **config).init_scale, n_components)
        U, s, Vt = np.linalg.svd(target)
        s[s < 1e-9 * max(s[0], 1e-300)] = 0.0
        out = {
            "target": target,  # (d, d)
            "U": U, "V": Vt.T, "s": s,  # the target's SVD; U[:, k] is mode k's output direction
            "init_scale": np.asarray(validated(_Instance, **config).init_scale),
        }
        if loss != "mse":
            flat_logits = target.reshape(d, d) if loss == "ce-rows" else target.reshape(-1)
            p = flat_logits if loss == "ce-prob" else _softmax(flat_logits)
            out["p_target"] = p.reshape(d, d)
            out["negentropy"] = np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=-1).mean()
            # Cumulative distribution for drawing minibatch entries by inverse transform.
            out["cdf"] = np.cumsum(p, axis=-1).reshape(p.shape)
        return {name: np.asarray(value, np.float32) for name, value in out.items()}

    def init_params(key: jax.Array, hyper: dict[str, Array]) -> dict[str, tuple[Array, ...]]:
        eps = hyper["init_scale"]
        shapes = [(d, inner)] + [(inner, inner)] * (n_components - 2) + [(inner, d)]
        if spec.init == "random":
            keys = jax.random.split(key, n_components)
            return {"factors": tuple(eps * jax.random.normal(k, shape) for k, shape in zip(keys, shapes))}
        middle = (eps * jnp.eye(inner),) * (n_components - 2)
        return {"factors": (eps * hyper["U"][:, :inner], *middle, eps * hyper["V"][:, :inner].T)}

    def product(params) -> Float[Array, "d d"]:
        return functools.reduce(jnp.matmul, params["factors"])

    def exact_loss(params, hyper) -> Array:
        Z = product(params)
        if loss == "mse":
            return 0.5 * jnp.sum((hyper["target"] - Z) ** 2)
        log_q = jax.nn.log_softmax(Z, axis=-1) if loss == "ce-rows" else \
            jax.nn.log_softmax(Z.reshape(-1)).reshape(d, d)
        cross = -jnp.sum(hyper["p_target"] * log_q, axis=-1)  # (d,) per row
        return (jnp.mean(cross) if loss == "ce-rows" else jnp.sum(cross)) + hyper["negentropy"]

    def draw_entries(key: jax.Array, hyper) -> Array:
        """Flat indices of the target entries one minibatch step fits (``entries_per_step``)."""
        size = spec.entries_per_step
        if loss == "mse":
            return jax.random.randint(key, (size,), 0, d * d)  # flat entry indices, uniform
        if loss == "ce-rows":
            key_row, key_col = jax.random.split(key)
            rows = jax.random.randint(key_row, (size,), 0, d)
            u = jax.random.uniform(key_col, (size,))
            cols = jax.vmap(jnp.searchsorted)(hyper["cdf"][rows], u)
            return rows * d + jnp.minimum(cols, d - 1)
        u = jax.random.uniform(key, (size,))
        return jnp.minimum(jnp.searchsorted(hyper["cdf"].reshape(-1), u), d * d - 1)

    def train_loss(params, key, hyper) -> Array:
        # The task owns its batches: the whole target (gradient descent) or entries_per_step
        # entries drawn with the step's key (stochastic gradient descent).
        if spec.entries_per_step is None:
            return exact_loss(params, hyper)
        entries = draw_entries(key, hyper)
        Z = product(params)
        if loss == "mse":
            error = hyper["target"].reshape(-1)[entries] - Z.reshape(-1)[entries]
            return 0.5 * d * d * jnp.mean(error**2)
        log_q = jax.nn.log_softmax(Z, axis=-1).reshape(-1) if loss == "ce-rows" else \
            jax.nn.log_softmax(Z.reshape(-1))
        return -jnp.mean(log_q[entries]) + hyper["negentropy"]

    def measure(params, hyper, key) -> dict[str, Array]:
        del key  # every measure is exact
        Z = product(params)
        k, learned = min(d, _OVERLAP_MODES), min(inner, _OVERLAP_MODES)
        return {
            "mode_strength": lowrank_metrics.mode_strengths(Z, hyper["U"], hyper["V"]),
            "alignment": lowrank_metrics.mode_alignment(Z, hyper["U"], hyper["V"]),
            "orthogonal_norm": lowrank_metrics.orthogonal_norm(Z, hyper["U"], hyper["V"], hyper["s"] > 0),
            "singular_values": _singular_values_or_nan(Z),
            "overlaps": lowrank_metrics.direction_overlaps(params["factors"][0][:, :learned], hyper["U"][:, :k]),
        }

    # Forward FLOPs: the chained product left to right, 2·d·w² per inner factor and 2·d²·w for
    # the last, plus ~5 per entry for the loss; a step is 3 forward passes (backward ≈ 2×).
    forward = 2.0 * d * inner * inner * (n_components - 2) + 2.0 * d * d * inner + 5.0 * d * d
    return Task(
        name="lowrank",
        spec=spec.model_dump(),
        hyper=hyper,
        init=init_params,
        sample=None,
        loss=train_loss,
        flops_per_step=lambda batch_size: 3.0 * forward,  # batch_size is None: no sample
        metrics=measure,
        elicit_mask=None,
        exact_loss=exact_loss,
    )


def _singular_values_or_nan(Z: Array) -> Array:
    """Z's singular values; NaN for a diverged Z, which LAPACK would refuse with a message
    printed on stdout (``** On entry to SLASCL parameter number 4 had an illegal value``)."""
    finite = jnp.all(jnp.isfinite(Z))
    values = jnp.linalg.svd(jnp.where(finite, Z, 0.0), compute_uv=False)
    return jnp.where(finite, values, jnp.nan)


def _check_init_scale(eps: float, components: int) -> None:
    """The initial product F_1⋯F_N has scale ε^N: it must be a normal float32 number.

    Below float32's smallest normal number the product and the gradients (ε^(N−1)) are 0 or
    lose their precision, and training never leaves the start; above the largest they are
    infinite.
    """
    log_product = components * np.log10(eps)
    if not np.log10(_FLOAT32_TINY) <= log_product <= np.log10(_FLOAT32_MAX):
        raise ConfigError(f"init_scale={eps!r} with components={components}: the initial product has scale "
                          f"ε^{components} = 1e{log_product:+.0f}, outside float32's range "
                          f"({_FLOAT32_TINY:.2g} to {_FLOAT32_MAX:.2g}), the precision training runs in")


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
