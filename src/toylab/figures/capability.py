"""Figures for interpretable capability: Olah's axes, capability on x, interpretable capability on y.

Pure functions: the study's rows in, a new Figure out (see :mod:`toylab.figures`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from toylab.errors import ConfigError
from toylab.figures import _style as st

__all__ = ["capability_axes", "capability_along_training"]

_DEFINITIONS = (("geometry", "-", "o", "geometry (D_i ≥ 0.9)"), ("sae", "--", "s", "SAE match (cos ≥ 0.9)"))


def _families(rows: Sequence[dict[str, Any]], fn: str) -> list[int]:
    if not rows:
        raise ConfigError(f"{fn} needs at least one row")
    return sorted({r["n_features"] for r in rows})


def capability_axes(rows: Sequence[dict[str, Any]]) -> Figure:
    """Per family (columns): interpretable capability against capability (top) and the fraction F (bottom).

    Both axes are in units of the trivial loss (``C / L_trivial``: the share of the best
    constant output's loss the model removes), so densities whose losses differ by orders of
    magnitude share one scale. One line per density and definition, each point one model width
    ``m`` (growing along the line); the grey diagonal is ``IC = C`` (everything interpretable).
    Rows as in ``toylab reproduce capability --json``.
    """
    families = _families(rows, "capability_axes")
    densities = sorted({r["feature_probability"] for r in rows}, reverse=True)
    colors = dict(zip(densities, st.series_colors(len(densities)), strict=True))
    fig = st.new_figure(4.2 * len(families), 6.4)
    axes = fig.subplots(2, len(families), squeeze=False)
    for column, n in enumerate(families):
        top, bottom = axes[0, column], axes[1, column]
        largest = 0.0
        for p in densities:
            line = sorted((r for r in rows if r["n_features"] == n and r["feature_probability"] == p),
                          key=lambda r: r["n_hidden"])
            scale = np.array([r["loss_trivial"] for r in line])
            C = np.array([r["capability"] for r in line]) / scale
            largest = max(largest, float(np.nanmax(C)) if C.size else 0.0)
            for definition, style, marker, _ in _DEFINITIONS:
                ic = np.array([np.nan if r["interpretable_capability"][definition] is None
                               else r["interpretable_capability"][definition] for r in line]) / scale
                fraction = np.array([np.nan if r["fraction"][definition] is None else r["fraction"][definition]
                                     for r in line])
                top.plot(C, ic, style, marker=marker, ms=3, lw=1, color=colors[p])
                bottom.plot(C, fraction, style, marker=marker, ms=3, lw=1, color=colors[p])
        top.plot([0, largest], [0, largest], color=st.REFERENCE, lw=0.6, zorder=0)
        top.set_title(f"n = {n} features, m = {min(r['n_hidden'] for r in rows if r['n_features'] == n)}"
                      f"…{max(r['n_hidden'] for r in rows if r['n_features'] == n)}", fontsize=st.TITLE_SIZE)
        top.set_ylabel("interpretable capability IC / L_trivial", fontsize=st.LABEL_SIZE)
        bottom.set_ylabel("fraction F = IC / C", fontsize=st.LABEL_SIZE)
        bottom.set_ylim(-0.05, 1.05)
        for ax in (top, bottom):
            ax.set_xlabel("capability C / L_trivial = 1 − L_model / L_trivial", fontsize=st.LABEL_SIZE)
            st.tidy(ax)
    handles = [Line2D([], [], color=colors[p], lw=1.5, label=f"p = {p:g}") for p in densities]
    handles += [Line2D([], [], color=st.INK, ls=style, marker=marker, ms=3, lw=1, label=label)
                for _, style, marker, label in _DEFINITIONS]
    axes[0, -1].legend(handles=handles, fontsize=st.NOTE_SIZE, frameon=False, loc="upper left")
    return fig


def capability_along_training(trajectories: Sequence[dict[str, Any]]) -> Figure:
    """Each model's path through (C, IC) over training, one panel per density: solid
    IC_geometry, dashed IC_sae (where the study trained an SAE on that evaluation's weights).

    Axes in units of the trivial loss, as in :func:`capability_axes`. Colour: the hidden width
    ``m``; a dot marks the end of training.
    """
    families = _families(trajectories, "capability_along_training")
    points = [t for t in trajectories if t["n_features"] == families[0]]
    densities = sorted({t["feature_probability"] for t in points}, reverse=True)
    widths = sorted({t["n_hidden"] for t in points})
    colors = dict(zip(widths, st.series_colors(len(widths)), strict=True))
    fig = st.new_figure(2.6 * len(densities), 2.8)
    axes = fig.subplots(1, len(densities), squeeze=False)[0]
    for ax, p in zip(axes, densities, strict=True):
        largest = 0.0
        for m in widths:
            path = sorted((t for t in points if t["feature_probability"] == p and t["n_hidden"] == m),
                          key=lambda t: t["step"])
            scale = np.array([t["loss_trivial"] for t in path])
            C = np.array([t["capability"] for t in path]) / scale
            ic = np.array([t["geometry"] for t in path]) / scale
            largest = max(largest, float(C.max()) if C.size else 0.0)
            ax.plot(C, ic, lw=1, color=colors[m], label=f"m = {m}")
            ax.plot(C[-1:], ic[-1:], "o", ms=3, color=colors[m])
            with_sae = np.array([t.get("sae") is not None for t in path])
            if with_sae.any():
                sae = np.array([t["sae"] for t in path if t.get("sae") is not None]) / scale[with_sae]
                ax.plot(C[with_sae], sae, "--", lw=1, color=colors[m])
                ax.plot(C[with_sae][-1:], sae[-1:], "s", ms=3, color=colors[m])
        ax.plot([0, largest], [0, largest], color=st.REFERENCE, lw=0.6, zorder=0)
        # At init C is far below 0 (ReLU(WᵀW x) of random W is worse than a constant): the
        # axis starts near 0 so the part of training where capability is gained stays readable.
        ax.set_xlim(-0.05 * largest, 1.05 * largest)
        ax.set_ylim(-0.1 * largest, 1.05 * largest)  # IC of those early weights can be far below 0 too
        ax.set_title(f"n = {families[0]}, p = {p:g}", fontsize=st.TITLE_SIZE)
        ax.set_xlabel("C / L_trivial", fontsize=st.LABEL_SIZE)
        st.tidy(ax)
    axes[0].set_ylabel("IC / L_trivial along training", fontsize=st.LABEL_SIZE)
    handles, _ = axes[-1].get_legend_handles_labels()
    handles += [Line2D([], [], color=st.INK, lw=1, label="geometry"),
                Line2D([], [], color=st.INK, ls="--", lw=1, label="SAE match")]
    axes[-1].legend(handles=handles, fontsize=st.NOTE_SIZE, frameon=False)
    return fig
