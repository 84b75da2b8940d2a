"""Exact learning dynamics of deep linear networks: one S-curve per target singular value.

Saxe, McClelland & Ganguli (2014), "Exact solutions to the nonlinear dynamics of learning in
deep linear neural networks", ICLR (arXiv:1312.6120); the S-curves of Jermyn & Shlegeris (2022).

**Setting.** Fit a target ``C = Σ_k s_k u_k v_kᵀ`` (its SVD) by a product of ``N`` component
matrices ``Z = W_N ⋯ W_1`` under ``L = ½‖C − Z‖_F²``, following the gradient flow
``θ̇ = −∇L(θ)``; gradient descent with learning rate ``η`` is near the flow at ``t = η × steps``
(:mod:`toylab.train.gradient_flow`). Start *balanced and aligned*: consecutive factors share
singular bases (``W_1 = R_1 A_1 Vᵀ``, ``W_i = R_i A_i R_{i−1}ᵀ``, ``W_N = U A_N R_{N−1}ᵀ`` with
orthogonal ``R_i`` and diagonal ``A_i``) and all ``N`` factors have the same strength ``a`` on
each mode. The flow keeps this structure, so the modes decouple,
``L = ½ Σ_k (s_k − a_k^N)²``, and each factor's strength on a mode obeys

.. math:: \\dot a = -\\partial L / \\partial a_i = (s - a^N)\\, a^{N-1}.

The mode's strength ``u = u_kᵀ Z v_k = a^N`` therefore obeys

.. math:: \\dot u = N a^{N-1} \\dot a = N u^{2 - 2/N} (s - u).

**Solutions.** ``N = 1`` (no hidden layer): ``u = s + (u₀ − s) e^{−t}``, no plateau.
``N = 2``: the logistic equation ``u̇ = 2u(s − u)``, solved by
``u(t) = s e^{2st} / (e^{2st} − 1 + s/u₀)``. ``N ≥ 3``: the equation is separable,
``t(u) = ∫_{u₀}^{u} dv / (N v^{2−2/N} (s − v))``. With ``α = (v/s)^{1/N}``,
``dt = s^{−(2−2/N)} dα / (α^{N−1}(1 − α^N))`` and
``1/(α^{N−1}(1 − α^N)) = α^{1−N} + α/(1 − α^N)``; partial fractions over the ``N``-th roots of
unity ``ω_j = e^{2πij/N}`` give the elementary antiderivative (logs and arctangents)

.. math::
    G(\\alpha) = -\\frac{\\alpha^{2-N}}{N-2} - \\frac{1}{N} \\operatorname{Re}
        \\sum_{j=0}^{N-1} \\omega_j^2 \\log(\\alpha - \\omega_j),

so ``t(u) = (G(α) − G(α₀)) s^{−(2−2/N)}`` exactly, and :func:`mode_strength` inverts it by
safeguarded Newton iteration (``t`` is monotone in ``u``). Far above the target
(``u ≥ 2^N s``, reached only when ``u₀ > s``: a mode shrinking towards ``s``) ``G`` would lose
digits to cancellation, so there the antiderivative is the convergent series
``u^{−(2N−2)/N} Σ_m (s/u)^m / (2N − 2 + Nm)``. For ``s = 0`` that is its first term, and
``u(t) = (u₀^{−(2N−2)/N} + (2N − 2) t)^{−N/(2N−2)}``.

**Timescales** (see :func:`drop_time`). ``N = 2``: the drop comes after
``ln(s/u₀ − 1)/(2s) ≈ ln(s/u₀)/(2s)``, logarithmic in the init scale. ``N ≥ 3``: after
``≈ u₀^{−(N−2)/N} / ((N − 2) s)``, a power law. Larger singular values drop first, each
removing ``½ s_k²`` from the loss: a staircase (:func:`loss_levels`, :func:`drop_sizes`).

Every function is NumPy, float64, and broadcasts its array arguments against each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import ArrayLike, Float
from scipy.special import expit  # the logistic σ, accurate in both tails

from toylab.errors import ConfigError

__all__ = ["mode_strength", "drop_time", "steepest_drop_time", "loss_curve", "loss_levels",
           "drop_sizes"]

# The unknown when inverting t(u) for N ≥ 3 is z ∈ [−Z, Z], with ln(u/u₀) = σ(z) ln(s/u₀)
# (σ the logistic function): σ(±745) is 1 or 0 to float64 precision, even 1 − σ underflows,
# so the bracket's ends are exactly u₀ and exactly s.
_Z_BRACKET = 745.0

# Safeguarded Newton iterations. Bisection halves the 1490-wide bracket to below float
# resolution in ~60 steps; Newton usually needs ~10; 100 always suffice.
_MAX_ITERATIONS = 100

# Terms of the series in x = s/u used far above the target (x ≤ 2⁻ᴺ ≤ 1/8 for N ≥ 3):
# 1/8²⁰ ≈ 1e-18 is below float64 resolution.
_SERIES_TERMS = 20


def _check_components(components: Any) -> int:
    if isinstance(components, bool) or not isinstance(components, (int, np.integer)) or components < 1:
        raise ConfigError(
            f"components={components!r}: expected an integer ≥ 1, the number of matrices in the product"
        )
    return int(components)


def _check(name: str, value: Any, *, positive: bool = False, allow_inf: bool = False) -> np.ndarray:
    """``value`` as a float64 array, ≥ 0 (or > 0), finite unless ``allow_inf``."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r}: expected real numbers") from None
    bad = np.isnan(array) | (array <= 0 if positive else array < 0)
    if not allow_inf:
        bad |= np.isinf(array)
    if bad.any():
        first = array[bad].flat[0]
        rule = "> 0" if positive else "≥ 0"
        raise ConfigError(f"{name} contains {first}: every entry must be finite and {rule}")
    return array


