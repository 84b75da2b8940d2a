"""Figures for multi-component learning: S-shaped loss curves, plateaus and sudden drops.

A task that needs several components to be right at once (a low-rank target ``C`` fitted by a
product of matrices ``Z``) learns each target singular value ``s_k`` in its own S-curve, so the
loss is a staircase: plateau, sudden drop, plateau (Jermyn & Shlegeris 2022). For two balanced,
aligned components gradient flow has a closed form (Saxe et al. 2014): the learned strength of
mode ``k`` obeys ``u̇ = 2u(s − u)``, so

.. math:: u_k(t) = \\frac{s_k e^{2 s_k t}}{e^{2 s_k t} - 1 + s_k / u_0},
          \\qquad L(t) = \\tfrac12 \\sum_k (s_k - u_k(t))^2 .

Every function here is pure: numpy-like arrays and typed results in, a new
:class:`matplotlib.figure.Figure` out, with no ``pyplot`` or ``rcParams`` state. Write figures
with :func:`toylab.figures.save`.

Data conventions (one vocabulary for every function):

- ``t``: time = learning rate × steps, shape ``(evals,)``.
- ``loss``: shape ``(runs, evals)``, or ``(evals,)`` for one run.
- plateaus and drops: the plateau detector's own result,
  :class:`~toylab.metrics.plateaus.Plateaus` (from
  :func:`~toylab.metrics.plateaus.find_plateaus`), one per run, carried with the curves in a
  :class:`LossCurves`, whose shapes are checked once when it is built.
- bumps: :func:`toylab.metrics.lowrank.find_bumps`'s :class:`~toylab.metrics.lowrank.Bump` list.
- theory curves: arrays on their own time grid ``theory_t``, shape ``(T,)``.

References:
    A. Jermyn and B. Shlegeris, "Multi-Component Learning and S-Curves", AI Alignment Forum,
    2022. https://www.alignmentforum.org/posts/RKDQCB6smLWgs2Mhr

    A. M. Saxe, J. L. McClelland and S. Ganguli, "Exact solutions to the nonlinear dynamics of
    learning in deep linear neural networks", ICLR 2014. https://arxiv.org/abs/1312.6120
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter

from toylab.errors import ConfigError
from toylab.figures import _style as st
from toylab.metrics.lowrank import Bump
from toylab.metrics.plateaus import Plateau, Plateaus

__all__ = ["LossCurves", "loss_curves", "mode_strengths", "rank_sweep", "alignment", "plateau_vs_init"]

TIME_LABEL = r"time $t$  (learning rate × steps)"
THEORY_LABEL = "Saxe et al. theory"
PLATEAU_ALPHA = 0.18  # opacity of a plateau's shaded band
PLATEAU_BAND = 0.12  # height of a plateau's band, as a fraction of the axes height
# Log loss axes cannot show 0. Unless a floor is given, the axis stops at this fraction of the
# largest loss drawn (6 decades); curves that fall below simply leave through the bottom edge.
LOG_FLOOR_FRACTION = 1e-6
# On a log loss axis, plateau levels below this fraction of the run's largest loss are drawn at
# the floor: the detector measures levels to ~1% of the range, so they are 0 to its precision.
LEVEL_RESOLUTION = 1e-2
_MAX_LEGEND_SERIES = 8  # more runs/modes than this: a colorbar or no per-series legend entries
_MAX_PANELS_PER_ROW = 5


# ----------------------------------------------------------------------------------------------
# Input: loss curves with the detector's findings, checked once when built.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class LossCurves:
    """Loss curves of several runs on one time grid, with what the plateau detector found in each.

    The data of one axes of :func:`loss_curves` or one panel of :func:`rank_sweep`. Its shapes
    are checked here, once, where the data is put together; the figures draw it as it is.

    Attributes:
        t: time (learning rate × steps), shape (evals,), at least 2 evaluations.
        loss: shape (runs, evals); a (evals,) array is one run.
        found: :func:`~toylab.metrics.plateaus.find_plateaus`'s result for each run (a single
            result for one run); ``()``, when nothing was looked for, is stored as one empty
            result per run.
        labels: one legend label per run; ``()`` gives "loss" (one run) or "run r".
        theory_t: the theory's own time grid, shape (T,), or ``None``.
        theory_loss: the theory's loss, e.g. Saxe et al.'s ``L(t) = ½ Σ_k (s_k − u_k(t))²``,
            shape (T,) or (n, T) for several curves (stored as (n, T)), or ``None``.
        title: the axes title.

    Raises:
        ConfigError: shapes that do not fit together (named in the message), a theory curve
            without its time grid, or results or labels that are not one per run.

    Example:
        >>> from toylab.metrics.plateaus import find_plateaus
        >>> t = np.linspace(0, 5, 50)
        >>> curves = LossCurves(t, np.exp(-t), found=find_plateaus(t, np.exp(-t)))
        >>> curves.loss.shape, len(curves.found), curves.labels
        ((1, 50), 1, ('loss',))
    """

    t: np.ndarray
    loss: np.ndarray
    found: Plateaus | Sequence[Plateaus] = ()
    labels: str | Sequence[str] = ()
    theory_t: np.ndarray | None = None
    theory_loss: np.ndarray | None = None
    title: str = ""

    def __post_init__(self) -> None:
        fn = "LossCurves"
        t = _time(self.t, fn)
        given = np.asarray(self.loss, dtype=float)
        loss = given[None] if given.ndim == 1 else given
        if loss.ndim != 2 or loss.shape[1] != t.shape[0] or loss.shape[0] == 0:
            raise ConfigError(f"{fn} needs t shaped (evals,) and loss shaped (runs, evals) or (evals,), "
                              f"got {t.shape} and {given.shape}")
        runs = loss.shape[0]
        # A Plateaus is itself a tuple (plateaus, drops): test for it before treating it as a list.
        found = (self.found,) if isinstance(self.found, Plateaus) else tuple(self.found)
        found = found or tuple(Plateaus([], []) for _ in range(runs))
        if len(found) != runs:
            raise ConfigError(f"{fn} got {len(found)} plateau results for {runs} runs; pass one "
                              "find_plateaus result per run")
        odd = next((f for f in found if not isinstance(f, Plateaus)), None)
        if odd is not None:
            raise ConfigError(f"{fn} needs find_plateaus results (Plateaus) in found, got a "
                              f"{type(odd).__name__}")
        labels = (self.labels,) if isinstance(self.labels, str) else tuple(map(str, self.labels))
        labels = labels or (("loss",) if runs == 1 else tuple(f"run {r}" for r in range(runs)))
        if len(labels) != runs:
            raise ConfigError(f"{fn} got {len(labels)} labels for {runs} runs; pass one per run")
        theory_t, theory_loss = _theory(self.theory_t, self.theory_loss, fn, "theory_loss")
        for name, value in (("t", t), ("loss", loss), ("found", found), ("labels", labels),
                            ("theory_t", theory_t), ("theory_loss", theory_loss),
                            ("title", str(self.title))):
            object.__setattr__(self, name, value)  # frozen: set once, here


def _time(t, fn: str) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    if t.ndim != 1 or t.size < 2:
        raise ConfigError(f"{fn} needs t shaped (evals,) with at least 2 evaluations, got {t.shape}")
    return t


def _theory(theory_t, theory, fn: str, name: str, trailing: tuple[int, ...] = ()) -> tuple:
    """``(theory_t, theory)`` checked; ``(None, None)`` when neither is given.

    With no ``trailing`` axes the theory is one curve (T,) or several (n, T), returned as (n, T).
    """
    if theory_t is None and theory is None:
        return None, None
    if theory_t is None or theory is None:
        raise ConfigError(f"{fn} needs theory_t and {name} together (one is None); pass both or neither")
    tt = np.asarray(theory_t, dtype=float)
    th = np.asarray(theory, dtype=float)
    if trailing:
        want, ok = f"(T, {', '.join(map(str, trailing))})", th.shape[1:] == trailing
    else:
        want, ok = "(T,) or (n, T)", th.ndim in (1, 2)
        th = np.atleast_2d(th)
    if tt.ndim != 1 or not ok or th.shape[-1 - len(trailing)] != tt.shape[0]:
        raise ConfigError(f"{fn} needs theory_t shaped (T,) and {name} shaped {want}, got {tt.shape} "
                          f"and {np.shape(theory)}")
    return tt, th


def _floor(arrays: Sequence[np.ndarray | None], loss_floor: float | None, fn: str) -> float:
    """The bottom of a log loss axis: ``loss_floor``, or LOG_FLOOR_FRACTION × largest loss."""
    if loss_floor is not None:
        if not loss_floor > 0:
            raise ConfigError(f"{fn} needs loss_floor > 0 for a log loss axis, got {loss_floor}")
        return float(loss_floor)
    values = np.concatenate([np.ravel(a) for a in arrays if a is not None])
    values = values[np.isfinite(values) & (values > 0)]
    return LOG_FLOOR_FRACTION * float(values.max()) if values.size else 1e-12


# ----------------------------------------------------------------------------------------------
# Drawing helpers
# ----------------------------------------------------------------------------------------------


def _time_axis(ax: Axes, t: np.ndarray, log_time: bool, fn: str) -> float | None:
    """Linear axis over [min t, max t], or a log axis over the positive times.

    Returns the smallest positive time on a log axis (spans starting at 0 are clipped to it).
    """
    if not log_time:
        ax.set_xlim(float(np.nanmin(t)), float(np.nanmax(t)))
        return None
    positive = t[t > 0]
    if positive.size == 0:
        raise ConfigError(
            f"{fn} needs at least one time t > 0 for log_time=True, got t in "
            f"[{t.min()}, {t.max()}]"
        )
    ax.set_xscale("log", nonpositive="mask")
    lo, hi = float(positive.min()), float(positive.max())
    ax.set_xlim(lo, hi if hi > lo else lo * 10)
    ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.xaxis.set_minor_formatter(NullFormatter())
    return lo


def _loss_axis(ax: Axes, loss: np.ndarray, floor: float | None) -> None:
    if floor is None:
        finite = loss[np.isfinite(loss)]
        if finite.size and finite.min() >= 0:
            ax.set_ylim(bottom=0.0)
        return
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
    # Minor ticks only at the decades the labels skip: eight per decade over the ~7 decades a
    # loss falls through are ~60 ticks an axes, and laying them out was two thirds of a save.
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(1.0,), numticks=30))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _drawn_levels(run_plateaus: Sequence[Plateau], run_loss: np.ndarray, floor: float | None) -> np.ndarray:
    """Where each plateau's level goes on the loss axis.

    A level is measured to about 1% of the curve's range (the detector's fit tolerance is 2%):
    on a log axis a final plateau at ``0 ± 0.1%`` of the range would otherwise sit decades up,
    across a curve still falling there. Levels under LEVEL_RESOLUTION of the largest loss go
    to the floor, like the curves that reach 0.
    """
    levels = np.array([p.level for p in run_plateaus], dtype=float)
    if floor is None:
        return levels
    finite = run_loss[np.isfinite(run_loss)]
    top = float(finite.max()) if finite.size else 0.0
    return _below_floor(np.where(levels < LEVEL_RESOLUTION * top, 0.0, levels), floor)


def _below_floor(y: np.ndarray, floor: float | None) -> np.ndarray:
    """Values for a log axis: anything ≤ 0 is moved just under the floor (off the axes), so a
    curve reaching 0 leaves through the bottom edge rather than breaking off early."""
    return y if floor is None else np.maximum(y, floor * 1e-3)


def _grid(ax: Axes) -> None:
    ax.grid(True, which="major", color="#eeeeee", lw=0.6)
    ax.set_axisbelow(True)


def _draw_panel(ax: Axes, curves: LossCurves, *, named: bool, log_time: bool, log_loss: bool,
                loss_floor: float | None, fn: str) -> None:
    """One axes of loss curves: runs, plateau levels and bands, drop markers, theory, axes scales.

    ``ax.lines`` holds exactly one line per run then one per theory curve; each plateau is one
    patch; levels and drops are collections. ``named`` gives each run's line its label.
    """
    t, loss = curves.t, curves.loss  # (evals,), (runs, evals)
    floor = _floor([loss, curves.theory_loss], loss_floor, fn) if log_loss else None
    t_min = _time_axis(ax, t, log_time, fn)
    colors = st.series_colors(loss.shape[0])
    lw = 1.4 if loss.shape[0] <= 3 else 1.0
    for r, (color, found) in enumerate(zip(colors, curves.found)):
        # 1. Plateau levels: a thin line over [start, end] (the bands come in _plateau_bands).
        if found.plateaus:
            starts = [p.start if t_min is None else max(p.start, t_min) for p in found.plateaus]
            ax.hlines(_drawn_levels(found.plateaus, loss[r], floor), starts,
                      [p.end for p in found.plateaus], colors=[color], lw=0.8, alpha=0.9, zorder=1)
        # 2. The run itself.
        ax.plot(t, _below_floor(loss[r], floor), color=color, lw=lw, zorder=2,
                label=curves.labels[r] if named else None)
        # 3. Drops: a small downward triangle on the curve at the drop time.
        if found.drops:
            times = np.array([d.time for d in found.drops])
            finite = np.isfinite(loss[r])
            y = np.interp(times, t[finite], loss[r][finite]) if finite.any() else times * np.nan
            ax.scatter(times, _below_floor(y, floor), marker="v", s=22, color=[color],
                       edgecolors="white", linewidths=0.5, zorder=4)
    # 4. Theory: dashed black, on top.
    for curve in () if curves.theory_loss is None else curves.theory_loss:
        ax.plot(curves.theory_t, _below_floor(curve, floor), color=st.INK, ls="--", lw=1.1, zorder=3)
    _loss_axis(ax, loss, floor)
    _plateau_bands(ax, curves, colors, floor, t_min)


def _plateau_bands(ax: Axes, curves: LossCurves, colors: Sequence, floor: float | None,
                   t_min: float | None) -> None:
    """One translucent band per plateau over [start, end], centred on its level.

    The band is PLATEAU_BAND of the axes height whatever the scale, so it is drawn in axes
    coordinates and must come after the axis limits are final (they are frozen here). Bands of
    different runs only overlap where their plateaus do, unlike full-height spans.
    """
    ax.set_ylim(ax.get_ylim())  # freeze: the band positions below depend on the limits
    to_axes = ax.transAxes.inverted()
    x0 = ax.get_xlim()[0]
    for r, found in enumerate(curves.found):
        for p, level in zip(found.plateaus, _drawn_levels(found.plateaus, curves.loss[r], floor)):
            y = float(np.clip(to_axes.transform(ax.transData.transform((x0, level)))[1], 0, 1))
            start = p.start if t_min is None else max(p.start, t_min)
            ax.axvspan(start, max(p.end, start), ymin=max(y - PLATEAU_BAND / 2, 0.0),
                       ymax=min(y + PLATEAU_BAND / 2, 1.0), color=colors[r],
                       alpha=PLATEAU_ALPHA, lw=0, zorder=0)


def _key_handles(panels: Sequence[LossCurves] = (), *, bumps: bool = False) -> tuple:
    """Legend proxies for the marks the panels share: plateau, drop, bump, theory."""
    found = [f for curves in panels for f in curves.found]
    plateaus, drops = any(f.plateaus for f in found), any(f.drops for f in found)
    theory = any(curves.theory_loss is not None for curves in panels)
    handles, names = [], []
    grey = "#777777"
    if plateaus:
        handles.append((Patch(facecolor=grey, alpha=2 * PLATEAU_ALPHA, lw=0),
                        Line2D([], [], color=grey, lw=0.8)))
        names.append("plateau")
    if drops:
        handles.append(Line2D([], [], ls="none", marker="v", ms=5, color=grey, mec="white",
                              mew=0.5))
        names.append("drop")
    if bumps:
        handles.append(Line2D([], [], ls="none", marker="o", ms=5, mfc="none", mec=st.INK, mew=0.9))
        names.append("bump")
    if theory:
        handles.append(Line2D([], [], color=st.INK, ls="--", lw=1.1))
        names.append(THEORY_LABEL)
    return handles, names


def _grid_shape(n: int) -> tuple[int, int]:
    rows = int(np.ceil(n / _MAX_PANELS_PER_ROW))
    return rows, int(np.ceil(n / rows))

# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def loss_curves(
    curves: LossCurves,
    *,
    log_time: bool = False,
    log_loss: bool = False,
    loss_floor: float | None = None,
) -> Figure:
    """Loss against time, one line per run, with plateaus shaded, drops marked and theory dashed.

    Each run's plateaus are translucent bands over ``[start, end]`` in the run's colour (alpha
    0.18, 12% of the axes height, centred on the plateau ``level``) with a thin line at the
    level; each drop is a small downward triangle on the curve at its ``time``. The theory
    curve (e.g. Saxe et al.'s closed form ``L(t) = ½ Σ_k (s_k − u_k(t))²``) is dashed black on
    the same axes. For a target with distinct singular values the picture is a staircase:
    plateau levels ``½ Σ_{j>k} s_j²``, each drop removing ``½ s_k²`` (Jermyn & Shlegeris 2022,
    rank-k figures).

    Args:
        curves: the runs, their :func:`~toylab.metrics.plateaus.find_plateaus` results, legend
            labels, theory and title (see :class:`LossCurves`).
        log_time: log time axis (times ≤ 0 are not drawn; spans starting there are clipped).
        log_loss: log loss axis, from ``loss_floor`` up; curves reaching 0 leave through the
            bottom edge.
        loss_floor: bottom of the log loss axis; ``None`` uses 1e-6 × the largest loss drawn.

    Returns:
        A figure with one axes: ``ax.lines`` holds one line per run then the theory curve(s),
        ``ax.patches`` one band per plateau.

    Raises:
        ConfigError: ``loss_floor ≤ 0``, or ``log_time`` with no time above 0.

    Example:
        >>> from toylab.metrics.plateaus import Plateau, Plateaus
        >>> t = np.linspace(0, 5, 50)
        >>> found = Plateaus([Plateau(start=0.0, end=1.0, level=0.9)], [])
        >>> fig = loss_curves(LossCurves(t, np.exp(-t), found=found))
        >>> len(fig.axes), len(fig.axes[0].lines), len(fig.axes[0].patches)
        (1, 1, 1)
    """
    fig = st.new_figure(6.6, 3.5)  # legend outside on the right: curves fill the whole axes
    ax = fig.add_subplot()
    _draw_panel(ax, curves, named=True, log_time=log_time, log_loss=log_loss,
                loss_floor=loss_floor, fn="loss_curves")
    ax.set_xlabel(TIME_LABEL, fontsize=st.LABEL_SIZE)
    ax.set_ylabel(r"loss $L$", fontsize=st.LABEL_SIZE)
    if curves.title:
        ax.set_title(curves.title, fontsize=st.TITLE_SIZE)
    _grid(ax)
    st.tidy(ax)

    handles, names = ax.get_legend_handles_labels()
    if curves.loss.shape[0] > _MAX_LEGEND_SERIES + 4:  # too many runs to name: key only
        handles, names = [], []
    extra = _key_handles([curves])
    handles, names = handles + extra[0], names + extra[1]
    fig.legend(handles, names, loc="outside right upper", fontsize=st.NOTE_SIZE, frameon=False)
    return fig


def mode_strengths(
    t,
    strengths,
    singular_values,
    *,
    theory_t=None,
    theory=None,
    log_time: bool = False,
    title: str | None = None,
) -> Figure:
    """Each target mode's learned strength against time: one S-curve per singular value.

    For a target ``C = Σ_k s_k a_k b_kᵀ`` (singular vectors ``a_k``, ``b_k``) the learned
    strength of mode ``k`` is the projection of the model ``Z`` on it,

    .. math:: u_k = a_k^\\top Z\\, b_k ,

    which rises from the init scale ``u_0`` to ``s_k`` in an S-curve, larger ``s_k`` first
    (Saxe et al. 2014; Jermyn & Shlegeris 2022). One colour per mode (modes numbered from 1,
    ``s_1 ≥ s_2 ≥ …`` as given); a dotted line in the same colour marks each target ``s_k``,
    and the theory, e.g. ``u_k(t) = s_k e^{2 s_k t} / (e^{2 s_k t} − 1 + s_k/u_0)``, is dashed
    in the same colour. Several runs are drawn thinner in the mode's colour. Up to 8 modes are
    named in the legend; beyond that a colorbar gives the mode index.

    Args:
        t: time (learning rate × steps), shape (evals,).
        strengths: ``u_k``, shape (evals, modes) or (runs, evals, modes).
        singular_values: ``s_k``, shape (modes,).
        theory_t: the theory's own time grid, shape (T,).
        theory: theory strengths, shape (T, modes).
        log_time: log time axis (times ≤ 0 are not drawn).
        title: axes title.

    Returns:
        A figure with one axes (plus a colorbar axes beyond 8 modes). ``ax.lines`` holds
        ``runs × modes`` data lines, then ``modes`` theory lines (dashed), then ``modes``
        dotted target lines.

    Example:
        >>> import numpy as np
        >>> t = np.linspace(0, 5, 50)
        >>> s = np.array([2.0, 1.0])
        >>> u = s / (1 + np.exp(-4 * (t[:, None] - 3 / s)))  # (evals, modes)
        >>> fig = mode_strengths(t, u, s)
        >>> len(fig.axes), len(fig.axes[0].lines)
        (1, 4)
    """
    fn = "mode_strengths"
    t = _time(t, fn)
    arr = np.asarray(strengths, dtype=float)
    u = arr[None] if arr.ndim == 2 else arr
    s = np.asarray(singular_values, dtype=float)
    if u.ndim != 3 or u.shape[1] != t.shape[0] or s.shape != (u.shape[2],) or 0 in u.shape:
        raise ConfigError(
            f"{fn} needs t shaped (evals,), strengths shaped (evals, modes) or (runs, evals, "
            f"modes) and singular_values shaped (modes,), got {t.shape}, {arr.shape} and {s.shape}"
        )
    runs, _, modes = u.shape
    theory_t, theory = _theory(theory_t, theory, fn, "theory", trailing=(modes,))

    many = modes > _MAX_LEGEND_SERIES
    fig = st.new_figure(5.4 + (1.6 if many else 1.3), 3.5)
    ax = fig.add_subplot()
    _time_axis(ax, t, log_time, fn)
    colors = st.series_colors(modes)

    lw, alpha = (1.4, 1.0) if runs == 1 else (0.9, 0.6)
    for r in range(runs):
        for k in range(modes):
            ax.plot(t, u[r, :, k], color=colors[k], lw=lw, alpha=alpha, zorder=2,
                    label=f"mode {k + 1}  ($s_{{{k + 1}}}$ = {s[k]:.3g})" if r == 0 else None)
    if theory is not None:
        for k in range(modes):
            ax.plot(theory_t, theory[:, k], color=colors[k], ls="--", lw=1.1, zorder=3)
    for k in range(modes):
        ax.axhline(s[k], color=colors[k], ls=":", lw=0.9, alpha=0.9, zorder=1)

    ax.set_xlabel(TIME_LABEL, fontsize=st.LABEL_SIZE)
    ax.set_ylabel(r"mode strength $u_k$", fontsize=st.LABEL_SIZE)
    finite = u[np.isfinite(u)]
    low = min(0.0, float(finite.min())) if finite.size else 0.0
    top = max(float(np.nanmax(s)), float(finite.max()) if finite.size else 0.0)
    ax.set_ylim(low - 0.02 * (top - low), top + 0.08 * (top - low or 1.0))
    if title:
        ax.set_title(title, fontsize=st.TITLE_SIZE)
    _grid(ax)
    st.tidy(ax)

    handles, names = ([], []) if many else ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="#777777", ls=":", lw=0.9))
    names.append(r"target $s_k$")
    if theory is not None:
        handles.append(Line2D([], [], color="#777777", ls="--", lw=1.1))
        names.append(THEORY_LABEL)
    if many:
        cmap = ListedColormap(colors)
        cbar = fig.colorbar(ScalarMappable(Normalize(0.5, modes + 0.5), cmap), ax=ax, pad=0.02,
                            aspect=25)
        cbar.set_label(r"mode $k$", fontsize=st.LABEL_SIZE)
        cbar.ax.tick_params(labelsize=st.TICK_SIZE)
        cbar.ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    fig.legend(handles, names, loc="outside right upper", fontsize=st.NOTE_SIZE, frameon=False)
    return fig


def rank_sweep(
    panels: Sequence[LossCurves],
    *,
    suptitle: str | None = None,
    log_loss: bool = True,
    log_time: bool = False,
    loss_floor: float | None = None,
) -> Figure:
    """Loss curves for a sweep over target rank, one panel per rank, plateaus shaded.

    Each panel is drawn as :func:`loss_curves` draws one axes (runs coloured by seed, plateaus
    as translucent bands with a level line, drops as triangles, theory dashed black), without
    per-run legend entries. Panels run in one row up to 5 and wrap beyond; the time label is
    shared; the loss axis is log by default because ranks differ by orders of magnitude in
    loss. Loss is ≥ 0 and a log axis cannot show 0, so each panel's axis stops at
    ``loss_floor`` (default: 1e-6 × that panel's largest loss) and curves that fall below leave
    through the bottom edge.

    Mirrors the rank 1, 2, 4, 10, 100 figures of Jermyn & Shlegeris (2022), one figure per
    optimizer and loss (``suptitle``, e.g. ``"Adam, MSE"``).

    Args:
        panels: one :class:`LossCurves` per panel, its ``title`` e.g. ``"rank 10"``.
        suptitle: figure title, e.g. the optimizer and loss.
        log_loss: log loss axes (default) or linear from 0.
        log_time: log time axes.
        loss_floor: bottom of every log loss axis; ``None`` picks one per panel.

    Returns:
        A figure with one axes per panel, in order.

    Raises:
        ConfigError: no panels, ``loss_floor ≤ 0``, or ``log_time`` with no time above 0.

    Example:
        >>> t = np.linspace(0, 5, 50)
        >>> panels = [LossCurves(t, r * np.exp(-t), title=f"rank {r}") for r in (1, 2, 4)]
        >>> len(rank_sweep(panels, suptitle="SGD, MSE").axes)
        3
    """
    if not panels:
        raise ConfigError("rank_sweep needs at least one panel (a LossCurves per rank), got none")
    rows, cols = _grid_shape(len(panels))
    fig = st.new_figure(1.7 + 2.25 * cols, 0.55 + 2.0 * rows + (0.25 if suptitle else 0.0))
    grid = fig.add_gridspec(rows, cols)
    for i, curves in enumerate(panels):
        ax = fig.add_subplot(grid[i // cols, i % cols])
        _draw_panel(ax, curves, named=False, log_time=log_time, log_loss=log_loss,
                    loss_floor=loss_floor, fn="rank_sweep")
        if not log_time:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        if curves.title:
            ax.set_title(curves.title, fontsize=st.TITLE_SIZE, pad=4)
        if i % cols == 0:
            ax.set_ylabel(r"loss $L$", fontsize=st.LABEL_SIZE)
        _grid(ax)
        st.tidy(ax)

    fig.supxlabel(TIME_LABEL, fontsize=st.LABEL_SIZE)
    if suptitle:
        fig.suptitle(suptitle, fontsize=st.TITLE_SIZE + 1)
    handles, names = _key_handles(panels)
    if handles:
        handles.insert(0, Line2D([], [], color="#777777", lw=1.2))
        names.insert(0, "run (colour = seed)")
        fig.legend(handles, names, loc="outside right upper", fontsize=st.NOTE_SIZE,
                   frameon=False)
    return fig


def alignment(
    t,
    alignment,
    *,
    bumps: Sequence[Bump] = (),
    log_time: bool = False,
    title: str | None = None,
) -> Figure:
    """Alignment of each learned direction with each target mode, one panel per target mode.

    Panel ``k`` shows, for every learned direction ``j`` (one colour each), its alignment with
    target mode ``k`` against time (labels count from 1, as ``s_1 ≥ s_2 ≥ …``), e.g.
    ``|cos|`` between the ``j``-th learned singular vector and the ``k``-th target one.
    Usually one learned direction rises to 1 per mode; when two learned directions compete for
    the same target direction one rises then falls again, a non-monotone "bump" (Jermyn &
    Shlegeris 2022, seen more often with Adam). Bumps, if given, are circled on the curve.

    Args:
        t: time (learning rate × steps), shape (evals,).
        alignment: shape (evals, learned, modes).
        bumps: :func:`~toylab.metrics.lowrank.find_bumps`'s result, each bump circled on
            curve ``alignment[:, learned, mode]`` at ``time``. The indices are array indices
            (from 0), so ``mode=0`` is the panel titled "target mode 1".
        log_time: log time axes.
        title: figure title.

    Returns:
        A figure with one axes per target mode (plus a colorbar axes beyond 8 learned
        directions); each panel holds ``learned`` lines.

    Example:
        >>> from toylab.metrics.lowrank import Bump
        >>> t = np.linspace(0, 5, 50)
        >>> a = np.broadcast_to(np.eye(2), (50, 2, 2)) * (t / 5)[:, None, None]
        >>> bump = Bump(learned=1, mode=0, time=2.0, rise=0.4, fall=0.4)
        >>> fig = alignment(t, a, bumps=[bump])
        >>> len(fig.axes), len(fig.axes[0].lines)
        (2, 2)
    """
    fn = "alignment"
    t = _time(t, fn)
    a = np.asarray(alignment, dtype=float)
    if a.ndim != 3 or a.shape[0] != t.shape[0] or 0 in a.shape:
        raise ConfigError(
            f"{fn} needs t shaped (evals,) and alignment shaped (evals, learned, modes), got "
            f"{t.shape} and {a.shape}"
        )
    _, learned, modes = a.shape
    for b in bumps:  # a bump of another history would index the wrong curve, or none
        if not (0 <= b.learned < learned and 0 <= b.mode < modes):
            raise ConfigError(f"{fn}: a bump points at learned={b.learned}, mode={b.mode}, outside "
                              f"alignment of shape {a.shape} (evals, learned, modes)")

    rows, cols = _grid_shape(modes)
    many = learned > _MAX_LEGEND_SERIES
    fig = st.new_figure(0.4 + 2.25 * cols + (0.5 if many else 1.2), 0.5 + 2.0 * rows)
    grid = fig.add_gridspec(rows, cols)
    colors = st.series_colors(learned)
    finite = a[np.isfinite(a)]
    low = -1.05 if finite.size and finite.min() < -1e-9 else 0.0
    axes = []
    for k in range(modes):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        axes.append(ax)
        _time_axis(ax, t, log_time, fn)
        for j in range(learned):
            ax.plot(t, a[:, j, k], color=colors[j], lw=1.3, label=f"learned {j + 1}")
        here = [b for b in bumps if b.mode == k]
        if here:
            y = [np.interp(b.time, t, a[:, b.learned, k]) for b in here]
            ax.scatter([b.time for b in here], y, s=40, facecolors="none", edgecolors=st.INK,
                       linewidths=0.9, zorder=4)
        ax.set_ylim(low, 1.05)
        ax.set_title(f"target mode {k + 1}", fontsize=st.TITLE_SIZE, pad=4)
        if k % cols == 0:
            ax.set_ylabel("alignment", fontsize=st.LABEL_SIZE)
        if not log_time:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        _grid(ax)
        st.tidy(ax)

    fig.supxlabel(TIME_LABEL, fontsize=st.LABEL_SIZE)
    if title:
        fig.suptitle(title, fontsize=st.TITLE_SIZE + 1)
    handles, names = ([], []) if many else axes[0].get_legend_handles_labels()
    extra = _key_handles(bumps=bool(bumps))
    handles, names = handles + extra[0], names + extra[1]
    if many:
        cbar = fig.colorbar(ScalarMappable(Normalize(0.5, learned + 0.5), ListedColormap(colors)),
                            ax=axes, pad=0.02, aspect=25)
        cbar.set_label(r"learned direction $j$", fontsize=st.LABEL_SIZE)
        cbar.ax.tick_params(labelsize=st.TICK_SIZE)
        cbar.ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    if handles:
        fig.legend(handles, names, loc="outside right upper", fontsize=st.NOTE_SIZE, frameon=False)
    return fig


def plateau_vs_init(
    init_scales,
    lengths: Mapping[str, Any],
    *,
    ylabel: str = "first plateau (steps)",
    title: str | None = None,
) -> Figure:
    """How long the first plateau lasts against the init scale ε, one line per optimizer.

    Gradient flow from a small init escapes the saddle exponentially, so its plateau grows
    like ``ln(1/ε)`` (a straight line on this log-ε axis, Saxe et al. 2014); an optimizer that
    moves each parameter by about its learning rate per step (Adam) escapes linearly, and its
    plateau barely depends on ε. Seeds are dots, their median a line.

    Args:
        init_scales: ε values, shape (scales,).
        lengths: label (e.g. ``"GD, lr 0.05"``) → plateau lengths, shape (scales,) or
            (scales, seeds); NaN (no drop found) is left out.
        ylabel: the unit of the lengths.
        title: axes title.

    Returns:
        A figure with one axes.

    Example:
        >>> eps = np.array([1e-1, 1e-2, 1e-3])
        >>> fig = plateau_vs_init(eps, {"GD": 10 * np.log(1 / eps), "Adam": [230.0, 231.0, 229.0]})
        >>> len(fig.axes[0].lines)
        4
    """
    fn = "plateau_vs_init"
    eps = np.asarray(init_scales, dtype=float)
    if eps.ndim != 1 or eps.size == 0 or not np.all(eps > 0):
        raise ConfigError(f"{fn} needs a 1-D array of positive init scales, got shape {eps.shape}")
    if not lengths:
        raise ConfigError(f"{fn} needs at least one series of plateau lengths")
    fig = st.new_figure(4.2, 3.0)
    ax = fig.add_subplot()
    any_absent = False
    for (label, values), color in zip(lengths.items(), st.series_colors(len(lengths))):
        values = np.asarray(values, dtype=float).reshape(eps.size, -1) if np.size(values) else None
        if values is None or values.shape[0] != eps.size:
            raise ConfigError(f"{fn}: {label!r} needs one row per init scale ({eps.size}), "
                             f"got shape {np.shape(lengths[label])}")
        for column in values.T:
            ax.plot(eps, column, "o", color=color, ms=2.5, alpha=0.45)
        # A scale where no seed had a drop (no plateau at all) breaks the line there.
        median = np.array([np.median(row[np.isfinite(row)]) if np.isfinite(row).any() else np.nan
                           for row in values])
        ax.plot(eps, median, "-", color=color, lw=1.4, label=label)
        absent = np.isnan(median)
        if absent.any():  # no drop at all: the curve fell from the start, a plateau of length 0
            ax.plot(eps[absent], np.zeros(absent.sum()), "x", color=color, ms=7, mew=1.6, clip_on=False)
            any_absent = True
    ax.set_xscale("log")
    ax.set_xlabel(r"init scale $\varepsilon$", fontsize=st.LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=st.LABEL_SIZE)
    ax.set_ylim(bottom=0)
    if title:
        ax.set_title(title, fontsize=st.TITLE_SIZE)
    handles, names = ax.get_legend_handles_labels()
    if any_absent:
        handles.append(Line2D([], [], ls="none", marker="x", color="#777777", ms=6, mew=1.4))
        names.append("no plateau (loss falls from the start)")
    ax.legend(handles, names, fontsize=st.NOTE_SIZE, frameon=False)
    _grid(ax)
    st.tidy(ax)
    return fig
