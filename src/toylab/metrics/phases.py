"""Which phase a trained superposition model is in, as seen from one *extra* feature.

Elhage et al. (2022, §4) draw phase diagrams over feature density and the relative importance
of one extra feature; each trained model is one of three phases, named for what happens to
that feature:

- ``not_represented``: its column of ``W`` is negligible (the other features keep the
  dimensions);
- ``dedicated``: it is represented and has a dimension to itself, ``D_extra ≥ 0.9``;
- ``superposition``: it is represented and shares its dimension, ``D_extra < 0.9`` (1/2 for an
  antipodal pair, 2/3 in a triangle).

``D`` is the per-feature dimensionality of :func:`toylab.metrics.feature_dimensionality` and
"represented" is :func:`toylab.metrics.represented` (a norm of at least 1/4 of the largest),
so the classification does not depend on the weights' scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toylab.errors import ConfigError
from toylab.metrics.superposition import feature_dimensionality, represented
from toylab.theory.phases import PHASES, Phase

__all__ = ["DEDICATED_DIMENSIONALITY", "classify_phase"]

# A feature with D_i ≥ this owns its dimension. Between the antipodal pair's 1/2 (or a
# triangle's 2/3) and 1; a feature whose neighbour is a quarter of its norm has D ≈ 0.94.
DEDICATED_DIMENSIONALITY = 0.9


def classify_phase(W: Any, extra: int = -1) -> np.ndarray:
    """The phase of one or many trained models, from the extra feature's column.

    Args:
      W: weights of shape ``(..., m, n)`` (features are columns), any array type.
      extra: the extra feature's index (default: the last).

    Returns:
      An object array of phase names (:data:`toylab.theory.phases.PHASES`), shape ``W.shape[:-2]``.

    Example:
      >>> classify_phase(np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, -1.0]]])).tolist()
      ['not_represented', 'dedicated', 'superposition']
    """
    W = np.asarray(W, dtype=float)
    if W.ndim < 2 or W.shape[-1] < 2:
        raise ConfigError(f"W has shape {W.shape}: expected (..., m, n) with n ≥ 2 features as columns")
    if not -W.shape[-1] <= extra < W.shape[-1]:
        raise ConfigError(f"extra={extra}: expected a feature index for n = {W.shape[-1]} features")
    shown = np.asarray(represented(W))[..., extra]
    owns = np.asarray(feature_dimensionality(W))[..., extra] >= DEDICATED_DIMENSIONALITY
    names: tuple[Phase, ...] = PHASES
    index = np.where(~shown, 0, np.where(owns, 1, 2))
    return np.asarray(names, dtype=object)[index]