def _root_term(log_ratio: np.ndarray, N: int) -> np.ndarray:
    """``−(1/N) Re Σ_j ω_j² log(α − ω_j)``, an antiderivative of ``α/(1 − α^N)``.

    At ``α = e^{log_ratio/N}``, with ``ω_j = e^{2πij/N}``. For real ``α``, ``α − ω_j`` is real
    only for ``ω_j = ±1``, where ``ω_j² = 1`` and the term is ``log|α ∓ 1|``: the principal
    branch is continuous along the whole path from ``α₀`` to ``α``. Conjugate roots contribute
    equally, so each pair is counted once, twice over.
    """
    alpha = np.exp(log_ratio / N)
    # j = 0: log|α − 1|, with α − 1 from expm1 so that it keeps its digits as u → s.
    total = np.log(np.abs(np.expm1(log_ratio / N)))
    for j in range(1, N // 2 + 1):
        theta = 2 * np.pi * j / N
        weight = 1.0 if 2 * j == N else 2.0
        cos, sin = np.cos(theta), np.sin(theta)
        log_abs = 0.5 * np.log((alpha - cos) ** 2 + sin**2)  # log|α − ω|
        arg = np.arctan2(-sin, alpha - cos)  # arg(α − ω)
        total += weight * (np.cos(2 * theta) * log_abs - np.sin(2 * theta) * arg)
    return -total / N


def _near(log_ratio: np.ndarray, s: np.ndarray, N: int) -> np.ndarray:
    """An antiderivative of ``1/(N u^{2−2/N}(s − u))`` in closed form, at ``u = s e^{log_ratio}``.

    For ``0 < u < 2^N s`` (``log_ratio < N ln 2``); ``u`` enters through ``ln(u/s)``, which
    keeps ``α − 1`` accurate when ``u`` is within a few ulps of ``s``.
    """
    G = -np.exp((2.0 - N) / N * log_ratio) / (N - 2) + _root_term(log_ratio, N)  # G(α)
    return G / s ** (2.0 - 2.0 / N)


def _far(u: np.ndarray, s: np.ndarray, N: int) -> np.ndarray:
    """An antiderivative of the same integrand for ``u ≥ 2^N s`` (also ``s = 0``), as a series."""
    x = s / u  # ≤ 2⁻ᴺ
    series = np.zeros_like(x)
    for m in reversed(range(_SERIES_TERMS)):  # Horner: Σ_m x^m / (2N − 2 + Nm)
        series = series * x + 1.0 / (2 * N - 2 + N * m)
    return u ** (-(2.0 * N - 2.0) / N) * series


class _Clock:
    """Time elapsed on a mode's trajectory, ``t(u) = ∫_{u₀}^{u} dv / (N v^{2−2/N}(s − v))``.

    For ``s > 0`` and ``u`` between ``u₀`` and ``s``. The path is split at ``u* = 2^N s``: the
    series above it, the closed form below it. Each piece is a difference of one
    antiderivative, and vanishes when the path misses its region, so the two antiderivatives
    never need a common constant (for ``s → 0`` it would be huge and cancel catastrophically).
    """

    def __init__(self, s: np.ndarray, u0: np.ndarray, N: int):
        self.s, self.N = s, N
        self.split = 2.0**N * s
        self.log_split = N * np.log(2.0)  # ln(u*/s)
        self.far = np.flatnonzero(u0 > self.split)  # only these paths start above u*
        self.far_start = _far(u0[self.far], s[self.far], N)
        self.near_start = _near(np.minimum(np.log(u0 / s), self.log_split), s, N)

    def __call__(self, u: np.ndarray, log_ratio: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``t(u)``, given ``u`` and ``ln(u/s)``, for the paths ``index`` (into the 1-D inputs)."""
        s = self.s[index]
        t = _near(np.minimum(log_ratio, self.log_split), s, self.N) - self.near_start[index]
        far = np.isin(index, self.far)
        if far.any():
            rows = np.searchsorted(self.far, index[far])
            u_far = np.maximum(u[far], self.split[index[far]])
            t[far] += _far(u_far, s[far], self.N) - self.far_start[rows]
        return t


def _strength_deep(t: np.ndarray, s: np.ndarray, u0: np.ndarray, N: int) -> np.ndarray:
    """``u(t)`` for ``N ≥ 3``: exact for ``s = 0``, otherwise by inverting ``t(u)``.

    The unknown is ``z`` with ``ln(u/u₀) = σ(z) ln(s/u₀)`` and so ``ln(u/s) = −σ(−z) ln(s/u₀)``:
    ``t`` increases with ``z`` whether the mode grows or shrinks, and both logs (hence ``u``
    near ``u₀`` and ``s − u`` near ``s``) keep their relative precision. Safeguarded Newton: a
    step that leaves the bracket, or is not finite, is replaced by bisection.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p = (2.0 * N - 2.0) / N
        u = (u0 ** (-p) + (2 * N - 2) * t) ** (-1.0 / p)  # s = 0: the mode decays
    u = np.where(np.isinf(t) & (s > 0), s, u)
    u = np.where((t == 0) | (u0 == s), u0, u)
    solve = np.flatnonzero((s > 0) & (t > 0) & np.isfinite(t) & (u0 != s))
    if solve.size == 0:
        return u
    t_, s_, u0_ = t.ravel()[solve], s.ravel()[solve], u0.ravel()[solve]
    clock = _Clock(s_, u0_, N)
    span = np.log(s_ / u0_)

    def locate(z, index):
        """``u``, ``ln(u/s)`` and ``s − u`` at ``z`` for the paths ``index``."""
        rise, rest = expit(z), expit(-z)
        log_ratio = -rest * span[index]
        u = np.where(z < 0, u0_[index] * np.exp(rise * span[index]), s_[index] * np.exp(log_ratio))
        return u, log_ratio, -s_[index] * np.expm1(log_ratio)

    lo, hi = np.full_like(t_, -_Z_BRACKET), np.full_like(t_, _Z_BRACKET)
    z = np.zeros_like(t_)
    active = np.arange(t_.size)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(_MAX_ITERATIONS):
            za = z[active]
            ua, log_ratio, gap = locate(za, active)
            excess = clock(ua, log_ratio, active) - t_[active]
            lo[active] = np.where(excess < 0, za, lo[active])
            hi[active] = np.where(excess > 0, za, hi[active])
            # dt/dz = dt/d(ln u) · d(ln u)/dz = [1/(N u^{1−2/N}(s − u))] · σ(z)σ(−z) ln(s/u₀)
            slope = expit(za) * expit(-za) * span[active] / (N * ua ** (1.0 - 2.0 / N) * gap)
            step = za - excess / slope
            inside = (step > lo[active]) & (step < hi[active])
            step = np.where(inside, step, 0.5 * (lo[active] + hi[active]))
            z[active] = step
            resolution = 2 * np.spacing(np.abs(za))  # converged to float resolution
            done = (np.abs(step - za) <= resolution) | (hi[active] - lo[active] <= resolution) | (excess == 0)
            active = active[~done]
            if active.size == 0:
                break
    flat = u.reshape(-1).copy()
    flat[solve] = locate(z, np.arange(z.size))[0]
    return flat.reshape(u.shape)


def mode_strength(
    t: Float[ArrayLike, "..."],
    s: Float[ArrayLike, "..."],
    u0: Float[ArrayLike, "..."],
    components: int = 2,
) -> Float[np.ndarray, "..."]:
    """The strength ``u(t)`` of one mode of a deep linear network under gradient flow.

    Solves ``u̇ = N u^{2−2/N} (s − u)``, ``u(0) = u₀`` (see the module docstring). For ``N = 2``

    .. math:: u(t) = \\frac{s\\, e^{2st}}{e^{2st} - 1 + s/u_0},

    evaluated as ``1 / ((1 − e^{−2st})/s + e^{−2st}/u₀)``, which is stable for large ``t`` and
    tends to ``u₀/(1 + 2u₀t)`` as ``s → 0``. For ``N ≥ 3`` the exact ``t(u)`` is inverted
    numerically to float resolution: the relative error is that of ``t`` itself carried
    through the dynamics, ``≈ 1e-16 · t |u̇/u|`` (1e-15 on short plateaus, 1e-12 in the middle
    of a drop after a plateau of length 1000), and ``s − u`` stays accurate down to the last
    ulp as the mode converges. ``s = 0`` has a closed form. ``u₀ > s`` is allowed: the mode
    then shrinks towards ``s``.

    Args:
      t: times ``≥ 0`` (learning rate × steps; ``inf`` gives the limit ``s``).
      s: target singular values ``≥ 0``.
      u0: initial strengths ``> 0`` (``ε^N`` for factors initialised at scale ``ε``).
      components: ``N``, the number of matrices in the product.

    Returns:
      ``u(t)``, the broadcast shape of ``t``, ``s`` and ``u0``: ``mode_strength(t[:, None],
      s[None, :], u0)`` has shape ``(times, modes)``.

    Raises:
      ConfigError: a negative or NaN time, a negative or non-finite ``s``, ``u0 ≤ 0``, or
        ``components`` not an integer ≥ 1.

    Reference:
      Saxe, McClelland & Ganguli (2014): the two-layer solution, and the section on deeper
      networks (their ``τ`` is ``1/η``, so their ``t/τ`` is this ``t``).

    Example:
      >>> float(mode_strength(0.0, 3.0, 1e-6))
      1e-06
      >>> t_half = drop_time(3.0, 1e-6)  # the middle of the S-curve
      >>> [round(float(u), 6) for u in mode_strength([t_half, 1e3], 3.0, 1e-6)]
      [1.5, 3.0]
      >>> round(float(mode_strength(drop_time(3.0, 1e-6, 3), 3.0, 1e-6, components=3)), 12)
      1.5
    """
    N = _check_components(components)
    t = _check("t", t, allow_inf=True)
    s = _check("s", s)
    u0 = _check("u0", u0, positive=True)
    t, s, u0 = np.broadcast_arrays(t, s, u0)
    if N == 1:
        return s + (u0 - s) * np.exp(-t)
    if N == 2:
        with np.errstate(invalid="ignore", divide="ignore"):
            decay = np.exp(-2.0 * s * t)  # 0 · inf = NaN for s = 0, t = inf: fixed below
            # (1 − e^{−2st})/s → 2t as s → 0; expm1 keeps it accurate for small st.
            rise = np.where(s > 0, -np.expm1(-2.0 * s * t) / np.where(s > 0, s, 1.0), 2.0 * t)
            u = 1.0 / (rise + np.where(np.isnan(decay), 0.0, decay) / u0)
        return np.where(t == 0, u0, u)
    return _strength_deep(t, s, u0, N)


def drop_time(
    s: Float[ArrayLike, "..."],
    u0: Float[ArrayLike, "..."],
    components: int = 2,
    *,
    fraction: float = 0.5,
) -> float | Float[np.ndarray, "..."]:
    """The time at which a mode's strength reaches half its target, ``u(t½) = s/2``.

    With ``fraction = f`` it is the time at which ``u = f·s`` instead (for ``N = 2``,
    ``ln(f/(1−f) · (s/u₀ − 1)) / (2s)``); :func:`steepest_drop_time` uses that.

    .. math::
        t_{1/2} = \\int_{u_0}^{s/2} \\frac{du}{N u^{2-2/N} (s - u)}
        = \\begin{cases}
            \\ln(2 - 2u_0/s) & N = 1 \\\\
            \\dfrac{\\ln(s/u_0 - 1)}{2s} & N = 2 \\\\
            (G(\\alpha_{1/2}) - G(\\alpha_0))\\, s^{-(2-2/N)} & N \\ge 3
          \\end{cases}

    with ``G`` from the module docstring, ``α = (u/s)^{1/N}``. Asymptotics for ``u₀ ≪ s``:
    ``N = 2`` grows logarithmically, ``t½ = ln(s/u₀)/(2s) − u₀/(2s²) + …`` (the usual estimate is
    the leading term, ``(1/2s) ln(s/u₀)``); ``N ≥ 3`` is a power law,
    ``t½ = u₀^{−(N−2)/N} / ((N − 2) s) · (1 + O((u₀/s)^{(N−2)/N}))``, so deeper networks wait
    far longer on small inits.

    Args:
      s: target singular values ``≥ 0``.
      u0: initial strengths ``> 0``.
      components: ``N``, the number of matrices in the product.

    Returns:
      ``t½``, a float for scalar input, else an array of the broadcast shape. ``inf`` when the
      mode never crosses ``s/2`` (``u₀ ≥ s``, including ``s = 0``); negative when
      ``s/2 < u₀ < s``: the crossing lies before ``t = 0`` on the same trajectory.

    Raises:
      ConfigError: as :func:`mode_strength`.

    Reference:
      Saxe, McClelland & Ganguli (2014): the time to learn a mode (``N = 2``), and its
      dependence on depth.

    Example:
      >>> round(drop_time(2.0, 1e-4), 4)  # ln(2/1e-4 − 1) / 4
      2.4759
      >>> round(drop_time(1.0, 1e-9, components=3) * 1e-9 ** (1 / 3), 2)  # ≈ 1/s
      1.0
    """
    N = _check_components(components)
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"fraction={fraction!r}: must lie strictly between 0 and 1")
    s = _check("s", s)
    u0 = _check("u0", u0, positive=True)
    s, u0 = np.broadcast_arrays(s, u0)
    learns = u0 < s
    safe_s = np.where(learns, s, 1.0)
    safe_u0 = np.where(learns, u0, fraction * 0.5)
    if N == 1:
        t = np.log((1.0 - safe_u0 / safe_s) / (1.0 - fraction))
    elif N == 2:
        t = np.log(fraction / (1.0 - fraction) * (safe_s / safe_u0 - 1.0)) / (2.0 * safe_s)
    else:
        t = _near(np.log(fraction), safe_s, N) - _near(np.log(safe_u0 / safe_s), safe_s, N)
    t = np.where(learns, t, np.inf)
    return float(t) if t.ndim == 0 else t


def steepest_drop_time(
    s: Float[ArrayLike, "..."],
    u0: Float[ArrayLike, "..."],
    components: int = 2,
) -> float | Float[np.ndarray, "..."]:
    """The time at which a mode's share of the loss, ``½(s − u)²``, falls fastest.

    It falls at rate ``(s − u) u̇ = N u^{2−2/N} (s − u)²``, largest at
    ``u = s (N − 1)/(2N − 1)`` (``s/3`` for ``N = 2``): a little before the half-way time of
    :func:`drop_time` (by ``ln 2 / (2s)`` for ``N = 2``). A plateau detector that dates a drop
    by the steepest fall of the loss should be compared with this time.

    Example:
      >>> round(drop_time(3.0, 1e-6) - steepest_drop_time(3.0, 1e-6), 4)  # ln 2 / 6
      0.1155
    """
    N = _check_components(components)
    if N == 1:  # u̇ = s − u: the loss falls fastest at once
        t = np.zeros(np.broadcast_shapes(np.shape(s), np.shape(u0)))
        return float(t) if t.ndim == 0 else t
    return drop_time(s, u0, N, fraction=(N - 1) / (2 * N - 1))


def loss_curve(
    t: Float[ArrayLike, "..."],
    singular_values: Float[ArrayLike, " modes"],
    u0: Float[ArrayLike, "..."],
    components: int = 2,
) -> Float[np.ndarray, "..."]:
    """The loss ``L(t) = ½ Σ_k (s_k − u_k(t))²`` of a balanced, aligned deep linear network.

    .. math:: L(t) = \\tfrac12 \\sum_k \\bigl(s_k - u_k(t)\\bigr)^2

    Modes with ``s_k = 0`` (a target of lower rank than the model) contribute ``½ u_k(t)²``,
    which starts at ``½ u₀²`` and decays; pass them to include it.

    Args:
      t: times ``≥ 0``, any shape.
      singular_values: the target's singular values ``s_k ≥ 0``, shape ``(modes,)``.
      u0: initial strength, a scalar or one per mode (shape ``(modes,)``).
      components: ``N``, the number of matrices in the product.

    Returns:
      The loss at each time, the shape of ``t``.

    Raises:
      ConfigError: as :func:`mode_strength`, or ``singular_values`` not 1-D.

    Example:
      >>> curve = loss_curve([0.0, 20.0], [3.0, 2.0, 1.0], 1e-6)
      >>> [round(float(value), 4) for value in curve]
      [7.0, 0.0]
    """
    s = np.asarray(singular_values, dtype=np.float64)
    if s.ndim != 1:
        raise ConfigError(f"singular_values has shape {s.shape}: expected a 1-D array (modes,)")
    t = np.asarray(t, dtype=np.float64)
    u = mode_strength(t[..., None], s, u0, components)  # (..., modes)
    return 0.5 * np.sum((s - u) ** 2, axis=-1)


def _sorted_singular_values(singular_values: Any) -> np.ndarray:
    s = _check("singular_values", singular_values)
    if s.ndim != 1:
        raise ConfigError(f"singular_values has shape {s.shape}: expected a 1-D array (modes,)")
    return np.sort(s)[::-1]


def loss_levels(singular_values: Float[ArrayLike, " modes"]) -> list[float]:
    """The plateau levels of the loss staircase: the loss after each mode has dropped.

    .. math:: L_k = \\tfrac12 \\sum_{j > k} s_j^2, \\qquad s_1 \\ge s_2 \\ge \\dots

    For a small init the loss starts on the plateau ``½ Σ_j s_j²`` and the ``k``-th largest
    singular value drops ``k``-th, down to ``L_k``; the last level is 0. Equal singular values
    drop together (their levels repeat), and ``s = 0`` modes add no step.

    Args:
      singular_values: the target's singular values, any order, shape ``(modes,)``.

    Returns:
      ``[L_1, …, L_K]``, one level per mode, in the order the modes drop.

    Example:
      >>> loss_levels([1.0, 3.0, 2.0])
      [2.5, 0.5, 0.0]
    """
    s = _sorted_singular_values(singular_values)
    # Sum the tail from the small end so that small levels keep their own precision.
    tails = np.cumsum((0.5 * s**2)[::-1])[::-1]  # tails[k] = ½ Σ_{j ≥ k} s_j²
    return [float(level) for level in np.append(tails[1:], 0.0)]


def drop_sizes(singular_values: Float[ArrayLike, " modes"]) -> list[float]:
    """How much each mode's drop removes from the loss, ``½ s_k²``, in the order they drop.

    Args:
      singular_values: the target's singular values, any order, shape ``(modes,)``.

    Returns:
      ``[½ s_1², …, ½ s_K²]`` with ``s_1 ≥ s_2 ≥ …``.

    Example:
      >>> drop_sizes([1.0, 3.0, 2.0])
      [4.5, 2.0, 0.5]
    """
    return [float(size) for size in 0.5 * _sorted_singular_values(singular_values) ** 2]
