"""Measurements of trained weights.

Superposition (Elhage et al. 2022, "Toy Models of Superposition"): jittable per-matrix and
per-feature measures in :mod:`toylab.metrics.superposition`, and the host-side polytope
classifier in :mod:`toylab.metrics.geometry`. All take ``W`` of shape
``(..., d_hidden, n_features)`` with features as columns (``feature_axis=0`` for rows), from
numpy, JAX or PyTorch. :func:`~toylab.metrics.summary.measure` reports every measure of one
matrix, scale-dependent and scale-invariant side by side (the rescaling check).
"""

from toylab.metrics.geometry import (
    D_TOLERANCE,
    NOT_REPRESENTED,
    OTHER,
    OVERLAP_THRESHOLD,
    POLYTOPES,
    RANK_TOLERANCE,
    FeatureGroup,
    describe,
    describe_dicts,
    geometry,
)
from toylab.metrics.summary import SCALING, measure
from toylab.metrics.superposition import (
    REPRESENTED_THRESHOLD,
    as_weight_matrix,
    checked_weight_matrix,
    dimensions_per_feature,
    dimensions_per_feature_invariant,
    feature_dimensionality,
    feature_norms,
    feature_scale,
    features_per_dimension,
    features_per_dimension_invariant,
    interference,
    n_represented,
    represented,
)

__all__ = [
    # superposition: jittable, batched over leading axes
    "REPRESENTED_THRESHOLD",
    "as_weight_matrix",
    "checked_weight_matrix",
    "features_per_dimension",
    "dimensions_per_feature",
    "feature_scale",
    "features_per_dimension_invariant",
    "dimensions_per_feature_invariant",
    "feature_norms",
    "feature_dimensionality",
    "interference",
    "represented",
    "n_represented",
    # geometry: host-side, one matrix
    "POLYTOPES",
    "NOT_REPRESENTED",
    "OTHER",
    "OVERLAP_THRESHOLD",
    "RANK_TOLERANCE",
    "D_TOLERANCE",
    "FeatureGroup",
    "geometry",
    "describe",
    "describe_dicts",
    # every measure of one matrix, scale-dependent and scale-invariant side by side
    "SCALING",
    "measure",
]

from toylab.metrics import lowrank  # noqa: E402  (mode strengths, alignment, bumps)

__all__ += ["lowrank"]

from toylab.metrics.phases import classify_phase  # noqa: E402  (phase diagrams, Elhage et al. §4)

__all__ += ["classify_phase"]

from toylab.metrics import sae  # noqa: E402  (SAE quality: L0, FVU, dead latents, MMCS, MCC, spliced loss)

__all__ += ["sae"]

from toylab.metrics import capability  # noqa: E402  (interpretable capability per feature)

__all__ += ["capability"]
