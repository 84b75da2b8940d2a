"""Figures for the superposition toy model (Elhage et al. 2022, "Toy Models of Superposition").

Every function here is pure: numpy-like arrays in, a new :class:`matplotlib.figure.Figure`
out. Nothing touches ``pyplot`` or global ``rcParams``, so figures can be built under any
backend (Agg in tests) and saved with :func:`toylab.figures.save`.

Weight matrices use one vocabulary everywhere: ``W`` has shape ``(models, d_hidden,
n_features)`` and feature ``i`` is the *column* ``W[..., :, i]`` (written ``W_i``, with unit
vector ``Ŵ_i = W_i / ‖W_i‖``). A single ``(d_hidden, n_features)`` matrix is accepted as one
model. Measures of ``W`` (feature norms, interference) come from :mod:`toylab.metrics`, never
from a re-implementation here, so a figure and a summary table cannot disagree.

Reference: N. Elhage et al., "Toy Models of Superposition", Transformer Circuits Thread, 2022.
https://transformer-circuits.pub/2022/toy_model/index.html
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter

from toylab import metrics
from toylab.errors import ConfigError
from toylab.figures import _style as st

# Per-feature dimensionality ``D = dims / k`` of each polytope the paper finds, largest first:
# value, fraction as text, name. Taken from the geometry classifier, so a reference line and a
# table's polytope name cannot disagree.
POLYTOPE_FRACTIONS: tuple[tuple[float, str, str], ...] = tuple(sorted(
    ((dims / k, "1" if dims == k else f"{dims}/{k}", name) for (k, dims), name in metrics.POLYTOPES.items()),
    reverse=True,
))

_MAX_PANELS_PER_ROW = 10  # feature_vectors wraps into rows beyond this many models


# ----------------------------------------------------------------------------------------------
# Checks: one-line ConfigErrors that name the function and the shapes.
# ----------------------------------------------------------------------------------------------


def _as_models(W, fn: str) -> np.ndarray:
    """``W`` as a float array of shape (models, d_hidden, n_features); 2-D means one model."""
    W = np.asarray(W, dtype=float)
    if W.ndim == 2:
        W = W[None]
    if W.ndim != 3 or 0 in W.shape:
        raise ConfigError(
            f"{fn} needs W shaped (models, d_hidden, n_features) or (d_hidden, n_features) "
            f"with no empty axis, got shape {W.shape}"
        )
    return W


def _titles(titles: Sequence[str] | None, models: int, fn: str) -> list[str]:
    if titles is None:
        return [f"model {k}" for k in range(models)]
    if isinstance(titles, str):
        titles = [titles]
    titles = [str(t) for t in titles]
    if len(titles) != models:
        raise ConfigError(
            f"{fn} got {len(titles)} titles for {models} models; pass one title per model "
            "(or titles=None for 'model 0', 'model 1', ...)"
        )
    return titles


def _feature_probability(p, fn: str) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if not np.all((p > 0) & (p <= 1)):
        bad = p[~((p > 0) & (p <= 1))].ravel()[0]
        raise ConfigError(
            f"{fn} needs feature_probability = 1 - S in (0, 1] (it is plotted as 1/p on a log "
            f"axis), got {bad}"
        )
    return p


def _integer_feature_ticks(ax: Axes, n: int, *, x: bool, y: bool) -> None:
    """Feature-index ticks: every index up to 10 features, a few integers beyond."""
    for on, axis in ((x, ax.xaxis), (y, ax.yaxis)):
        if not on:
            continue
        if n <= 10:
            axis.set_ticks(range(n))
        else:
            axis.set_major_locator(MaxNLocator(nbins=5, integer=True))


def _log_x(ax: Axes, x: np.ndarray) -> None:
    """Log x axis padded a little beyond the data, with decade ticks."""
    ax.set_xscale("log")
    lo, hi = float(np.min(x)), float(np.max(x))
    ax.set_xlim(lo / 1.35, hi * 1.35)
    ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.xaxis.set_minor_formatter(NullFormatter())


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def feature_vectors(W, titles: Sequence[str] | None = None, importance=None) -> Figure:
    """Each feature's direction ``W_i`` in the 2-D hidden space, one square panel per model.

    Every column ``W_i ∈ R²`` is drawn as a line from the origin ending in a dot, so a feature
    with a dedicated dimension is a lone axis-aligned spoke, an antipodal pair is two opposite
    spokes, and five features in superposition form a pentagon. Colour is importance ``I_i``
    (viridis: most important yellow, least purple), as in the paper. All panels share one
    symmetric scale, so lengths compare across models. Panels run in a single row for up to
    10 models and wrap into balanced rows beyond.

    Mirrors the introduction figure of Elhage et al. (2022): five features in two dimensions
    as sparsity increases (PCA-like, then an antipodal pair, then a pentagon).

    Args:
        W: weights, shape (models, 2, n_features) or (2, n_features).
        titles: one panel title per model, e.g. ``"p = 0.05\\npentagon"``; ``None`` numbers
            the models.
        importance: ``I_i``, shape (n_features,) or (models, n_features); ``None`` draws every
            feature in one colour. A colorbar is added when importances differ.

    Returns:
        A figure with one axes per model (plus one colorbar axes when importance varies).
        Each panel holds exactly one ``Line2D`` per feature.

    Raises:
        ConfigError: ``d_hidden != 2`` (the shape is named), or titles/importance of the wrong
            length.

    Example:
        >>> import numpy as np
        >>> angles = 2 * np.pi * np.arange(5) / 5
        >>> pentagon = np.stack([np.cos(angles), np.sin(angles)])  # (d_hidden=2, n_features=5)
        >>> fig = feature_vectors(pentagon[None], ["pentagon"])
        >>> len(fig.axes), len(fig.axes[0].lines)
        (1, 5)
    """
    fn = "feature_vectors"
    W = _as_models(W, fn)
    models, d_hidden, n_features = W.shape
    if d_hidden != 2:
        raise ConfigError(
            f"{fn} draws feature directions in the plane, so it needs d_hidden == 2, but W has "
            f"shape {W.shape} (models, d_hidden, n_features); use norms_and_interference for "
            "larger hidden spaces"
        )
    titles = _titles(titles, models, fn)

    # 1. Colours: one per (model, feature), from importance when it varies.
    norm = None
    imp = np.zeros((models, n_features))  # also the drawing order: least important first
    colors = np.broadcast_to(np.array(to_rgba(st.INK)), (models, n_features, 4))
    if importance is not None:
        given = np.asarray(importance, dtype=float)
        if given.shape not in {(n_features,), (models, n_features)}:
            raise ConfigError(
                f"{fn} needs importance shaped (n_features,) = ({n_features},) or "
                f"(models, n_features) = ({models}, {n_features}), got {given.shape}"
            )
        imp = np.broadcast_to(given, (models, n_features))
        lo, hi = float(imp.min()), float(imp.max())
        if hi > lo:
            norm = Normalize(vmin=lo, vmax=hi)
            colors = st.IMPORTANCE(norm(imp))
        else:  # constant importance carries no information: one colour
            colors = np.broadcast_to(np.array(st.IMPORTANCE(0.5)), (models, n_features, 4))

    # 2. Layout: ≤ 10 panels in one row, otherwise balanced rows.
    rows = int(np.ceil(models / _MAX_PANELS_PER_ROW))
    cols = int(np.ceil(models / rows))
    panel = 1.45  # inches per panel
    title_lines = max(t.count("\n") + 1 for t in titles)
    width = cols * panel + (0.75 if norm is not None else 0.0)
    height = rows * (panel + 0.16 * title_lines) + 0.1
    fig = st.new_figure(width, height)
    grid = fig.add_gridspec(rows, cols)

    # 3. One shared symmetric limit so lengths compare across panels.
    longest = float(np.max(metrics.feature_norms(W)))
    lim = 1.18 * longest if longest > 0 else 1.0

    axes = []
    for k in range(models):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        axes.append(ax)
        # faint cross-hair through the origin (a LineCollection, so ax.lines holds features only)
        ax.add_collection(
            LineCollection(
                [[(-lim, 0), (lim, 0)], [(0, -lim), (0, lim)]],
                colors="#d9d9d9",
                linewidths=0.6,
                zorder=0,
            )
        )
        # least important first, so the most important feature is drawn on top
        for i in np.argsort(imp[k], kind="stable"):
            x, y = W[k, :, i]
            ax.plot([0.0, x], [0.0, y], color=colors[k, i], lw=1.6, solid_capstyle="round",
                    zorder=2)
        ax.scatter(W[k, 0], W[k, 1], c=colors[k], s=20, zorder=3, edgecolors="none")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("#bbbbbb")
            spine.set_linewidth(0.6)
        ax.set_title(titles[k], fontsize=st.TITLE_SIZE, pad=4)

    if norm is not None:
        cbar = fig.colorbar(ScalarMappable(norm, st.IMPORTANCE), ax=axes, shrink=0.8,
                            aspect=15, pad=0.02)
        cbar.set_label(r"importance $I_i$", fontsize=st.LABEL_SIZE)
        cbar.ax.tick_params(labelsize=st.TICK_SIZE)
    return fig


def norms_and_interference(W, titles: Sequence[str] | None = None) -> Figure:
    """``WᵀW`` and the feature norms coloured by interference, one column per model.

    Top: the ``n × n`` Gram matrix ``WᵀW`` on a diverging map centred at 0 (red positive,
    blue negative) with one symmetric scale shared by all models; a diagonal matrix means every
    represented feature has its own direction. Bottom: a horizontal bar of ``‖W_i‖`` per
    feature (feature 0 on top), coloured by its interference

    .. math:: \\sum_{j \\neq i} (\\hat W_i \\cdot W_j)^2

    black when the feature is orthogonal to all others, bright when it shares its direction
    (superposition). The interference scale runs from 0 to ``max(1, largest value)``, so 1 is
    the interference from one antipodal partner of equal norm. Norms and interference are
    :func:`toylab.metrics.feature_norms` and :func:`toylab.metrics.interference`, the values a
    summary table reports (a column below 1e-6 of the largest norm has no direction and no
    interference there, so it has none here either).

    Mirrors the ``WᵀW`` / ``‖W_i‖`` columns of Elhage et al. (2022), section "Demonstrating
    Superposition" (one column per sparsity level).

    Args:
        W: weights, shape (models, d_hidden, n_features) or (d_hidden, n_features).
        titles: one column title per model; ``None`` numbers the models.

    Returns:
        A figure with ``2 * models + 2`` axes: per model the heatmap then the bar chart, then
        the ``WᵀW`` colorbar and the interference colorbar.

    Example:
        >>> import numpy as np
        >>> fig = norms_and_interference(np.eye(3)[None, :2], ["dense"])  # 2 of 3 features
        >>> len(fig.axes)
        4
    """
    fn = "norms_and_interference"
    W = _as_models(W, fn)
    models, _, n_features = W.shape
    titles = _titles(titles, models, fn)

    gram = np.einsum("mhi,mhj->mij", W, W)  # (models, n_features, n_features)
    # The measures a summary table reports, so a near-zero column reads the same in both.
    norms = np.asarray(metrics.feature_norms(W), dtype=float)  # (models, n_features)
    interference = np.asarray(metrics.interference(W), dtype=float)  # (models, n_features)

    gram_max = float(np.abs(gram).max()) or 1.0
    gram_norm = Normalize(vmin=-gram_max, vmax=gram_max)
    inter_norm = Normalize(vmin=0.0, vmax=max(1.0, float(interference.max())))
    bar_max = 1.08 * max(float(norms.max()), 1e-12)

    col = 1.55  # inches per model column
    title_lines = max(t.count("\n") + 1 for t in titles)
    bar_height = float(np.clip(0.13 * n_features, 1.0, 2.2))
    fig = st.new_figure(models * col + 1.35, col + bar_height + 0.45 + 0.16 * title_lines)
    grid = fig.add_gridspec(2, models, height_ratios=[col, bar_height])

    top, bottom = [], []
    for k in range(models):
        ax = fig.add_subplot(grid[0, k])
        top.append(ax)
        image = ax.imshow(gram[k], cmap=st.DIVERGING, norm=gram_norm, interpolation="nearest")
        _integer_feature_ticks(ax, n_features, x=True, y=True)
        ax.set_title(titles[k], fontsize=st.TITLE_SIZE, pad=4)
        st.tidy(ax)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.tick_params(length=0)
        if k == 0:
            ax.set_ylabel(r"feature $i$", fontsize=st.LABEL_SIZE)
        else:
            ax.tick_params(labelleft=False)

        bx = fig.add_subplot(grid[1, k])
        bottom.append(bx)
        bx.barh(np.arange(n_features), norms[k], height=0.78,
                color=st.INTERFERENCE(inter_norm(interference[k])))
        bx.set_ylim(n_features - 0.5, -0.5)  # feature 0 on top, rows aligned with the heatmap
        bx.set_xlim(0.0, bar_max)
        bx.xaxis.set_major_locator(MaxNLocator(nbins=3))
        _integer_feature_ticks(bx, n_features, x=False, y=True)
        st.tidy(bx)
        bx.set_xlabel(r"$\|W_i\|$", fontsize=st.LABEL_SIZE, labelpad=1)
        if k == 0:
            bx.set_ylabel(r"feature $i$", fontsize=st.LABEL_SIZE)
        else:
            bx.tick_params(labelleft=False)

    cbar = fig.colorbar(image, ax=top, shrink=0.85, aspect=14, pad=0.02)
    cbar.set_label(r"$(W^\top W)_{ij}$", fontsize=st.LABEL_SIZE)
    cbar.ax.tick_params(labelsize=st.TICK_SIZE)
    cbar.ax.yaxis.set_major_locator(MaxNLocator(nbins=5, symmetric=True))
    cbar2 = fig.colorbar(ScalarMappable(inter_norm, st.INTERFERENCE), ax=bottom, shrink=0.95,
                         aspect=10, pad=0.02)
    cbar2.set_label("interference\n" + r"$\Sigma_{j\neq i}\,(\hat W_i\cdot W_j)^2$",
                    fontsize=st.LABEL_SIZE)
    cbar2.ax.tick_params(labelsize=st.TICK_SIZE)
    cbar2.ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    return fig


def dimensions_per_feature(
    feature_probability,
    dims_per_feature,
    *,
    n_hidden: int | None = None,
    best=None,
    best_label: str | None = None,
) -> Figure:
    """Dimensions per feature ``m / ‖W‖_F²`` against ``1/(1−S)`` on a log axis.

    Each model (e.g. every seed of every sparsity) is a light dot. Dotted reference lines mark
    the values the paper finds the curve "sticks" to over wide ranges of sparsity: 1 (each
    feature has its own dimension) and 1/2 (antipodal pairs). If ``best`` is given, a line
    connects the chosen models (the paper keeps the lowest-loss seed per setting).

    Mirrors the "dimensions per feature vs 1/(1−S)" figure of Elhage et al. (2022), section
    "The Geometry of Superposition" / "Feature Dimensionality".

    Args:
        feature_probability: ``p = 1 − S`` per model, any shape, values in (0, 1]; plotted at
            ``x = 1/p``. Repeated values (several seeds per setting) are expected.
        dims_per_feature: ``m / ‖W‖_F²`` per model, same shape as ``feature_probability``.
        n_hidden: ``m``, shown in the title when given.
        best: optional line. Either a boolean mask shaped like ``feature_probability`` that
            selects one model per setting (e.g. the lowest-loss seed), or a float array with
            one value per distinct ``p`` in order of increasing ``1/p`` (e.g. the seed mean).
        best_label: legend text for the line; defaults to "lowest-loss seed" for a mask and
            "best" for values.

    Returns:
        A figure with one axes.

    Example:
        >>> import numpy as np
        >>> p = np.repeat([1.0, 0.1, 0.01], 3)
        >>> fig = dimensions_per_feature(p, np.full(9, 0.5), n_hidden=2)
        >>> len(fig.axes)
        1
    """
    fn = "dimensions_per_feature"
    p = _feature_probability(feature_probability, fn).ravel()
    y = np.asarray(dims_per_feature, dtype=float)
    if y.size != p.size:
        raise ConfigError(
            f"{fn} needs one dims_per_feature value per feature_probability, got shapes "
            f"{np.shape(dims_per_feature)} and {np.shape(feature_probability)}"
        )
    y = y.ravel()
    x = 1.0 / p

    # 1. Line through the best models, if asked.
    line = None
    if best is not None:
        best = np.asarray(best)
        if best.dtype == bool:
            if best.size != p.size:
                raise ConfigError(
                    f"{fn}: a boolean `best` mask must match feature_probability's shape "
                    f"{np.shape(feature_probability)}, got {best.shape}"
                )
            mask = best.ravel()
            order = np.argsort(x[mask], kind="stable")
            line = (x[mask][order], y[mask][order], best_label or "lowest-loss seed")
        else:
            xs = np.unique(x)
            if best.size != xs.size:
                raise ConfigError(
                    f"{fn}: float `best` needs one value per distinct feature probability "
                    f"({xs.size}, in order of increasing 1/p), got shape {best.shape}; or pass a "
                    "boolean mask over models"
                )
            line = (xs, best.astype(float).ravel(), best_label or "best")

    # 2. Axis range: at least [0, 1.15]; extreme values (barely trained models) are clipped to
    #    2.5 and drawn as triangles on the top edge.
    finite = y[np.isfinite(y)]
    top = float(np.clip(1.08 * finite.max(), 1.15, 2.5)) if finite.size else 1.15
    clipped = y > top

    fig = st.new_figure(5.2, 3.5)
    ax = fig.add_subplot()
    label = "each model" if line is None else "each seed"
    ax.scatter(x[~clipped], y[~clipped], s=14, color=st.POINT, alpha=0.35, edgecolors="none",
               label=label, zorder=2)
    if clipped.any():
        ax.scatter(x[clipped], np.full(clipped.sum(), top), s=18, marker="^", color=st.POINT,
                   alpha=0.6, edgecolors="none", clip_on=False, zorder=2,
                   label=f"above {top:.2g} (clipped)")
    if line is not None:
        ax.plot(line[0], line[1], color=st.INK, lw=1.4, marker="o", ms=3, label=line[2],
                zorder=3)

    # 3. The sticky values.
    for value, text in ((1.0, "1: one feature per dimension"), (0.5, "1/2: antipodal pairs")):
        ax.axhline(value, color=st.REFERENCE, ls=":", lw=1.0, zorder=1)
        ax.annotate(text, xy=(1.0, value), xycoords=("axes fraction", "data"),
                    xytext=(-3, 2), textcoords="offset points", ha="right", va="bottom",
                    fontsize=st.NOTE_SIZE, color="#555555")

    _log_x(ax, x)
    ax.set_ylim(0.0, top)
    ax.set_xlabel(r"$1/(1-S)$  (= 1 / feature probability)", fontsize=st.LABEL_SIZE)
    ax.set_ylabel(r"dimensions per feature  $m/\|W\|_F^2$", fontsize=st.LABEL_SIZE)
    title = "Dimensions per feature" + (f"  (m = {n_hidden})" if n_hidden is not None else "")
    ax.set_title(title, fontsize=st.TITLE_SIZE)
    st.tidy(ax)
    ax.legend(fontsize=st.NOTE_SIZE, frameon=False, loc="lower left")
    return fig


def feature_dimensionality(feature_probability, D) -> Figure:
    """Per-feature dimensionality ``D_i`` of every feature of every model against ``1/(1−S)``.

    .. math:: D_i = \\frac{\\|W_i\\|^2}{\\sum_j (\\hat W_i \\cdot W_j)^2}

    Each feature is a dot at ``x = 1/p`` (with a small deterministic horizontal jitter so
    stacked points stay visible). Dotted lines mark the exact values of the geometries the paper
    finds: 1 dedicated dimension, 3/4 tetrahedron, 2/3 triangle, 1/2 digon (antipodal pair),
    2/5 pentagon, 3/8 square antiprism. Points cluster on these lines.

    Mirrors the per-feature dimensionality scatter of Elhage et al. (2022), section "The
    Geometry of Superposition" / "Feature Dimensionality".

    Args:
        feature_probability: ``p = 1 − S`` per model, shape (models,), values in (0, 1].
        D: ``D_i`` per feature, shape (models, n_features). NaN (undefined for a zero-norm
            feature) is not drawn.

    Returns:
        A figure with one axes.

    Example:
        >>> import numpy as np
        >>> fig = feature_dimensionality(np.array([0.5, 0.05]), np.array([[1, 1, 0], [.4, .4, .4]]))
        >>> len(fig.axes)
        1
    """
    fn = "feature_dimensionality"
    p = _feature_probability(feature_probability, fn)
    D = np.asarray(D, dtype=float)
    if p.ndim != 1 or D.ndim != 2 or D.shape[0] != p.shape[0]:
        raise ConfigError(
            f"{fn} needs feature_probability shaped (models,) and D shaped (models, n_features), "
            f"got {p.shape} and {D.shape}"
        )
    models, n_features = D.shape

    # Multiplicative jitter (±6%) is uniform on the log axis; fixed seed keeps the function pure.
    jitter = np.exp(np.random.default_rng(0).uniform(-0.06, 0.06, size=D.shape))
    x = (1.0 / p)[:, None] * jitter  # (models, n_features)

    fig = st.new_figure(5.8, 3.7)
    ax = fig.add_subplot()
    for value, fraction, name in POLYTOPE_FRACTIONS:
        ax.axhline(value, color=st.REFERENCE, ls=":", lw=0.9, zorder=1)
        # 2/5 and 3/8 are 0.025 apart: push their labels apart vertically.
        dy = {0.4: 3.0, 0.375: -3.0}.get(round(value, 3), 0.0)
        ax.annotate(f"{fraction}  {name}", xy=(1.0, value), xycoords=("axes fraction", "data"),
                    xytext=(4, dy), textcoords="offset points", ha="left", va="center",
                    fontsize=st.NOTE_SIZE, color="#555555", annotation_clip=False)
    ax.scatter(x.ravel(), D.ravel(), s=10, color=st.POINT, alpha=0.4, edgecolors="none",
               zorder=2)

    _log_x(ax, 1.0 / p)
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel(r"$1/(1-S)$  (= 1 / feature probability)", fontsize=st.LABEL_SIZE)
    ax.set_ylabel(r"feature dimensionality $D_i$", fontsize=st.LABEL_SIZE)
    ax.set_title(r"$D_i = \|W_i\|^2 \,/\, \Sigma_j\,(\hat W_i\cdot W_j)^2$"
                 f"    ({models} models × {n_features} features)", fontsize=st.TITLE_SIZE)
    st.tidy(ax)
    return fig


def loss_history(steps, raw, labels: Sequence[str], elicited=None) -> Figure:
    """Loss against training step on log-log axes, one colour per model.

    Solid lines are the raw evaluation; when ``elicited`` is given the same models after
    elicitation (a brief fine-tune before measuring, e.g. refitting ``b`` with ``W`` frozen) are
    drawn dashed in the same colour, so the raw-vs-elicited gap is the vertical distance
    between a solid and a dashed line. Steps ≤ 0 and losses ≤ 0 cannot sit on a log axis and
    are left out.

    Not a figure of Elhage et al. (2022); it shows toylab's compute-schedule evaluations
    (every k-fold increase of compute, see :mod:`toylab.train.schedule`).

    Args:
        steps: evaluation steps, shape (evals,).
        raw: raw losses, shape (models, evals) (or (evals,) for one model).
        labels: one legend label per model.
        elicited: elicited losses, same shape as ``raw``, or ``None``.

    Returns:
        A figure with one axes.

    Example:
        >>> import numpy as np
        >>> steps = np.array([1, 4, 16, 64])
        >>> fig = loss_history(steps, np.array([[1.0, .5, .2, .1]]), ["seed 0"])
        >>> len(fig.axes), len(fig.axes[0].lines)
        (1, 1)
    """
    fn = "loss_history"
    steps = np.asarray(steps, dtype=float)
    raw = np.atleast_2d(np.asarray(raw, dtype=float))
    if steps.ndim != 1 or raw.ndim != 2 or raw.shape[1] != steps.shape[0]:
        raise ConfigError(
            f"{fn} needs steps shaped (evals,) and raw shaped (models, evals), got {steps.shape} "
            f"and {raw.shape}"
        )
    models = raw.shape[0]
    if isinstance(labels, str):
        labels = [labels]
    labels = [str(s) for s in labels]
    if len(labels) != models:
        raise ConfigError(f"{fn} got {len(labels)} labels for {models} models; pass one per model")
    if elicited is not None:
        elicited = np.atleast_2d(np.asarray(elicited, dtype=float))
        if elicited.shape != raw.shape:
            raise ConfigError(
                f"{fn} needs elicited shaped like raw {raw.shape}, got {elicited.shape}"
            )
    keep = steps > 0
    if not keep.any():
        raise ConfigError(f"{fn} needs at least one step > 0 for the log axis, got {steps}")

    outside = models > 6  # many series: legend goes outside the axes, on the right
    fig = st.new_figure(5.4 + (1.3 if outside else 0.0), 3.5)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log", nonpositive="mask")
    for k, color in enumerate(st.series_colors(models)):
        ax.plot(steps[keep], raw[k, keep], color=color, lw=1.4, label=labels[k])
        if elicited is not None:
            ax.plot(steps[keep], elicited[k, keep], color=color, lw=1.2, ls="--")

    ax.set_xlabel("training step", fontsize=st.LABEL_SIZE)
    ax.set_ylabel(r"loss $L$", fontsize=st.LABEL_SIZE)
    ax.grid(True, which="major", color="#eeeeee", lw=0.6)
    ax.set_axisbelow(True)
    st.tidy(ax)

    handles, names = ax.get_legend_handles_labels()
    if elicited is not None:  # a key for the line styles, after the model entries
        handles += [Line2D([], [], color=st.INK, lw=1.4),
                    Line2D([], [], color=st.INK, lw=1.2, ls="--")]
        names += ["raw", "elicited"]
    if outside:
        fig.legend(handles, names, loc="outside right upper", fontsize=st.NOTE_SIZE,
                   frameon=False)
    else:
        ax.legend(handles, names, fontsize=st.NOTE_SIZE, frameon=False)
    return fig
