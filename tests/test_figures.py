"""Figures: shapes of what is drawn, saving, errors, and purity (no pyplot state)."""

from __future__ import annotations

import doctest

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere in this process

import matplotlib.pyplot as plt  # noqa: E402  (only to check that figures never register)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from toylab import figures, metrics  # noqa: E402
from toylab.errors import ConfigError  # noqa: E402
from toylab.figures import superposition  # noqa: E402


def polygon(n_features: int, radius: float = 1.0) -> np.ndarray:
    """Regular polygon, shape (d_hidden=2, n_features)."""
    angles = 2 * np.pi * np.arange(n_features) / n_features
    return radius * np.stack([np.cos(angles), np.sin(angles)])


def example_weights() -> np.ndarray:
    """Pentagon, antipodal pair + dedicated, orthonormal + dropped, random: (4, 2, 5)."""
    antipodal = np.zeros((2, 5))
    antipodal[:, 0], antipodal[:, 1], antipodal[:, 2] = [1, 0], [-1, 0], [0, 1]
    orthonormal = np.zeros((2, 5))
    orthonormal[:, 0], orthonormal[:, 1] = [1, 0], [0, 1]
    random = np.random.default_rng(0).normal(size=(2, 5))
    return np.stack([polygon(5), antipodal, orthonormal, random])


TITLES = ["p = 0.05\npentagon", "p = 0.3\nantipodal", "p = 1\northonormal", "random"]


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    """Every figure function is pure: nothing may appear in pyplot's figure manager."""
    yield
    assert plt.get_fignums() == []


# --- feature_vectors ---------------------------------------------------------------------------


def test_feature_vectors_one_panel_and_one_line_per_feature():
    W = example_weights()
    fig = figures.feature_vectors(W, TITLES)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4
    for ax, title in zip(fig.axes, TITLES):
        assert len(ax.lines) == 5
        assert ax.get_title() == title
        assert ax.get_xlim() == pytest.approx(ax.get_ylim())  # symmetric, square
        assert ax.get_xlim()[0] == pytest.approx(-ax.get_xlim()[1])


def test_feature_vectors_lines_end_at_the_columns():
    W = polygon(5)[None]
    (ax,) = figures.feature_vectors(W, ["pentagon"]).axes
    ends = sorted(tuple(np.round(line.get_xydata()[-1], 6)) for line in ax.lines)
    assert ends == sorted(tuple(np.round(col, 6)) for col in W[0].T)


def test_feature_vectors_importance_adds_a_colorbar_and_colours_by_importance():
    importance = 0.7 ** np.arange(5)
    fig = figures.feature_vectors(example_weights(), TITLES, importance=importance)
    assert len(fig.axes) == 4 + 1  # panels + colorbar
    colours = {tuple(line.get_color()) for line in fig.axes[0].lines}
    assert len(colours) == 5
    # constant importance carries no information: no colorbar, one colour
    fig = figures.feature_vectors(example_weights(), TITLES, importance=np.ones(5))
    assert len(fig.axes) == 4
    assert len({tuple(line.get_color()) for line in fig.axes[0].lines}) == 1


def test_feature_vectors_wraps_beyond_ten_models():
    W = np.repeat(polygon(3)[None], 12, axis=0)
    fig = figures.feature_vectors(W, None)
    assert len(fig.axes) == 12
    rows = {ax.get_subplotspec().rowspan.start for ax in fig.axes}
    assert rows == {0, 1}
    assert figures.feature_vectors(W[:10], None).axes[-1].get_subplotspec().rowspan.start == 0


def test_feature_vectors_accepts_one_matrix():
    assert len(figures.feature_vectors(polygon(4), ["square"]).axes) == 1


def test_feature_vectors_rejects_d_hidden_other_than_two_in_one_line():
    W = np.zeros((2, 3, 5))
    with pytest.raises(ConfigError) as err:
        figures.feature_vectors(W, ["a", "b"])
    message = str(err.value)
    assert "\n" not in message
    assert "(2, 3, 5)" in message and "d_hidden == 2" in message


def test_feature_vectors_rejects_wrong_number_of_titles():
    with pytest.raises(ConfigError, match="3 titles for 4 models"):
        figures.feature_vectors(example_weights(), TITLES[:3])


# --- norms_and_interference --------------------------------------------------------------------


def test_norms_and_interference_axes_and_bars():
    W = example_weights()
    fig = figures.norms_and_interference(W, TITLES)
    assert len(fig.axes) == 2 * 4 + 2  # heatmap + bars per model, two colorbars
    heatmaps, bars = fig.axes[0:8:2], fig.axes[1:8:2]
    for k, (hx, bx) in enumerate(zip(heatmaps, bars)):
        image = hx.get_images()[0]
        np.testing.assert_allclose(image.get_array(), W[k].T @ W[k])
        lo, hi = image.get_clim()
        assert lo == pytest.approx(-hi)  # centred at 0
        widths = [patch.get_width() for patch in bx.patches]
        np.testing.assert_allclose(widths, np.linalg.norm(W[k], axis=0), rtol=1e-6)  # float32
        assert bx.get_ylim()[0] > bx.get_ylim()[1]  # feature 0 on top


def test_norms_and_interference_colours_superposition_brightly():
    fig = figures.norms_and_interference(example_weights()[:3], TITLES[:3])
    pentagon_bars, orthonormal_bars = fig.axes[1], fig.axes[5]
    cmap = figures._style.INTERFERENCE
    for patch in orthonormal_bars.patches[:2]:  # dedicated features: no interference -> black
        np.testing.assert_allclose(patch.get_facecolor(), cmap(0.0))
    for patch in pentagon_bars.patches:  # the largest interference (3/2) -> top of the scale
        np.testing.assert_allclose(patch.get_facecolor(), cmap(1.0))


