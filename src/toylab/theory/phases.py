"""Closed-form phase diagram of the smallest superposition model: 2 features in 1 dimension.

Elhage et al. (2022, "Toy Models of Superposition", §4 "The phase change") train
``x' = ReLU(WᵀW x + b)`` with ``W`` of shape (1, 2) and ask what happens to the *extra*
feature, feature 2 of relative importance ``r`` (feature 1 has importance 1), as the feature
density ``p`` (each feature is on with probability ``p``, then uniform on [0, 1]) and ``r``
vary. Three solutions compete:

``not_represented``  ``W = [1, 0]``, ``b = [0, p/2]``: feature 1 owns the dimension and is
    reconstructed exactly; feature 2 is dropped and its output is the constant that best fits
    it, its mean ``p/2`` (the bias). Loss: the variance of feature 2, weighted by ``r``.
``dedicated``  ``W = [0, 1]``, ``b = [p/2, 0]``: the mirror image, feature 1 dropped.
``superposition``  ``W = [1, −1]``, ``b = 0``: the features share the dimension antipodally.
    One feature on alone is reconstructed exactly (the other output is ``ReLU(−x) = 0``). Both
    on, the larger one comes out as the difference and the smaller one as 0: each output is off
    by ``min(x₁, x₂)``.

Their expected losses, in the units of the superposition task's loss (the mean over the two
features of ``I_i (x_i − x'_i)²``; ``E[x] = p/2`` and ``E[x²] = p/3`` for one feature, and
``E[min(u, v)²] = 1/6`` for independent ``u, v ~ U[0, 1]``, since ``min`` has density
``2(1 − m)``):

.. math::
    L_\\text{not} = \\tfrac{r}{2}\\left(\\tfrac{p}{3} - \\tfrac{p^2}{4}\\right), \\quad
    L_\\text{ded} = \\tfrac{1}{2}\\left(\\tfrac{p}{3} - \\tfrac{p^2}{4}\\right), \\quad
    L_\\text{sup} = \\tfrac{1 + r}{2} \\cdot \\tfrac{p^2}{6}.

The phase is the candidate of least loss. The boundaries are where two losses are equal:
``r = 1`` between ``not_represented`` and ``dedicated``; ``p = 4r/(5r + 2)`` between
``not_represented`` and ``superposition`` (``r < 1``); ``p = 4/(2r + 5)`` between ``dedicated``
and ``superposition`` (``r > 1``). All three meet at ``r = 1, p = 4/7``. Sparse features
(small ``p``) favour superposition, since its cost grows like ``p²`` (two features on at once)
and the others like ``p``.

The candidates are the three fixed shapes of the paper's figure, each with its best bias;
scaling the superposition solution's weights or giving it a negative bias trades exact
single-feature reconstruction for less interference and lowers its loss a little near the
boundaries, so a trained model's boundary can sit slightly to the dense side of these.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from toylab.errors import ConfigError

__all__ = ["PHASES", "Phase", "candidate_losses", "closed_form_phase", "boundary_density", "candidate_solution"]

Phase = Literal["not_represented", "dedicated", "superposition"]
PHASES: tuple[Phase, ...] = ("not_represented", "dedicated", "superposition")


def _checked(density: Any, relative_importance: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(density, dtype=float)
    r = np.asarray(relative_importance, dtype=float)
    # Name the first bad value, not the whole array: a grid's repr would run over many lines.
    bad_p = p[~((p > 0) & (p <= 1))]
    if bad_p.size:
        raise ConfigError(f"density={float(bad_p.flat[0])}: expected feature probabilities in (0, 1]")
    bad_r = r[~((r > 0) & np.isfinite(r))]
    if bad_r.size:
        raise ConfigError(f"relative_importance={float(bad_r.flat[0])}: expected finite values > 0")
    return np.broadcast_arrays(p, r)


def candidate_losses(density: Any, relative_importance: Any) -> dict[Phase, np.ndarray]:
    """Expected loss of each candidate solution, n = 2 features in m = 1 dimension.

    Args:
      density: feature probability ``p`` in (0, 1], any shape.
      relative_importance: the extra feature's importance ``r > 0`` (feature 1 has 1);
        broadcast against ``density``.

    Returns:
      Phase name → expected loss (mean over features of ``I_i (x_i − x'_i)²``), broadcast shape.

    Example:
      >>> {k: round(float(v), 6) for k, v in candidate_losses(1.0, 1.0).items()}
      {'not_represented': 0.041667, 'dedicated': 0.041667, 'superposition': 0.166667}
    """
    p, r = _checked(density, relative_importance)
    variance = p / 3 - p**2 / 4  # of one feature: E[x²] − E[x]²
    return {
        "not_represented": 0.5 * r * variance,
        "dedicated": 0.5 * variance,
        "superposition": 0.5 * (1 + r) * p**2 / 6,
    }


def closed_form_phase(density: Any, relative_importance: Any) -> np.ndarray:
    """The candidate of least expected loss at each (density, relative importance).

    Ties (on a boundary) go to the earlier name in :data:`PHASES`.

    Example:
      >>> closed_form_phase([0.9, 0.9, 0.05], [0.5, 2.0, 1.0]).tolist()
      ['not_represented', 'dedicated', 'superposition']
    """
    losses = candidate_losses(density, relative_importance)
    stacked = np.stack([losses[name] for name in PHASES])  # (3, ...)
    return np.asarray(PHASES, dtype=object)[np.argmin(stacked, axis=0)]


def boundary_density(relative_importance: Any) -> np.ndarray:
    """The density below which superposition wins, at each relative importance.

    ``4r/(5r + 2)`` for ``r ≤ 1`` (against ``not_represented``), ``4/(2r + 5)`` for ``r ≥ 1``
    (against ``dedicated``); the two meet at ``4/7``.

    Example:
      >>> boundary_density([0.1, 1.0, 10.0]).round(4).tolist()
      [0.16, 0.5714, 0.16]
    """
    _, r = _checked(1.0, relative_importance)
    return np.where(r <= 1, 4 * r / (5 * r + 2), 4 / (2 * r + 5))


def candidate_solution(phase: Phase, density: float) -> dict[str, np.ndarray]:
    """The weights ``W`` (1, 2) and bias ``b`` (2,) of a candidate, for checking its loss.

    Example:
      >>> candidate_solution("superposition", 0.1)["W"].tolist()
      [[1.0, -1.0]]
    """
    if phase not in PHASES:
        raise ConfigError(f"phase={phase!r}: expected one of {', '.join(PHASES)}")
    mean = density / 2
    W, b = {
        "not_represented": ([[1.0, 0.0]], [0.0, mean]),
        "dedicated": ([[0.0, 1.0]], [mean, 0.0]),
        "superposition": ([[1.0, -1.0]], [0.0, 0.0]),
    }[phase]
    return {"W": np.array(W), "b": np.array(b)}
