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
    as_weight_matrix,
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
      as dicts) with ``geometry_description``; and ``scaling`` (:data:`SCALING`).
      ``dimensions_per_feature`` of an all-zero matrix (infinite) is ``None``.

    Raises:
      ConfigError: anything :func:`~toylab.metrics.as_weight_matrix` refuses, or more than
        two axes (measure one matrix of a stack at a time).

    Example:
      >>> import numpy as np
      >>> angles = 2 * np.pi * np.arange(5) / 5
      >>> pentagon = 3.0 * np.stack([np.cos(angles), np.sin(angles)])  # (2, 5), norms 3
      >>> result = measure(pentagon)
      >>> round(result["features_per_dimension"], 3), round(result["features_per_dimension_invariant"], 3)
      (22.5, 2.5)
      >>> result["geometry_description"]
      'pentagon{0,1,2,3,4}'
    """
    w = as_weight_matrix(W, feature_axis=feature_axis)  # (d_hidden, n_features), checked
    if w.ndim != 2:
        raise ConfigError(
            f"measure takes one weight matrix, got shape {tuple(w.shape)} (a stack of "
            f"{math.prod(w.shape[:-2])}); measure W[i] for one model at a time"
        )
    scale = _number(feature_scale(w))
    D = _floats(feature_dimensionality(w))
    norms = _floats(feature_norms(w))
    overlaps = _floats(interference(w))
    kept = [bool(x) for x in np.asarray(represented(w, threshold))]
    groups = geometry(w, norm_threshold=threshold)
    return {
        "d_hidden": int(w.shape[0]),
        "n_features": int(w.shape[1]),
        "features_per_dimension": _number(features_per_dimension(w)),
        "features_per_dimension_invariant": _number(features_per_dimension_invariant(w)),
        "dimensions_per_feature": _number(dimensions_per_feature(w)),
        "dimensions_per_feature_invariant": _number(dimensions_per_feature_invariant(w)),
        "feature_scale": scale,
        "feature_norms": norms,
        # s = 0 only for an all-zero W, whose norms and interference are 0 too.
        "feature_norms_relative": [x / scale if scale else 0.0 for x in norms],
        "interference": overlaps,
        "interference_relative": [x / scale**2 if scale else 0.0 for x in overlaps],
        "feature_dimensionality": D,
        "mean_feature_dimensionality": float(np.mean(D)),
        "sum_feature_dimensionality": float(np.sum(D)),
        "represented": kept,
        "n_represented": sum(kept),
        "geometry": [group.to_dict() for group in groups],
        "geometry_description": describe(groups),
        "scaling": dict(SCALING),
    }


def _number(value: Any) -> float | None:
    """A scalar as a Python float; ``None`` for inf/NaN, which JSON cannot hold."""
    x = float(value)
    return x if math.isfinite(x) else None


def _floats(values: Any) -> list[float]:
    return [float(x) for x in np.asarray(values, dtype=np.float64)]
