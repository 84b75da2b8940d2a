"""The plateau detector on constructed curves with known answers."""

import numpy as np
import pytest

from toylab.errors import ConfigError
from toylab.metrics.plateaus import find_plateaus
from toylab.theory import saxe

S = np.array([3.0, 2.0, 1.0])
U0 = 1e-6


def _staircase(t):
    return saxe.loss_curve(t, S, U0)


def test_a_three_mode_staircase_has_three_drops_at_the_steepest_falls():
    t = np.linspace(0.0, 10.0, 400)
    plateaus, drops = find_plateaus(t, _staircase(t))
    assert len(drops) == 3 and len(plateaus) == 4
    np.testing.assert_allclose([d.time for d in drops], saxe.steepest_drop_time(S, U0), atol=0.15)
    np.testing.assert_allclose([d.size for d in drops], 0.5 * S**2, rtol=0.05)
    np.testing.assert_allclose([p.level for p in plateaus], [7.0, 2.5, 0.5, 0.0], atol=0.05)


def test_irregular_evaluation_times_on_a_log_axis():
    steps = np.unique(np.concatenate([4 ** np.arange(7), np.arange(0, 10_001, 100)]))
    t = 1e-3 * steps[steps > 0]
    plateaus, drops = find_plateaus(t, _staircase(t), axis="log")
    assert len(drops) == 3
    np.testing.assert_allclose([d.size for d in drops], 0.5 * S**2, rtol=0.1)


def test_noise_and_spikes_do_not_create_drops():
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 10.0, 400)
    noisy = _staircase(t) * (1 + 0.05 * rng.standard_normal(t.size))
    noisy[[50, 170, 300]] *= 1.6  # SGD-like spikes
    plateaus, drops = find_plateaus(t, noisy)
    assert len(drops) == 3
    np.testing.assert_allclose([d.time for d in drops], saxe.steepest_drop_time(S, U0), atol=0.3)


def test_an_initial_norm_decay_is_not_a_drop():
    t = np.linspace(0.0, 10.0, 400)
    plateaus, drops = find_plateaus(t, _staircase(t) + 0.8 * np.exp(-t / 0.05))
    assert len(drops) == 3
    assert drops[0].time > 2.0 and plateaus[0].level == pytest.approx(7.0, abs=0.1)


def test_curves_without_plateaus_have_no_drops():
    t = np.linspace(0.0, 10.0, 300)
    assert find_plateaus(t, 5.0 - 0.4 * t).drops == []
    single = saxe.loss_curve(t, [2.0], U0)
    assert len(find_plateaus(t, single).drops) == 1


def test_results_do_not_depend_on_the_loss_scale():
    t = np.linspace(0.0, 10.0, 400)
    small, large = find_plateaus(t, _staircase(t)), find_plateaus(t, 1000 * _staircase(t))
    assert [d.time for d in small.drops] == pytest.approx([d.time for d in large.drops])


@pytest.mark.parametrize("t, loss", [
    (np.arange(5.0), np.ones(4)),
    (np.array([0.0, 2.0, 1.0, 3.0]), np.ones(4)),
    (np.arange(4.0), np.array([1.0, np.nan, 1.0, 1.0])),
])
def test_bad_curves_are_refused_in_one_line(t, loss):
    with pytest.raises(ConfigError) as error:
        find_plateaus(t, loss)
    assert "\n" not in str(error.value)
