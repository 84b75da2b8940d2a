"""Saxe et al.'s exact deep-linear dynamics: the ODE, its known values and its asymptotics."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from toylab.errors import ConfigError
from toylab.theory import saxe


def reference_strength(t, s, u0, components):
    """``u̇ = N u^{2−2/N}(s − u)`` by a tight adaptive solve, in ``ln u`` (u spans decades)."""
    N = components

    def rate(_, y):
        u = np.exp(y[0])
        return [N * u ** (1 - 2 / N) * (s - u)]

    solution = solve_ivp(rate, (0, t[-1]), [np.log(u0)], t_eval=t, method="DOP853", rtol=1e-13, atol=1e-13)
    return np.exp(solution.y[0])


def test_two_components_satisfies_the_ode_and_its_end_points():
    s = np.array([3.0, 2.0, 1.0, 0.0])
    u0 = 1e-4
    t = np.linspace(0.0, 8.0, 161)
    h = 1e-5
    u = saxe.mode_strength(t[:, None], s, u0)  # (times, modes)
    assert u.shape == (161, 4)
    inner = t[1:, None]  # central differences need t − h ≥ 0
    derivative = (saxe.mode_strength(inner + h, s, u0) - saxe.mode_strength(inner - h, s, u0)) / (2 * h)
    expected = 2 * u[1:] * (s - u[1:])
    # Skip converged modes, whose rate is down at the differences' rounding floor, ε u / h.
    resolved = np.abs(expected) > 1e-6 * u[1:]
    assert resolved.sum() > 400
    assert np.max(np.abs(derivative - expected)[resolved] / np.abs(expected)[resolved]) < 1e-4
    np.testing.assert_array_equal(u[0], u0)
    np.testing.assert_allclose(saxe.mode_strength(1e3, s[:3], u0), s[:3], rtol=1e-15)
    np.testing.assert_array_equal(saxe.mode_strength(np.inf, s, u0), s)
    # s = 0: u̇ = −2u², solved by u₀ / (1 + 2 u₀ t).
    np.testing.assert_allclose(u[:, 3], u0 / (1 + 2 * u0 * t), rtol=1e-14)


def test_two_components_matches_the_spec_closed_form_and_shrinks_from_above():
    t = np.linspace(0.0, 3.0, 31)
    s, u0 = 2.0, 1e-3
    spec = s * np.exp(2 * s * t) / (np.exp(2 * s * t) - 1 + s / u0)
    np.testing.assert_allclose(saxe.mode_strength(t, s, u0), spec, rtol=1e-13)
    # u₀ > s: the mode shrinks monotonically to s.
    above = saxe.mode_strength(t, 1.0, 5.0)
    assert np.all(np.diff(above) < 0) and above[-1] > 1.0
    np.testing.assert_allclose(above, reference_strength(t, 1.0, 5.0, 2), rtol=1e-10)


@pytest.mark.parametrize("components", [3, 4])
@pytest.mark.parametrize(
    ("s", "u0"), [(3.0, 1e-6), (1.0, 1e-3), (0.5, 0.3), (1.0, 4.0), (0.0, 0.5), (1e-9, 0.5)]
)
def test_deep_networks_match_a_direct_high_precision_solve(components, s, u0):
    t = np.linspace(0.0, 150.0, 301)
    u = saxe.mode_strength(t, s, u0, components)
    np.testing.assert_allclose(u, reference_strength(t, s, u0, components), rtol=1e-8)


def test_one_component_relaxes_exponentially():
    t = np.linspace(0.0, 5.0, 11)
    np.testing.assert_allclose(saxe.mode_strength(t, 2.0, 0.1, components=1), 2.0 - 1.9 * np.exp(-t), rtol=1e-15)


def test_two_component_drop_time_is_exact_and_logarithmic():
    s = np.array([3.0, 2.0, 1.0])
    u0 = 1e-5
    t_half = saxe.drop_time(s, u0)
    np.testing.assert_allclose(t_half, np.log(s / u0 - 1) / (2 * s), rtol=1e-14)
    np.testing.assert_allclose(saxe.mode_strength(t_half, s, u0), s / 2, rtol=1e-12)
    # Logarithmic in the init scale: slope 1/(2s) in ln(1/u₀).
    log_inverse_u0 = np.array([10.0, 20.0, 30.0])
    times = saxe.drop_time(2.0, np.exp(-log_inverse_u0))
    np.testing.assert_allclose(np.diff(times) / np.diff(log_inverse_u0), 1 / (2 * 2.0), rtol=1e-4)
    # The usual estimate (1/2s) ln(s/u₀) is within u₀/(2s²) of it.
    assert abs(saxe.drop_time(2.0, 1e-5) - np.log(2.0 / 1e-5) / 4) < 1e-5 / 8 * 1.01


@pytest.mark.parametrize("components", [1, 3, 5])
def test_drop_time_is_where_the_strength_crosses_half(components):
    s, u0 = 2.0, 1e-4
    t_half = saxe.drop_time(s, u0, components)
    root = brentq(lambda t: saxe.mode_strength(t, s, u0, components) - s / 2, 0.0, 10 * t_half, xtol=1e-13)
    assert t_half == pytest.approx(root, rel=1e-10)


def test_three_component_drop_time_follows_a_power_law():
    s = 2.0
    u0 = np.array([1e-6, 1e-9, 1e-12])
    scaled = saxe.drop_time(s, u0, components=3) * u0 ** (1 / 3) * s  # → 1
    np.testing.assert_allclose(scaled, 1.0, rtol=0.03)
    assert np.all(np.diff(np.abs(scaled - 1)) < 0)  # the correction shrinks as u₀ → 0


def test_drop_time_when_the_mode_never_drops_or_already_has():
    assert saxe.drop_time(0.0, 1e-3) == np.inf
    assert saxe.drop_time(1.0, 2.0, components=3) == np.inf
    assert saxe.drop_time(1.0, 0.7) < 0  # the crossing lies before t = 0


@pytest.mark.parametrize("components", [2, 3])
def test_loss_curve_starts_at_the_init_loss_decreases_and_walks_down_the_levels(components):
    s = np.array([3.0, 2.0, 1.0, 0.0])
    u0 = 1e-12 if components == 2 else 1e-9
    assert saxe.loss_curve(0.0, s, u0, components) == pytest.approx(0.5 * np.sum((s - u0) ** 2), rel=1e-15)
    drops = saxe.drop_time(s[:3], u0, components)
    t = np.linspace(0.0, 1.5 * drops[-1], 2001)
    curve = saxe.loss_curve(t, s, u0, components)
    assert curve.shape == t.shape and np.all(np.diff(curve) < 0)
    # Midway between consecutive drops (and after the last) the loss sits on the next level.
    plateaus = np.sqrt(drops[:-1] * drops[1:]).tolist() + [2 * drops[-1]]
    on_plateau = saxe.loss_curve(np.array(plateaus), s, u0, components)
    levels = saxe.loss_levels(s)
    np.testing.assert_allclose(on_plateau, levels[:3], atol=0.1)
    assert saxe.loss_levels(s) == [2.5, 0.5, 0.0, 0.0]
    assert saxe.drop_sizes([1.0, 0.0, 3.0, 2.0]) == [4.5, 2.0, 0.5, 0.0]
    # Each drop removes ½ s_k² from the level before it.
    before = [0.5 * np.sum(s**2)] + levels[:-1]
    np.testing.assert_allclose(np.subtract(before, levels), saxe.drop_sizes(s))


def test_bad_input_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="u0 contains 0.0"):
        saxe.mode_strength(1.0, 1.0, 0.0)
    with pytest.raises(ConfigError, match="s contains -1.0"):
        saxe.drop_time(-1.0, 1e-3)
    with pytest.raises(ConfigError, match="t contains -0.5"):
        saxe.mode_strength([0.0, -0.5], 1.0, 1e-3)
    with pytest.raises(ConfigError, match="components=True"):
        saxe.mode_strength(1.0, 1.0, 1e-3, components=True)
    with pytest.raises(ConfigError, match="components=0"):
        saxe.drop_time(1.0, 1e-3, components=0)
    with pytest.raises(ConfigError, match="shape"):
        saxe.loss_levels([[1.0, 2.0]])


@pytest.mark.parametrize("components", [2, 3])
def test_steepest_drop_time_is_where_the_mode_loss_falls_fastest(components):
    s, u0 = 2.0, 1e-5
    t = np.linspace(0.0, 3 * saxe.drop_time(s, u0, components), 200_001)
    mode_loss = 0.5 * (s - saxe.mode_strength(t, s, u0, components)) ** 2
    steepest = t[np.argmin(np.gradient(mode_loss, t))]
    assert saxe.steepest_drop_time(s, u0, components) == pytest.approx(steepest, rel=1e-3)
    assert saxe.steepest_drop_time(s, u0, components) < saxe.drop_time(s, u0, components)
