"""Figures: pure functions from results (arrays, and the metrics' typed results) to a Figure.

Nothing here uses ``pyplot`` or global matplotlib state; write a figure to disk with
:func:`save` (PNG at 150 dpi and SVG).

Example:
    >>> import numpy as np
    >>> from toylab import figures
    >>> fig = figures.feature_vectors(np.eye(2)[None], ["orthonormal"])
    >>> paths = figures.save(fig, "/tmp/toylab-figs", "orthonormal")  # doctest: +SKIP
"""

from toylab.figures._style import save
from toylab.figures.superposition import (
    POLYTOPE_FRACTIONS,
    dimensions_per_feature,
    feature_dimensionality,
    feature_vectors,
    loss_history,
    norms_and_interference,
)

__all__ = [
    "POLYTOPE_FRACTIONS",
    "dimensions_per_feature",
    "feature_dimensionality",
    "feature_vectors",
    "loss_history",
    "norms_and_interference",
    "save",
]

# Multi-component learning / S-curves (Jermyn & Shlegeris 2022).
from toylab.figures.scurves import (  # noqa: E402
    LossCurves,
    alignment,
    loss_curves,
    mode_strengths,
    plateau_vs_init,
    rank_sweep,
)

__all__ += ["LossCurves", "alignment", "loss_curves", "mode_strengths", "plateau_vs_init", "rank_sweep"]

# Scale sensitivity of superposition measures (the rescaling check).
from toylab.figures.rescale import rescale_check  # noqa: E402

__all__ += ["rescale_check"]

# Phase diagrams (Elhage et al. 2022, §4).
from toylab.figures.phase import phase_diagram  # noqa: E402

__all__ += ["phase_diagram"]

# Interpretable capability against capability (Olah's diagram, measured on toy models).
from toylab.figures.capability import capability_along_training, capability_axes  # noqa: E402

__all__ += ["capability_axes", "capability_along_training"]

# The myopia experiment (after Krueger, Maharaj & Leike 2020).
from toylab.figures.myopia import cooperation_curves, shutdown_epochs  # noqa: E402

__all__ += ["cooperation_curves", "shutdown_epochs"]
