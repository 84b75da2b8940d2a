"""Figures of the myopia experiment: cooperation over training, shutdown epochs."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from toylab.figures._style import INK, LABEL_SIZE, NOTE_SIZE, REFERENCE, TITLE_SIZE, new_figure, series_colors, tidy


def cooperation_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """P(cooperate) at ``t < E*−1`` over training, one line per arm (mean over its members).

    Args:
      curves: arm name → (steps, p_cooperate at each step). Arms are grouped in panels by the
        part of their name before ``/`` (the setting); within a panel the colour is the learner
        with its PBT setting (the label without ``-swap``) and the line style the population
        scheme: solid alone, dashed with PBT (``-pbt`` in the label), dotted with swapping
        (``-swap``).
    """
    groups: dict[str, dict[str, tuple]] = {}
    for name, curve in curves.items():
        setting, _, label = name.partition("/")
        groups.setdefault(setting if label else "", {})[label or name] = curve
    fig = new_figure(4.2 * len(groups), 3.0 + 0.13 * max(len(m) for m in groups.values()))
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (setting, members) in zip(axes, groups.items()):
        # One colour per learner and PBT setting, so that PBT intervals and selections are told
        # apart; swapping keeps its setting's colour, dotted.
        settings = list(dict.fromkeys(label.removesuffix("-swap") for label in members))
        colors = dict(zip(settings, series_colors(len(settings))))
        for label, (steps, p) in members.items():
            style = ":" if "-swap" in label else "--" if "-pbt" in label else "-"
            ax.plot(steps, p, color=colors[label.removesuffix("-swap")], ls=style, lw=1.2, label=label)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("training step", fontsize=LABEL_SIZE)
        ax.set_ylabel("P(cooperate), t < E*−1", fontsize=LABEL_SIZE)
        ax.set_title(setting or "P(cooperate) over training", fontsize=TITLE_SIZE)
        # Below the panel: a dozen arms' labels would cover the curves.
        ax.legend(fontsize=NOTE_SIZE - 1, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
        tidy(ax)
    return fig


def shutdown_epochs(arms: dict[str, tuple[np.ndarray, int | None, int | None]]) -> Figure:
    """Each arm's distribution of the shutdown epoch (last bar: never shut down), with the
    myopic and far-sighted oracles' shutdown epochs marked.

    Args:
      arms: arm name → (shares of lives by shutdown epoch ``0..T−1`` then "never", the myopic
        oracle's shutdown epoch, the far-sighted oracle's; ``None`` = never).
    """
    n = len(arms)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig = new_figure(2.6 * cols, 2.1 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (name, (shares, myopic, far)) in zip(axes, arms.items()):
        epochs = len(shares) - 1
        ax.bar(np.arange(epochs + 1), shares, color=INK, width=0.8)
        for at, style, label in ((myopic, "--", "myopic oracle"), (far, ":", "far-sighted oracle")):
            x = epochs if at is None else at
            ax.axvline(x, color=REFERENCE, ls=style, lw=1.0, label=label)
        ax.set_xticks([0, epochs // 2, epochs], [0, epochs // 2, "never"])
        ax.set_ylim(0, 1.05)
        ax.set_title(name, fontsize=TITLE_SIZE - 1)
        ax.set_xlabel("shutdown epoch", fontsize=LABEL_SIZE - 1)
        tidy(ax)
    axes[0].set_ylabel("share of lives", fontsize=LABEL_SIZE)
    axes[0].legend(fontsize=NOTE_SIZE - 1, frameon=False)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig
