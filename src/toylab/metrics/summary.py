"""Every superposition measure of one weight matrix, scale-dependent and scale-invariant side by side.

The rescaling critique: multiplying a layer's weights by ``c > 0`` multiplies Elhage et al.'s features per
dimension by ``c²`` while a bias-free ReLU classifier classifies exactly as before. So every
measure here is reported with how it responds to ``W → cW`` (:data:`SCALING`: the exponent
``k`` in ``value(cW) = c^k · value(W)``), and each scale-dependent one has a scale-invariant
counterpart that equals it on unit-norm solutions (features at norm 1, or 0 when dropped):

==========================  ==  =================================  ==
scale-dependent             k   scale-invariant                    k
==========================  ==  =================================  ==
features_per_dimension      2   features_per_dimension_invariant   0
dimensions_per_feature      −2  dimensions_per_feature_invariant   0
feature_norms               1   feature_norms_relative             0
interference                2   interference_relative              0
==========================  ==  =================================  ==

The relative values divide by the matching power of :func:`~toylab.metrics.feature_scale`
``s``; ``feature_dimensionality`` (``D_i``), ``represented`` and ``geometry`` are invariant
as they stand. Host-side and JSON-ready: meant for tables, ``toylab measure --json`` and
reports, one matrix at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from toylab.errors import ConfigError
from toylab.metrics.geometry import describe, geometry
from toylab.metrics.superposition import (
    REPRESENTED_THRESHOLD,
    checked_weight_matrix,
    dimensions_per_feature,
    dimensions_per_feature_invariant,
    feature_dimensionality,
    feature_norms,
    feature_scale,
    features_per_dimension,
    features_per_dimension_invariant,
    interference,
    represented,
)

__all__ = ["SCALING", "measure"]

# value(cW) = c^k · value(W) for c > 0: k per reported measure (0 = scale-invariant).
SCALING: Mapping[str, int] = {
    "features_per_dimension": 2,
    "features_per_dimension_invariant": 0,
    "dimensions_per_feature": -2,
    "dimensions_per_feature_invariant": 0,
    "feature_scale": 1,
    "feature_norms": 1,
    "feature_norms_relative": 0,
    "interference": 2,
    "interference_relative": 0,
    "feature_dimensionality": 0,
    "mean_feature_dimensionality": 0,
    "sum_feature_dimensionality": 0,
    "represented": 0,
    "n_represented": 0,
    "geometry": 0,
}


def measure(W: Any, *, feature_axis: int = 1, threshold: float = REPRESENTED_THRESHOLD) -> dict[str, Any]:
    """All superposition measures of one weight matrix, as plain Python values.

    Precision over the whole float64 range. Every measure is computed on the normalised
    matrix ``V = W / c`` with ``c = max|W_ki|`` (so ``max|V_ki| = 1``), which no floating-point
    format can overflow or underflow, in JAX's precision (float32 unless x64 is on); the
    division itself is done in the input's precision (float64 stays float64). Then

    * a scale-invariant measure is exact as computed: ``f(W) = f(cV) = f(V)``;
    * a scale-dependent one is ``f(W) = c^k · f(V)`` with ``k`` from :data:`SCALING`,
      multiplied out in float64.

    So the invariant measures of ``c·W`` equal those of ``W`` for every ``c > 0`` that float64
    can hold (float32 could not hold ``1e-25·W``'s squared norms, nor ``1e25·W``'s), and a
    scale-dependent value is ``None`` exactly when float64 cannot hold it (``‖W‖_F²/m`` of
    ``1e200·W`` is about ``1e400``), with the reason in ``out_of_float64_range``. Feature
    norms below ``1e-6 · max|W_ki|`` count as not represented: on ``V`` the absolute floor of
    :func:`~toylab.metrics.represented` is relative to the largest entry, as a scale-invariant
    test must be.

    Args:
      W: one weight matrix: numpy, JAX, nested lists or a PyTorch tensor (see
        :func:`~toylab.metrics.as_weight_matrix`), shape ``(d_hidden, n_features)``, or
        ``(n_features, d_hidden)`` with ``feature_axis=0``.
      feature_axis: 1 when features are columns (``h = W x``), 0 when they are rows.
      threshold: the relative norm a feature needs to count as represented
        (see :func:`~toylab.metrics.represented`).

    Returns:
      A JSON-ready dict: ``d_hidden`` and ``n_features``; the scalars
      ``features_per_dimension`` (``‖W‖_F²/m``), ``features_per_dimension_invariant``
      (``(Σ_i‖W_i‖²)²/(m Σ_i‖W_i‖⁴)``), ``dimensions_per_feature`` and its invariant,
      ``feature_scale`` (``s``), ``mean_feature_dimensionality`` and
      ``sum_feature_dimensionality`` (mean and sum of ``D_i`` over all features, the sum
      ``≤ m``), ``n_represented``; the per-feature lists ``feature_norms``,
      ``feature_norms_relative`` (``‖W_i‖/s``), ``interference``, ``interference_relative``
      (``/s²``), ``feature_dimensionality`` (``D_i``), ``represented``; ``geometry`` (groups
      as dicts) with ``geometry_description``; ``scaling`` (:data:`SCALING`); and
      ``out_of_float64_range``: ``{measure: reason}`` for each scale-dependent value (or
      list entry) that is ``None`` because float64 cannot hold it, ``{}`` for almost every
      matrix. ``dimensions_per_feature`` of an all-zero matrix (infinite) is ``None`` too.

    Raises:
      ConfigError: anything :func:`~toylab.metrics.checked_weight_matrix` refuses, or more
        than two axes (measure one matrix of a stack at a time).

    Example:
      >>> import numpy as np
      >>> angles = 2 * np.pi * np.arange(5) / 5
      >>> pentagon = 3.0 * np.stack([np.cos(angles), np.sin(angles)])  # (2, 5), norms 3
      >>> result = measure(pentagon)
      >>> round(result["features_per_dimension"], 3), round(result["features_per_dimension_invariant"], 3)
      (22.5, 2.5)
      >>> result["geometry_description"]
      'pentagon{0,1,2,3,4}'
      >>> huge = measure(1e200 * pentagon)
      >>> round(huge["features_per_dimension_invariant"], 3), huge["features_per_dimension"]
      (2.5, None)
      >>> huge["out_of_float64_range"]["features_per_dimension"]
      "about 2.3e+401, beyond float64's range (2.2e-308 to 1.8e+308)"
    """
    w = checked_weight_matrix(W, feature_axis=feature_axis)  # (d_hidden, n_features), numpy, checked
    if w.ndim != 2:
        raise ConfigError(
            f"measure takes one weight matrix, got shape {tuple(w.shape)} (a stack of "
            f"{math.prod(w.shape[:-2])}); measure W[i] for one model at a time"
        )
    c = float(np.max(np.abs(w)))
    v = w / c if c > 0 else w  # |v| ≤ 1 with max 1: no overflow or underflow in any precision
    s = _number(feature_scale(v))
    D = _floats(feature_dimensionality(v))
    norms = _floats(feature_norms(v))
    overlaps = _floats(interference(v))
    kept = [bool(x) for x in np.asarray(represented(v, threshold))]
    groups = geometry(v, norm_threshold=threshold)
    out_of_range: dict[str, str] = {}

    def scaled(name: str, values: Any) -> Any:
        """value(W) = c^k · value(V) for the measure ``name``; None where float64 cannot hold it."""
        power = SCALING[name]
        if c == 0 or power == 0:
            return values  # an all-zero W is V itself
        if isinstance(values, list):
            results = [_times_power(x, c, power) for x in values]
            missing = [x for x, (_, problem) in zip(values, results, strict=True) if problem]
            if missing:
                out_of_range[name] = f"{len(missing)} of {len(values)} values, e.g. " + results[
                    [bool(p) for _, p in results].index(True)][1]
            return [x for x, _ in results]
        value, problem = _times_power(values, c, power)
        if problem:
            out_of_range[name] = problem
        return value

    return {
        "d_hidden": int(w.shape[0]),
        "n_features": int(w.shape[1]),
        "features_per_dimension": scaled("features_per_dimension", _number(features_per_dimension(v))),
        "features_per_dimension_invariant": _number(features_per_dimension_invariant(v)),
        "dimensions_per_feature": scaled("dimensions_per_feature", _number(dimensions_per_feature(v))),
        "dimensions_per_feature_invariant": _number(dimensions_per_feature_invariant(v)),
        "feature_scale": scaled("feature_scale", s),
        "feature_norms": scaled("feature_norms", norms),
        # s = 0 only for an all-zero W, whose norms and interference are 0 too.
        "feature_norms_relative": [x / s if s else 0.0 for x in norms],
        "interference": scaled("interference", overlaps),
        "interference_relative": [x / s**2 if s else 0.0 for x in overlaps],
        "feature_dimensionality": D,
        "mean_feature_dimensionality": float(np.mean(D)),
        "sum_feature_dimensionality": float(np.sum(D)),
        "represented": kept,
        "n_represented": sum(kept),
        "geometry": [group.to_dict() for group in groups],
        "geometry_description": describe(groups),
        "scaling": dict(SCALING),
        "out_of_float64_range": out_of_range,
    }


# float64's normal range: below it a value loses digits (subnormal) or becomes 0.
_FLOAT64 = np.finfo(np.float64)
_LOG10_RANGE = (math.log10(_FLOAT64.tiny), math.log10(_FLOAT64.max))


def _times_power(value: float | None, c: float, power: int) -> tuple[float | None, str]:
    """``value · c^power`` in float64 and ``""``, or ``None`` and why float64 cannot hold it.

    Multiplied one factor of ``c`` at a time, so an intermediate lies between ``value`` and
    the result and cannot overflow when neither does.
    """
    if value is None or value == 0:
        return value, ""  # None: infinite already (an all-zero W); 0 is exact at any scale
    log10 = math.log10(abs(value)) + power * math.log10(c)
    if not _LOG10_RANGE[0] <= log10 <= _LOG10_RANGE[1]:
        mantissa, exponent = 10 ** (log10 - math.floor(log10)), math.floor(log10)
        return None, (f"about {math.copysign(mantissa, value):.2g}e{exponent:+d}, beyond float64's range "
                      f"({_FLOAT64.tiny:.2g} to {_FLOAT64.max:.2g})")
    for _ in range(abs(power)):
        value = value * c if power > 0 else value / c
    return value, ""


def _number(value: Any) -> float | None:
    """A scalar as a Python float; ``None`` for inf/NaN, which JSON cannot hold."""
    x = float(value)
    return x if math.isfinite(x) else None


def _floats(values: Any) -> list[float]:
    return [float(x) for x in np.asarray(values, dtype=np.float64)]
