"""S-curve figures: what is drawn (lines, plateau bands, drops, theory), layout, errors, saving."""

from __future__ import annotations

import dataclasses
import doctest

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere in this process

import matplotlib.pyplot as plt  # noqa: E402  (only to check that figures never register)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from toylab import figures  # noqa: E402
from toylab.errors import ConfigError  # noqa: E402
from toylab.figures import LossCurves, scurves  # noqa: E402
from toylab.metrics.lowrank import Bump  # noqa: E402
from toylab.metrics.plateaus import Drop, Plateau, Plateaus  # noqa: E402

S = np.array([3.0, 2.0, 1.0])  # target singular values s_k
U0 = 1e-6  # init scale


def saxe(t: np.ndarray, s: np.ndarray = S, u0: float = U0) -> np.ndarray:
    """Saxe et al.: u_k(t) = s e^{2st} / (e^{2st} − 1 + s/u0), (evals,) -> (evals, modes)."""
    return s / (1 + (s / u0 - 1) * np.exp(-2 * s * t[:, None]))


def staircase(t: np.ndarray) -> np.ndarray:
    """L = ½ Σ_k (s_k − u_k)²: (evals,) -> (evals,)."""
    return 0.5 * ((S - saxe(t)) ** 2).sum(-1)


T = np.linspace(0.0, 10.0, 201)
LOSS = np.stack([staircase(T), staircase(T * 0.9)])  # (runs=2, evals)
# What the plateau detector reports for each run (its own result type), written out by hand.
FOUND = [
    Plateaus([Plateau(0.0, 2.0, 7.0), Plateau(4.3, 5.5, 0.5)], [Drop(2.5, 4.5), Drop(6.9, 0.5)]),
    Plateaus([Plateau(0.0, 2.2, 7.0)], [Drop(2.8, 4.5)]),
]


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    """Every figure function is pure: nothing may appear in pyplot's figure manager."""
    yield
    assert plt.get_fignums() == []