def test_norms_and_interference_draws_what_the_metrics_report():
    W = example_weights()
    W[2, :, 3] = [3e-7, 2e-7]  # a column of float noise: no direction, so no interference
    fig = figures.norms_and_interference(W, TITLES)
    interference = np.asarray(metrics.interference(W))
    # pentagon: 2 cos²(72°) + 2 cos²(144°) = 3/2 for every feature; antipodal pair: 1 each
    np.testing.assert_allclose(interference[:2], [np.full(5, 1.5), [1, 1, 0, 0, 0]], atol=1e-6)
    assert interference[2, 3] == 0.0
    scale = Normalize(0.0, interference.max())  # the random model's largest value is above 1
    for bars, norms, inter in zip(fig.axes[1:8:2], np.asarray(metrics.feature_norms(W)), interference):
        np.testing.assert_allclose([patch.get_width() for patch in bars.patches], norms)
        np.testing.assert_allclose([patch.get_facecolor() for patch in bars.patches],
                                   figures._style.INTERFERENCE(scale(inter)))


# --- dimensions_per_feature / feature_dimensionality -------------------------------------------


def test_dimensions_per_feature_seeds_and_best_line():
    p = np.repeat(np.geomspace(1, 1e-3, 6), 3)  # 6 settings × 3 seeds
    y = np.where(p > 0.1, 1.0, 0.5) + np.tile([0.0, 0.02, 0.05], 6)
    fig = figures.dimensions_per_feature(p, y, n_hidden=2)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert len(ax.lines) == 2  # the sticky references at 1 and 1/2
    assert sorted(line.get_ydata()[0] for line in ax.lines) == [0.5, 1.0]
    assert "m = 2" in ax.get_title()

    mask = np.tile([True, False, False], 6)
    (ax,) = figures.dimensions_per_feature(p, y, best=mask).axes
    assert len(ax.lines) == 3
    np.testing.assert_allclose(ax.lines[0].get_xdata(), np.sort(1 / p[mask]))

    (ax,) = figures.dimensions_per_feature(p, y, best=np.linspace(1, 0.5, 6)).axes
    assert len(ax.lines) == 3
    with pytest.raises(ConfigError, match="one value per distinct feature probability"):
        figures.dimensions_per_feature(p, y, best=np.ones(4))


def test_dimensions_per_feature_rejects_bad_probability():
    with pytest.raises(ConfigError, match=r"in \(0, 1\]"):
        figures.dimensions_per_feature(np.array([0.5, 0.0]), np.ones(2))


def test_feature_dimensionality_reference_lines_and_points():
    p = np.geomspace(1, 1e-2, 5)
    D = np.tile([1.0, 0.5, 0.4, 0.0], (5, 1))
    (ax,) = figures.feature_dimensionality(p, D).axes
    assert ax.get_ylim() == pytest.approx((0.0, 1.05))
    assert sorted(line.get_ydata()[0] for line in ax.lines) == pytest.approx(
        sorted(v for v, _, _ in figures.POLYTOPE_FRACTIONS)
    )
    names = " ".join(text.get_text() for text in ax.texts)
    for name in ("dedicated", "tetrahedron", "triangle", "digon", "pentagon", "square antiprism"):
        assert name in names
    (points,) = ax.collections
    assert points.get_offsets().shape == (20, 2)


def test_feature_dimensionality_rejects_mismatched_shapes():
    with pytest.raises(ConfigError, match=r"\(3,\) and \(4, 5\)"):
        figures.feature_dimensionality(np.ones(3) * 0.5, np.ones((4, 5)))


# --- loss_history -------------------------------------------------------------------------------


def test_loss_history_raw_and_elicited():
    steps = np.array([0, 1, 4, 16, 64])  # step 0 cannot sit on a log axis: dropped
    raw = np.array([[1.0, 0.8, 0.4, 0.2, 0.1], [1.0, 0.9, 0.6, 0.3, 0.2]])
    (ax,) = figures.loss_history(steps, raw, ["a", "b"]).axes
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert len(ax.lines) == 2
    assert len(ax.lines[0].get_xdata()) == 4
    (ax,) = figures.loss_history(steps, raw, ["a", "b"], elicited=raw * 0.9).axes
    assert len(ax.lines) == 4
    assert [line.get_linestyle() for line in ax.lines] == ["-", "--", "-", "--"]
    many = figures.loss_history(steps, np.tile(raw, (5, 1)), [str(k) for k in range(10)])
    assert len(many.axes) == 1 and len(many.legends) == 1  # legend moved outside the axes


# --- save, doctests ---------------------------------------------------------------------------


def test_save_writes_png_and_svg(tmp_path):
    fig = figures.feature_vectors(polygon(5)[None], ["pentagon"], importance=0.9 ** np.arange(5))
    paths = figures.save(fig, tmp_path / "new" / "folder", "pentagon")
    assert [p.name for p in paths] == ["pentagon.png", "pentagon.svg"]
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:2000]


def test_save_rejects_a_name_with_extension(tmp_path):
    with pytest.raises(ConfigError, match="bare file stem"):
        figures.save(Figure(), tmp_path, "pentagon.png")


def test_docstring_examples_run():
    result = doctest.testmod(superposition, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
