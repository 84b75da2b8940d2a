"""Exact gradient flow: the learning-rate-free limit of gradient descent, solved adaptively.

Gradient descent ``θ_{n+1} = θ_n − η ∇L(θ_n)`` is the explicit Euler method, with step ``η``,
for the ordinary differential equation

.. math:: \\frac{d\\theta}{dt} = -\\nabla L(\\theta), \\qquad \\theta(0) = \\theta_0,

so after ``n`` steps it is near the flow at time ``t = η n``. Euler is first order: on a fixed
horizon ``[0, T]`` with smooth ``L`` the gap is ``O(η)`` (each step errs by
``½ η² ‖∇²L ∇L‖``; ``T/η`` steps add up to ``O(η)``), and it closes as ``η → 0``. The flow is
what learning-rate-independent theory describes (Saxe et al. 2014, :mod:`toylab.theory.saxe`:
``t = η × steps``) and the reference against which finite-``η`` effects are measured. Here it is
integrated with an adaptive, error-controlled Runge–Kutta method (scipy's DOP853, order 8), in
float64, so the result is exact to the requested tolerance rather than to a step size.

Example:
    >>> import jax.numpy as jnp
    >>> path = gradient_flow(lambda p: 0.5 * jnp.sum(p["w"] ** 2), {"w": jnp.ones(2)}, [0.0, 1.0])
    >>> path["w"].shape, round(float(path["w"][1, 0]), 6)  # e^{-1}
    ((2, 2), 0.367879)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
from jax.flatten_util import ravel_pytree
from jaxtyping import ArrayLike, Float

from toylab.errors import ConfigError
from toylab.tasks.base import Params, PyTree

__all__ = ["gradient_flow", "gradient_flow_losses"]

# scipy.integrate's solvers. The implicit ones (for stiff losses, with very different
# curvatures) get the exact Jacobian of the flow, −∇²L, from JAX.
_EXPLICIT = ("RK45", "RK23", "DOP853")
_IMPLICIT = ("Radau", "BDF", "LSODA")


def _check_times(t_eval: Any) -> np.ndarray:
    try:
        times = np.asarray(t_eval, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"t_eval={t_eval!r}: expected a 1-D array of times") from None
    if times.ndim != 1 or times.size == 0:
        raise ConfigError(f"t_eval has shape {times.shape}: expected a non-empty 1-D array of times")
    if not np.isfinite(times).all() or (times < 0).any():
        bad = times[~np.isfinite(times) | (times < 0)][0]
        raise ConfigError(f"t_eval contains {bad}: every time must be finite and ≥ 0")
    if (np.diff(times) < 0).any():
        i = int(np.flatnonzero(np.diff(times) < 0)[0])
        raise ConfigError(
            f"t_eval is not sorted: {times[i]} comes before {times[i + 1]}; pass np.sort(t_eval)"
        )
    return times


def _check_leaves(params: Params) -> None:
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ConfigError("params has no arrays: expected a pytree of float arrays to evolve")
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
        if not np.issubdtype(dtype, np.floating):
            where = jax.tree_util.keystr(path) or "params"
            raise ConfigError(
                f"params{where} has dtype {dtype}: gradient flow needs real floating-point arrays"
            )


def gradient_flow(
    loss_fn: Callable[[Params], ArrayLike],
    params: Params,
    t_eval: Float[ArrayLike, " times"],
    *,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    method: str = "DOP853",
) -> PyTree:
    """Solve ``dθ/dt = −∇L(θ)`` from ``θ(0) = params`` and return ``θ`` at the times ``t_eval``.

    .. math:: \\theta(t) = \\theta_0 - \\int_0^t \\nabla L(\\theta(\\tau))\\, d\\tau

    Gradient descent with learning rate ``η`` after ``n`` steps approximates ``θ(η n)`` with an
    ``O(η)`` error (see the module docstring). The gradient is ``jax.grad(loss_fn)``, compiled
    once and evaluated in float64 inside ``jax.enable_x64``: ``params`` are converted to
    float64, and so is whatever ``loss_fn`` computes from them (NumPy constants it closes over
    stay float64; float32 JAX constants are promoted, at their own float32 precision). The
    solver is :func:`scipy.integrate.solve_ivp`; the states at ``t_eval`` come from its dense
    output, so they cost no extra steps.

    Args:
      loss_fn: ``loss_fn(params) -> scalar``, a JAX-traceable function of one pytree like
        ``params``.
      params: the initial point, a pytree of real float arrays.
      t_eval: the output times, 1-D, sorted (repeats allowed), ``≥ 0``; ``0`` returns
        ``params`` itself.
      rtol: relative tolerance of the solver's local error control.
      atol: absolute tolerance, per parameter.
      method: a :func:`scipy.integrate.solve_ivp` method. ``"DOP853"`` (explicit, order 8) is
        accurate for smooth, non-stiff losses; ``"Radau"``, ``"BDF"`` and ``"LSODA"`` handle
        stiff ones and receive the exact Jacobian ``−∇²L`` (one Hessian per Jacobian update).

    Returns:
      A pytree shaped like ``params`` whose leaves are float64 NumPy arrays with a leading
      ``times`` axis: ``leaf[i]`` is that leaf at ``t_eval[i]``.

    Raises:
      ConfigError: ``t_eval`` not 1-D, unsorted, negative or non-finite; a non-float leaf; a
        non-scalar loss; a non-positive tolerance; an unknown method.
      RuntimeError: the gradient stops being finite, or the solver fails (e.g. the flow
        diverges in finite time); the message names the time reached.

    Reference:
      Saxe, McClelland & Ganguli (2014), who study learning in this limit of a small learning
      rate, with time ``t = η × steps`` (their ``τ = 1/η``).

    Example:
      >>> import jax.numpy as jnp
      >>> path = gradient_flow(lambda p: 0.5 * 2.0 * p**2, jnp.array(1.0), [0.0, 0.5, 1.0])
      >>> [round(float(x), 8) for x in path]  # e^{-2t}
      [1.0, 0.36787944, 0.13533528]
    """
    times = _check_times(t_eval)
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if not (np.isfinite(tol) and tol > 0):
            raise ConfigError(f"{name}={tol!r}: expected a finite tolerance > 0")
    if method not in _EXPLICIT + _IMPLICIT:
        raise ConfigError(f"method={method!r}: expected one of {', '.join(_EXPLICIT + _IMPLICIT)}")
    _check_leaves(params)

    # The x64 switch is read when a function is traced and when arrays are made, so tracing,
    # every gradient evaluation and the final unravelling all happen inside it.
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype=jnp.float64), params)
        theta0, unravel = ravel_pytree(params64)  # (n_params,) and its inverse

        def flat_loss(theta):
            return loss_fn(unravel(theta))

        loss_shape = jax.eval_shape(flat_loss, theta0).shape
        if loss_shape != ():
            raise ConfigError(f"loss_fn returned shape {loss_shape}: expected a scalar loss")
        gradient = jax.jit(jax.grad(flat_loss))
        furthest = [0.0]  # the latest time the solver asked about, for error messages

        def velocity(t: float, theta: np.ndarray) -> np.ndarray:
            g = np.asarray(gradient(theta))
            if not np.isfinite(g).all():
                raise RuntimeError(
                    f"gradient flow: the loss gradient is not finite at t={t:.6g} "
                    f"(integrating to {times[-1]:.6g}); the loss diverges or is undefined there"
                )
            furthest[0] = max(furthest[0], t)
            return -g

        options = {}
        if method in _IMPLICIT:
            hessian = jax.jit(jax.hessian(flat_loss))
            options["jac"] = lambda t, theta: -np.asarray(hessian(theta))

        start = np.asarray(theta0)
        distinct, repeat = np.unique(times, return_inverse=True)  # solve_ivp wants no repeats
        if times[-1] == 0:  # nothing to integrate; solve_ivp rejects an empty interval
            states = np.broadcast_to(start, (times.size, start.size))
        else:
            solution = scipy.integrate.solve_ivp(
                velocity, (0.0, times[-1]), start, method=method, t_eval=distinct,
                rtol=rtol, atol=atol, **options,
            )
            if solution.status != 0:
                hint = "the flow may blow up there"
                if method in _EXPLICIT:
                    hint += "; for a stiff loss try method='Radau'"
                raise RuntimeError(
                    f"gradient flow failed at t≈{furthest[0]:.6g} of {times[-1]:.6g} "
                    f"({method}: {solution.message}); {hint}"
                )
            states = solution.y.T[repeat]  # (times, n_params)
        trajectory = jax.vmap(unravel)(jnp.asarray(states))
        return jax.tree.map(np.asarray, trajectory)


def gradient_flow_losses(
    loss_fn: Callable[[Params], ArrayLike],
    params: Params,
    t_eval: Float[ArrayLike, " times"],
    **kwargs: Any,
) -> Float[np.ndarray, " times"]:
    """The loss along the gradient flow, ``L(θ(t))`` at each time in ``t_eval``, in float64.

    Args:
      loss_fn, params, t_eval: as :func:`gradient_flow`.
      **kwargs: ``rtol``, ``atol``, ``method``, passed to :func:`gradient_flow`.

    Returns:
      Shape ``(times,)``: non-increasing in ``t``, since ``dL/dt = −‖∇L‖² ≤ 0``.

    Example:
      >>> losses = gradient_flow_losses(lambda w: 0.5 * w**2, 2.0, [0.0, 1.0])
      >>> [round(float(x), 6) for x in losses]  # 2 e^{-2t}
      [2.0, 0.270671]
    """
    trajectory = gradient_flow(loss_fn, params, t_eval, **kwargs)
    with jax.enable_x64(True):
        return np.asarray(jax.jit(jax.vmap(loss_fn))(trajectory))
