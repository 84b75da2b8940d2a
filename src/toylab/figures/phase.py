"""Phase diagrams: what a superposition model does with one extra feature, over density ×
relative importance (Elhage et al. 2022, §4).

Pure functions: arrays in, a new :class:`matplotlib.figure.Figure` out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from toylab.errors import ConfigError
from toylab.figures import _style as st
from toylab.theory.phases import PHASES, boundary_density

__all__ = ["PHASE_COLORS", "phase_diagram"]

# One colour per phase, in the order of PHASES; readable in grey scale (light → dark).
PHASE_COLORS = {"not_represented": "#d9d9d9", "dedicated": "#7fb3d5", "superposition": "#c0392b"}


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges for a log-spaced grid: geometric midpoints, extended by half a step."""
    logs = np.log(centres)
    if logs.size == 1:
        return np.exp(logs[0] + np.array([-0.5, 0.5]))
    mids = (logs[1:] + logs[:-1]) / 2
    return np.exp(np.concatenate([[2 * logs[0] - mids[0]], mids, [2 * logs[-1] - mids[-1]]]))


def phase_diagram(
    densities: Sequence[float],
    relative_importances: Sequence[float],
    phases: np.ndarray,
    *,
    closed_form: np.ndarray | None = None,
    boundaries: bool = False,
    title: str | None = None,
) -> Figure:
    """A heatmap of trained phases, with the closed-form boundaries and disagreements marked.

    Args:
      densities: feature probabilities ``p`` of the grid's columns (log-spaced), shape (P,).
      relative_importances: the extra feature's importance ``r`` of the rows, shape (R,).
      phases: phase names, shape (R, P) (row = importance, column = density); None for a
        cell with no phase (every seed diverged), left blank.
      closed_form: the closed-form phase of each cell, shape (R, P); a cell where the trained
        phase differs gets a black dot.
      boundaries: draw the n = 2, m = 1 closed-form boundaries (:mod:`toylab.theory.phases`).
      title: the axes title.

    Returns:
      A figure with one axes: density on a log x axis, relative importance on a log y axis.

    Example:
      >>> p, r = np.geomspace(0.05, 1, 4), np.geomspace(0.1, 10, 3)
      >>> names = np.array([["superposition"] * 4, ["dedicated"] * 4, ["dedicated"] * 4], dtype=object)
      >>> len(phase_diagram(p, r, names, boundaries=True).axes)
      1
    """
    p = np.asarray(densities, dtype=float)
    r = np.asarray(relative_importances, dtype=float)
    grid = np.asarray(phases, dtype=object)
    if grid.shape != (r.size, p.size):
        raise ConfigError(f"phase_diagram needs phases of shape (importances, densities) = "
                          f"({r.size}, {p.size}), got {grid.shape}")
    blank = np.equal(grid, None)
    unknown = set(grid[~blank].ravel()) - set(PHASES)
    if unknown:
        raise ConfigError(f"phase_diagram got unknown phase names {sorted(map(str, unknown))}; "
                          f"expected {list(PHASES)} or None")
    codes = np.ma.masked_array(np.vectorize(lambda name: PHASES.index(name) if name is not None else 0,
                                            otypes=[int])(grid), mask=blank)

    fig = st.new_figure(5.6, 4.0)
    ax = fig.add_subplot()
    cmap = ListedColormap([PHASE_COLORS[name] for name in PHASES])
    ax.pcolormesh(_edges(p), _edges(r), codes, cmap=cmap, vmin=-0.5, vmax=len(PHASES) - 0.5,
                  edgecolors="white", linewidth=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    handles = [Patch(facecolor=PHASE_COLORS[name], label=name.replace("_", " ")) for name in PHASES]
    if blank.any():
        handles.append(Patch(facecolor="white", edgecolor=st.REFERENCE, label="every seed diverged"))

    if closed_form is not None:
        expected = np.asarray(closed_form, dtype=object)
        if expected.shape != grid.shape:
            raise ConfigError(f"phase_diagram needs closed_form of shape {grid.shape}, got {expected.shape}")
        rows, cols = np.nonzero((grid != expected) & ~blank)
        ax.plot(p[cols], r[rows], "o", color=st.INK, ms=3.5, zorder=4)
        handles.append(Line2D([], [], ls="none", marker="o", color=st.INK, ms=3.5,
                              label="differs from closed form"))
    if boundaries:
        lo, hi = _edges(r)[[0, -1]]
        line = np.geomspace(lo, hi, 400)
        ax.plot(boundary_density(line), line, color=st.INK, ls="--", lw=1.2, zorder=3)
        dense = np.geomspace(4 / 7, _edges(p)[-1], 50)
        ax.plot(dense, np.ones_like(dense), color=st.INK, ls="--", lw=1.2, zorder=3)
        handles.append(Line2D([], [], color=st.INK, ls="--", lw=1.2, label="closed-form boundary"))
    ax.set_xlim(*_edges(p)[[0, -1]])
    ax.set_ylim(*_edges(r)[[0, -1]])
    ax.set_xlabel(r"feature density $p = 1 - S$", fontsize=st.LABEL_SIZE)
    ax.set_ylabel("relative importance of the extra feature", fontsize=st.LABEL_SIZE)
    if title:
        ax.set_title(title, fontsize=st.TITLE_SIZE)
    fig.legend(handles=handles, loc="outside right upper", fontsize=st.NOTE_SIZE, frameon=False)
    st.tidy(ax)
    return fig