def one_line_config_error(call, *fragments: str) -> None:
    with pytest.raises(ConfigError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


# --- loss_curves --------------------------------------------------------------------------------


def test_loss_curves_runs_plateaus_drops_and_theory():
    tt = np.linspace(0, 10, 500)
    fig = figures.loss_curves(LossCurves(T, LOSS, found=FOUND, labels=["seed 0", "seed 1"],
                                         theory_t=tt, theory_loss=staircase(tt), title="rank 3"))
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert len(ax.lines) == 2 + 1  # runs, then theory
    np.testing.assert_allclose(ax.lines[0].get_ydata(), LOSS[0])
    assert [line.get_linestyle() for line in ax.lines] == ["-", "-", "--"]
    assert ax.lines[2].get_color() == scurves.st.INK
    assert len(ax.patches) == 3  # one band per plateau
    # each band has its run's colour and is translucent
    band_colours = [patch.get_facecolor()[:3] for patch in ax.patches]
    assert band_colours[0] == band_colours[1] != band_colours[2]
    assert all(patch.get_alpha() == pytest.approx(scurves.PLATEAU_ALPHA) for patch in ax.patches)
    # bands sit over [start, end] in time
    x0, x1 = ax.patches[1].get_bbox().x0, ax.patches[1].get_bbox().x1
    assert (x0, x1) == pytest.approx((4.3, 5.5))
    # drop markers: one scatter per run with drops, on the curve
    drops = [c for c in ax.collections if c.get_offsets().shape[0] in (1, 2)
             and type(c).__name__ == "PathCollection"]
    offsets = np.concatenate([c.get_offsets() for c in drops])
    assert offsets.shape == (3, 2)
    np.testing.assert_allclose(offsets[0], [2.5, np.interp(2.5, T, LOSS[0])])
    names = [text.get_text() for text in fig.legends[0].get_texts()]
    assert names == ["seed 0", "seed 1", "plateau", "drop", "Saxe et al. theory"]
    assert ax.get_title() == "rank 3"


def test_loss_curves_one_run_accepts_a_single_result():
    fig = figures.loss_curves(LossCurves(T, LOSS[0], found=Plateaus(FOUND[0].plateaus, [])))
    (ax,) = fig.axes
    assert len(ax.lines) == 1 and len(ax.patches) == 2
    assert ax.get_ylim()[0] == 0.0  # loss ≥ 0: linear axis starts at 0
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["loss", "plateau"]


def test_loss_curves_log_axes_clip_at_the_floor():
    loss = LOSS.copy()
    loss[:, -5:] = 0.0  # exact zeros cannot sit on a log axis
    (ax,) = figures.loss_curves(LossCurves(T, loss, found=FOUND), log_time=True, log_loss=True).axes
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert ax.get_ylim()[0] == pytest.approx(scurves.LOG_FLOOR_FRACTION * loss.max())
    assert ax.get_xlim()[0] == pytest.approx(T[1])  # t = 0 is not on a log axis
    assert np.all(ax.lines[0].get_ydata() > 0)
    assert len(ax.patches) == 3
    (ax,) = figures.loss_curves(LossCurves(T, loss), log_loss=True, loss_floor=1e-3).axes
    assert ax.get_ylim()[0] == pytest.approx(1e-3)


def test_loss_curves_are_checked_once_when_built_in_one_line():
    one_line_config_error(lambda: LossCurves(T, LOSS[:, :50]), "(201,)", "(2, 50)")
    one_line_config_error(lambda: LossCurves(T[:, None], LOSS), "(201, 1)")
    one_line_config_error(lambda: LossCurves(T, LOSS, theory_t=T, theory_loss=np.ones(7)), "(201,)", "(7,)")
    one_line_config_error(lambda: LossCurves(T, LOSS, theory_t=T), "together")
    one_line_config_error(lambda: LossCurves(T, LOSS, labels=["a"]), "1 labels for 2 runs")
    one_line_config_error(lambda: LossCurves(T, LOSS, found=FOUND[0]), "1 plateau results for 2 runs")
    one_line_config_error(lambda: LossCurves(T, LOSS[0], found=[{"start": 0, "end": 1, "level": 0}]),
                          "Plateaus", "dict")
    one_line_config_error(lambda: figures.loss_curves(LossCurves(T, LOSS), log_loss=True, loss_floor=0.0),
                          "loss_floor > 0")


def test_loss_curves_fill_in_defaults_once():
    curves = LossCurves(T, LOSS, theory_t=T, theory_loss=staircase(T))
    assert curves.found == (Plateaus([], []), Plateaus([], []))  # one empty result per run
    assert curves.labels == ("run 0", "run 1")
    assert curves.theory_loss.shape == (1, T.size)
    with pytest.raises(dataclasses.FrozenInstanceError):
        curves.title = "changed"  # type: ignore[misc]


# --- mode_strengths -----------------------------------------------------------------------------


def test_mode_strengths_one_colour_per_mode_targets_and_dashed_theory():
    u = np.stack([saxe(T), saxe(T * 0.9)])  # (runs=2, evals, modes=3)
    tt = np.linspace(0, 10, 400)
    fig = figures.mode_strengths(T, u, S, theory_t=tt, theory=saxe(tt))
    (ax,) = fig.axes
    assert len(ax.lines) == 2 * 3 + 3 + 3  # data, theory, targets
    data, theory, targets = ax.lines[:6], ax.lines[6:9], ax.lines[9:]
    assert all(line.get_linestyle() == "--" for line in theory)
    assert all(line.get_linestyle() == ":" for line in targets)
    assert [line.get_ydata()[0] for line in targets] == list(S)
    for k in range(3):  # run 0, run 1, theory and target of mode k share one colour
        colours = {data[k].get_color(), data[3 + k].get_color(), theory[k].get_color(),
                   targets[k].get_color()}
        assert len(colours) == 1
    assert ax.get_ylabel() == r"mode strength $u_k$"
    names = [text.get_text() for text in fig.legends[0].get_texts()]
    assert names[0].startswith("mode 1") and names[-1] == "Saxe et al. theory"


def test_mode_strengths_one_run_and_many_modes_colorbar():
    (ax,) = figures.mode_strengths(T, saxe(T), S).axes
    assert len(ax.lines) == 3 + 3
    s = np.linspace(3, 0.5, 12)
    fig = figures.mode_strengths(T, saxe(T, s), s, log_time=True)
    assert len(fig.axes) == 2  # axes + mode colorbar
    assert fig.axes[0].get_xscale() == "log"


def test_mode_strengths_rejects_bad_shapes_in_one_line():
    one_line_config_error(lambda: figures.mode_strengths(T, saxe(T), S[:2]), "(201, 3)", "(2,)")
    one_line_config_error(lambda: figures.mode_strengths(T[:9], saxe(T), S), "(9,)")
    one_line_config_error(
        lambda: figures.mode_strengths(T, saxe(T), S, theory_t=T, theory=saxe(T)[:, :2]),
        "(T, 3)", "(201, 2)",
    )


# --- rank_sweep ---------------------------------------------------------------------------------


def sweep_panels() -> list[LossCurves]:
    return [
        LossCurves(T, rank * LOSS, found=[Plateaus([Plateau(0.0, 2.0, 7.0 * rank)], []), Plateaus([], [])],
                   theory_t=T, theory_loss=rank * staircase(T), title=f"rank {rank}")
        for rank in (1, 2, 4, 10, 100)
    ]


def test_rank_sweep_one_axes_per_panel():
    fig = figures.rank_sweep(sweep_panels(), suptitle="Adam, MSE")
    assert len(fig.axes) == 5
    for ax, rank in zip(fig.axes, (1, 2, 4, 10, 100)):
        assert ax.get_title() == f"rank {rank}"
        assert ax.get_yscale() == "log"
        assert len(ax.patches) == 1  # one plateau per panel
        assert len(ax.lines) == 2 + 1 and ax.lines[-1].get_linestyle() == "--"
        assert ax.get_ylim()[0] == pytest.approx(scurves.LOG_FLOOR_FRACTION * (rank * LOSS).max())
    assert fig.get_suptitle() == "Adam, MSE"
    assert fig.supxlabel is not None and "time" in fig._supxlabel.get_text()
    assert fig.axes[0].get_ylabel() and not fig.axes[1].get_ylabel()  # y label once per row
    names = [text.get_text() for text in fig.legends[0].get_texts()]
    assert names == ["run (colour = seed)", "plateau", "Saxe et al. theory"]  # no drops found


def test_rank_sweep_wraps_and_linear_option():
    panels = [LossCurves(T, LOSS[0] * (i + 1)) for i in range(7)]
    fig = figures.rank_sweep(panels, log_loss=False)
    assert len(fig.axes) == 7
    assert {ax.get_subplotspec().rowspan.start for ax in fig.axes} == {0, 1}
    assert all(ax.get_yscale() == "linear" for ax in fig.axes)


def test_rank_sweep_rejects_no_panels_in_one_line():
    one_line_config_error(lambda: figures.rank_sweep([]), "at least one panel")


# --- alignment ----------------------------------------------------------------------------------


def test_alignment_panel_per_mode_and_bumps():
    a = np.zeros((T.size, 2, 3))  # (evals, learned, modes)
    a[:, 0, 0] = saxe(T)[:, 0] / 3
    a[:, 1, 0] = 0.5 * np.exp(-((T - 3) ** 2))  # a bump: learned 1 visits mode 0, then leaves
    a[:, 1, 1] = saxe(T)[:, 1] / 2
    fig = figures.alignment(T, a, bumps=[Bump(learned=1, mode=0, time=3.0, rise=0.5, fall=0.5)])
    assert len(fig.axes) == 3
    assert all(len(ax.lines) == 2 for ax in fig.axes)
    (circle,) = fig.axes[0].collections
    np.testing.assert_allclose(circle.get_offsets(), [[3.0, 0.5]])
    assert [ax.get_title() for ax in fig.axes] == [f"target mode {k}" for k in (1, 2, 3)]
    one_line_config_error(lambda: figures.alignment(T, a[:, :, 0]), "(201, 2)")
    one_line_config_error(
        lambda: figures.alignment(T, a, bumps=[Bump(learned=2, mode=0, time=1.0, rise=0.5, fall=0.5)]),
        "learned=2", "(201, 2, 3)",
    )


# --- saving, purity, doctests -------------------------------------------------------------------


def test_save_writes_png_and_svg(tmp_path):
    fig = figures.loss_curves(LossCurves(T, LOSS, found=FOUND))
    paths = figures.save(fig, tmp_path / "figs", "loss_curves")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_docstring_examples_run():
    results = doctest.testmod(scurves, optionflags=doctest.ELLIPSIS)
    assert results.attempted >= 4 and results.failed == 0
