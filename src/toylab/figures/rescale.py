"""The rescaling sanity check in one figure: what ``W → cW`` does to a model and to its measures.

Pure: arrays in, a new :class:`matplotlib.figure.Figure` out (see :mod:`toylab.figures._style`).
Produced by :mod:`toylab.experiments.rescale` (``toylab rescale-check``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from toylab.errors import ConfigError
from toylab.figures import _style as st

__all__ = ["rescale_check"]

# The three measures drawn in each "measures" panel: key -> (legend label, colour index).
_MEASURES = {
    "features_per_dimension": ("features per dimension ‖W‖²/m", 0),
    "features_per_dimension_invariant": ("invariant: (Σ‖Wᵢ‖²)²/(m Σ‖Wᵢ‖⁴)", 1),
    "mean_feature_dimensionality": ("mean Dᵢ", 2),
}


def rescale_check(
    scales,
    *,
    accuracy,
    predictions_changed,
    classifier_measures: Mapping[str, np.ndarray],
    tms_loss,
    tms_measures: Mapping[str, np.ndarray],
    n_test: int,
) -> Figure:
    """Two rows of two panels against the factor ``c`` on a log axis.

    Top, the digits classifier with ``W_in → c·W_in``: test accuracy (with the count of changed
    predictions), and the measures of ``c·W_in``. Bottom, the superposition autoencoder with
    ``W → c·W``: its loss, and the same measures of ``c·W``. In each measures panel the dotted
    grey line is ``c²`` times the value at ``c = 1``: features per dimension follows it in both
    models, the invariant and the mean ``D_i`` stay flat; only the autoencoder's loss responds.

    Args:
      scales: the factors ``c > 0``, shape (scales,).
      accuracy, predictions_changed: the classifier's, shape (scales,).
      classifier_measures, tms_measures: ``features_per_dimension``,
        ``features_per_dimension_invariant`` and ``mean_feature_dimensionality``, each (scales,).
      tms_loss: the autoencoder's loss, shape (scales,).
      n_test: the number of test examples (for the "changed" label).

      A model that diverged has NaN everywhere: its panels say so instead of drawing.

    Returns:
      A figure with four axes.

    Example:
      >>> import numpy as np
      >>> c = np.array([0.1, 1.0, 10.0])
      >>> flat = np.ones(3)
      >>> m = {"features_per_dimension": c**2, "features_per_dimension_invariant": flat,
      ...      "mean_feature_dimensionality": flat / 2}
      >>> fig = rescale_check(c, accuracy=flat, predictions_changed=0 * c, classifier_measures=m,
      ...                     tms_loss=np.array([0.1, 0.01, 5.0]), tms_measures=m, n_test=100)
      >>> len(fig.axes)
      4
    """
    c = np.asarray(scales, dtype=float)
    if c.ndim != 1 or c.size == 0 or not np.all(c > 0):
        raise ConfigError(f"rescale_check needs scales shaped (scales,), all > 0, got {np.asarray(scales)!r}")
    series = {"accuracy": accuracy, "predictions_changed": predictions_changed, "tms_loss": tms_loss,
              **{f"classifier {k}": v for k, v in classifier_measures.items()},
              **{f"tms {k}": v for k, v in tms_measures.items()}}
    for name, values in series.items():
        if np.shape(values) != c.shape:
            raise ConfigError(f"rescale_check needs {name} shaped like scales {c.shape}, got {np.shape(values)}")

    fig = st.new_figure(8.6, 5.6)
    (acc_ax, cls_ax), (loss_ax, tms_ax) = fig.subplots(2, 2)

    # Classifier: accuracy, with the changed predictions written beside each point.
    acc_ax.set_ylim(0.0, 1.05)
    acc_ax.set_ylabel("test accuracy", fontsize=st.LABEL_SIZE)
    if np.isfinite(np.asarray(accuracy, dtype=float)).any():
        changed = np.asarray(predictions_changed, dtype=int)
        acc_ax.plot(c, accuracy, color=st.POINT, marker="o", ms=3.5, lw=1.4)
        low, high = float(np.min(accuracy)), float(np.max(accuracy))
        summary = (f"test accuracy {low:.3f} at every c" if low == high else f"test accuracy {low:.3f}–{high:.3f}")
        summary += (f"\npredictions changed vs c = 1: 0 of {n_test} at every c" if not changed.any()
                    else f"\npredictions changed vs c = 1: up to {changed.max()} of {n_test}")
    else:
        summary = "the classifier diverged: nothing to rescale"
    acc_ax.text(0.03, 0.06, summary, transform=acc_ax.transAxes, fontsize=st.NOTE_SIZE, color=st.INK)
    acc_ax.set_title("digits classifier, W_in → c·W_in: behaviour", fontsize=st.TITLE_SIZE)
    _measures_panel(cls_ax, c, classifier_measures, "measures of c·W_in (pixels as features)")

    # Autoencoder: the loss responds to the scale.
    if _drawable(tms_loss):
        loss_ax.plot(c, tms_loss, color=st.series_colors(4)[3], marker="o", ms=3.5, lw=1.4)
        loss_ax.set_yscale("log")
    else:
        _diverged_note(loss_ax, "the autoencoder diverged (every seed): nothing to rescale")
    loss_ax.axvline(1.0, color=st.REFERENCE, lw=0.8, ls=":")
    loss_ax.text(1.05, 0.97, "trained (c = 1)", transform=loss_ax.get_xaxis_transform(), va="top",
                 fontsize=st.NOTE_SIZE, color=st.REFERENCE)
    loss_ax.set_ylabel("loss (importance-weighted MSE)", fontsize=st.LABEL_SIZE)
    loss_ax.set_title("autoencoder (n = 5, m = 2), W → c·W: behaviour", fontsize=st.TITLE_SIZE)
    _measures_panel(tms_ax, c, tms_measures, "measures of c·W")

    for ax in (acc_ax, cls_ax, loss_ax, tms_ax):
        ax.set_xscale("log")
        ax.set_xlabel("c (weights multiplied by c)", fontsize=st.LABEL_SIZE)
        st.tidy(ax)
    return fig


def _drawable(values) -> bool:
    """Whether a log axis has anything to show: a finite value > 0."""
    values = np.asarray(values, dtype=float)
    return bool((np.isfinite(values) & (values > 0)).any())


def _diverged_note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=st.NOTE_SIZE,
            color=st.INK, wrap=True)


def _measures_panel(ax: Axes, c: np.ndarray, measures: Mapping[str, np.ndarray], title: str) -> None:
    ax.set_title(title, fontsize=st.TITLE_SIZE)
    if not _drawable(measures["features_per_dimension"]):
        _diverged_note(ax, "diverged: no measures")
        return
    colors = st.series_colors(3)
    for key, (label, k) in _MEASURES.items():
        ax.plot(c, measures[key], color=colors[k], marker="o", ms=3, lw=1.4, label=label)
    # c² through the value at c = 1 (interpolated on the log grid when 1 is not a grid point).
    fpd = np.asarray(measures["features_per_dimension"], dtype=float)
    at_one = np.exp(np.interp(0.0, np.log(c), np.log(fpd / c**2)))
    # A wide pale band under the curves: features per dimension runs along its middle.
    ax.plot(c, at_one * c**2, color=st.REFERENCE, lw=6, alpha=0.3, solid_capstyle="round",
            label="c² × value at c = 1", zorder=0)
    ax.set_yscale("log")
    ax.legend(fontsize=st.NOTE_SIZE, frameon=False, loc="upper left")
