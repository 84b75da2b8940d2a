"""Plateau and drop detection on loss curves with known answers (Jermyn & Shlegeris 2022).

The reference curve is Saxe et al.'s exact gradient-flow solution for a target with singular
values 3, 2, 1 learned from strength u₀ = 1e-6: mode ``s`` grows as
``u(t) = s e^{2st} / (e^{2st} − 1 + s/u₀)``, so the loss ``½ Σ (s − u)²`` sits at 7, 2.5, 0.5
and 0 and drops by ``½ s²`` = 4.5, 2, 0.5. Mode ``s`` is half learned at
``t_k = ln(s/u₀ − 1) / (2s)`` = 2.49, 3.63, 6.91; the loss falls fastest where ``u = s/3``,
``ln 2 / (2s)`` earlier (2.37, 3.45, 6.56): that is the drop time the detector reports.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toylab.errors import ConfigError
from toylab.metrics.plateaus import Drop, Plateau, Plateaus, find_plateaus, plateau_length

S = np.array([3.0, 2.0, 1.0])  # the target's singular values, one S-curve each
U0 = 1e-6  # the initial strength of every mode
HALF_LEARNED = np.log(S / U0 - 1) / (2 * S)  # t_k: u = s/2
STEEPEST = HALF_LEARNED - np.log(2) / (2 * S)  # u = s/3: where −dL/dt peaks
SIZES = S**2 / 2  # 4.5, 2, 0.5
LEVELS = [7.0, 2.5, 0.5, 0.0]


def saxe_loss(t: np.ndarray, s: np.ndarray = S, u0: float = U0) -> np.ndarray:
    """½ Σ_k (s_k − u_k(t))² with the exact gradient-flow u_k (Saxe et al. 2014)."""
    grow = np.exp(np.minimum(2 * s * np.asarray(t, dtype=float)[:, None], 700.0))  # (n, modes)
    u = s * grow / (grow - 1 + s / u0)
    return 0.5 * np.sum((s - u) ** 2, axis=1)


def linear_times() -> np.ndarray:
    return np.linspace(0.0, 10.0, 400)


def irregular_times(lr: float = 1e-3, last_step: int = 12_000, every: int = 100) -> np.ndarray:
    """t = lr · step at steps 0, 1, 4, 16, 64, ... mixed with every ``every`` steps."""
    steps = {0, *range(0, last_step + 1, every)}
    step = 1
    while step <= last_step:
        steps.add(step)
        step *= 4
    return lr * np.array(sorted(steps), dtype=float)


def noisy(loss: np.ndarray, seed: int, n_spikes: int) -> np.ndarray:
    """5% multiplicative Gaussian noise plus a few points ×3 (SGD on small minibatches)."""
    rng = np.random.default_rng(seed)
    out = loss * (1 + 0.05 * rng.standard_normal(loss.size))
    out[rng.choice(loss.size, n_spikes, replace=False)] *= 3
    return out


def assert_consistent(result: Plateaus) -> None:
    """Plateaus alternate with drops; each drop's size is the fall between its plateaus."""
    plateaus, drops = result
    assert len(plateaus) == len(drops) + 1 or (not plateaus and not drops)
    for before, drop, after in zip(plateaus, drops, plateaus[1:]):
        assert before.start <= before.end < drop.time < after.start <= after.end
        assert drop.size == pytest.approx(before.level - after.level)
        assert drop.size > 0


# ---------------------------------------------------------------------------------------------
# The exact staircase.


@pytest.mark.parametrize(
    "axis, times, time_tol, level_tol",
    [("linear", linear_times(), 0.01, 0.01), ("log", irregular_times(), 0.06, 0.05)],
    ids=["linear-400", "log-irregular"],
)
def test_exact_staircase(axis, times, time_tol, level_tol):
    result = find_plateaus(times, saxe_loss(times), axis=axis)
    assert_consistent(result)
    assert len(result.drops) == 3
    drop_times = np.array([d.time for d in result.drops])
    np.testing.assert_allclose(drop_times, STEEPEST, atol=time_tol)
    # The brief's bound against the half-learned times holds only up to the ln 2 / (2s) offset.
    np.testing.assert_array_less(np.abs(drop_times - HALF_LEARNED), np.log(2) / (2 * S) + 0.15)
    np.testing.assert_allclose([d.size for d in result.drops], SIZES, rtol=0.05)
    np.testing.assert_allclose([p.level for p in result.plateaus], LEVELS, atol=level_tol)
    # The first plateau starts at the first evaluation (t > 0 on the log axis), the last ends at the last.
    assert result.plateaus[0].start == pytest.approx(times[times > 0][0] if axis == "log" else times[0])
    assert result.plateaus[-1].end == pytest.approx(times[-1])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "axis, times, n_spikes", [("linear", linear_times(), 5), ("log", irregular_times(), 3)], ids=["linear", "log"]
)
def test_noisy_staircase(axis, times, n_spikes, seed):
    loss = noisy(saxe_loss(times), seed, n_spikes)
    result = find_plateaus(times, loss, axis=axis)
    assert_consistent(result)
    assert len(result.drops) == 3
    np.testing.assert_allclose([d.time for d in result.drops], STEEPEST, atol=0.3)
    np.testing.assert_allclose([d.size for d in result.drops], SIZES, rtol=0.5)


@pytest.mark.parametrize("axis, times", [("linear", linear_times()), ("log", irregular_times())], ids=["linear", "log"])
def test_norm_decay_is_not_a_drop(axis, times):
    # The init's components orthogonal to the target decay first: the loss starts at 7.8.
    loss = saxe_loss(times) + 0.8 * np.exp(-times / 0.05)
    result = find_plateaus(times, loss, axis=axis)
    assert_consistent(result)
    assert len(result.drops) == 3
    np.testing.assert_allclose([d.time for d in result.drops], STEEPEST, atol=0.06)
    assert result.plateaus[0].level == pytest.approx(7.0, abs=0.05)
    assert plateau_length(times, loss, axis=axis) == pytest.approx(STEEPEST[0], abs=0.06)


def test_noisy_norm_decay_is_not_a_drop():
    times = linear_times()
    loss = noisy(saxe_loss(times) + 0.8 * np.exp(-times / 0.05), seed=3, n_spikes=5)
    result = find_plateaus(times, loss)
    assert len(result.drops) == 3
    assert result.drops[0].time == pytest.approx(STEEPEST[0], abs=0.3)


def test_single_s_curve():
    times = linear_times()
    result = find_plateaus(times, saxe_loss(times, s=np.array([2.0])))
    assert_consistent(result)
    assert len(result.plateaus) == 2 and len(result.drops) == 1
    assert result.drops[0].time == pytest.approx(math.log(2 / U0 - 1) / 4 - math.log(2) / 4, abs=0.01)
    assert result.drops[0].size == pytest.approx(2.0, rel=0.01)


@pytest.mark.parametrize(
    "loss",
    [np.exp(-linear_times()), np.exp(-linear_times() / 5), 5.0 - 0.3 * linear_times()],
    ids=["exp", "slow-exp", "line"],
)
def test_no_staircase_no_drops(loss):
    result = find_plateaus(linear_times(), loss)
    assert result.drops == []
    assert len(result.plateaus) <= 1
    assert math.isnan(plateau_length(linear_times(), loss))


def test_constant_and_zero_curves():
    times = linear_times()
    for value in (3.0, 0.0):
        result = find_plateaus(times, np.full_like(times, value))
        assert result == Plateaus([Plateau(0.0, 10.0, value)], [])


def test_float_rounding_steps_are_not_drops():
    # A run that learned nothing: float32 steps of 4.8e-7 on a loss of 0.29 (seen with ce-prob
    # and SGD at d = 30) are below RANGE_FLOOR of the level, so the curve is one plateau.
    times = np.linspace(0.0, 20.0, 400)
    loss = np.float32(0.2946691) - np.float32(4.76837e-7) * ((times > 11.0).astype(np.float32) + (times > 16.2))
    result = find_plateaus(times, loss.astype(np.float32))
    assert result.drops == []
    assert len(result.plateaus) == 1
    # The same shape a hundred times larger (1.6e-4 of the level) is a real staircase.
    result = find_plateaus(times, 0.2946691 - 5e-5 * ((times > 11.0) + 1.0 * (times > 16.2)))
    assert [round(d.time) for d in result.drops] == [11, 16]


@pytest.mark.parametrize("end", [6.6, 3.3], ids=["mid-last-drop", "mid-second-drop"])
def test_run_ending_mid_drop(end):
    times = linear_times()
    inside = times <= end
    result = find_plateaus(times[inside], saxe_loss(times[inside]))
    assert_consistent(result)
    n_complete = int(np.sum(STEEPEST + 0.5 < end))  # drops the run has finished (and settled after)
    assert len(result.drops) == n_complete
    np.testing.assert_allclose([d.time for d in result.drops], STEEPEST[:n_complete], atol=0.02)
    assert result.plateaus[-1].level > 0.4  # the fall after the last plateau is not a drop


def test_run_starting_mid_drop():
    times = linear_times()
    late = times >= 2.4  # past the steepest point of the first drop
    result = find_plateaus(times[late], saxe_loss(times[late]))
    np.testing.assert_allclose([d.time for d in result.drops], STEEPEST[1:], atol=0.05)


@pytest.mark.parametrize("axis, times", [("linear", linear_times()), ("log", irregular_times())], ids=["linear", "log"])
def test_scale_invariance(axis, times):
    loss = saxe_loss(times)
    base = find_plateaus(times, loss, axis=axis)
    scaled = find_plateaus(times, 1000.0 * loss, axis=axis)
    np.testing.assert_allclose([d.time for d in scaled.drops], [d.time for d in base.drops], rtol=1e-6)
    np.testing.assert_allclose([d.size for d in scaled.drops], [1000.0 * d.size for d in base.drops], rtol=1e-6)
    # A new unit of time (steps instead of lr · steps) rescales the times and nothing else.
    in_steps = find_plateaus(1000.0 * times, loss, axis=axis)
    np.testing.assert_allclose([d.time for d in in_steps.drops], [1000.0 * d.time for d in base.drops], rtol=1e-6)


def test_negative_offset_is_only_a_shift():
    times = linear_times()
    result = find_plateaus(times, saxe_loss(times) - 10.0)
    np.testing.assert_allclose([p.level for p in result.plateaus], np.array(LEVELS) - 10.0, atol=0.01)


def test_many_evaluations_are_averaged():
    times = np.linspace(0.0, 10.0, 100_000)
    result = find_plateaus(times, noisy(saxe_loss(times), seed=4, n_spikes=50))
    np.testing.assert_allclose([d.time for d in result.drops], STEEPEST, atol=0.05)
    np.testing.assert_allclose([d.size for d in result.drops], SIZES, rtol=0.05)


def test_few_evaluations():
    times = np.linspace(0.0, 10.0, 40)
    result = find_plateaus(times, saxe_loss(times))
    np.testing.assert_allclose([d.time for d in result.drops], STEEPEST, atol=0.1)


# ---------------------------------------------------------------------------------------------
# Random staircases.


@st.composite
def staircases(draw):
    """Logistic steps at well-separated times: (x, loss, centres on [0, 1], axis)."""
    n_drops = draw(st.integers(1, 4))
    # Gaps before, between and after the drops, each 10-20% of the axis after normalising.
    gaps = np.array(draw(st.lists(st.floats(1.0, 2.0), min_size=n_drops + 1, max_size=n_drops + 1)))
    centres = np.cumsum(gaps)[:-1] / gaps.sum()  # (drops,)
    sizes = np.array(draw(st.lists(st.floats(0.3, 1.0), min_size=n_drops, max_size=n_drops)))
    widths = np.array(draw(st.lists(st.floats(0.002, 0.01), min_size=n_drops, max_size=n_drops)))
    floor = draw(st.floats(0.0, 1.0))
    scale = 10.0 ** draw(st.floats(-3.0, 3.0))
    n_points = draw(st.integers(150, 1000))
    axis = draw(st.sampled_from(["linear", "log"]))
    x = np.linspace(0.0, 1.0, n_points)
    z = np.clip((x[:, None] - centres) / widths, -500, 500)
    loss = scale * (floor + np.sum(sizes / (1 + np.exp(z)), axis=1))
    return x, loss, centres, axis


@settings(max_examples=40, deadline=None)
@given(staircases())
def test_random_staircases(case):
    x, loss, centres, axis = case
    t = 10.0 * x if axis == "linear" else np.exp(np.log(1e-3) + x * np.log(1e4))  # 1e-3 .. 10
    result = find_plateaus(t, loss, axis=axis)
    assert_consistent(result)
    assert len(result.drops) == len(centres)
    found = np.array([d.time for d in result.drops])
    found_x = found / 10.0 if axis == "linear" else (np.log(found) - np.log(1e-3)) / np.log(1e4)
    np.testing.assert_allclose(found_x, centres, atol=0.01)  # a logistic is steepest at its centre


# ---------------------------------------------------------------------------------------------
# Results and errors.


def test_json_ready():
    times = linear_times()
    result = find_plateaus(times, saxe_loss(times))
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {"plateaus", "drops"}
    assert set(data["plateaus"][0]) == {"start", "end", "level"}
    assert set(data["drops"][0]) == {"time", "size"}
    assert Drop(1.0, 2.0).to_dict() == {"time": 1.0, "size": 2.0}
    assert Plateau(0.0, 1.0, 3.0).to_dict() == {"start": 0.0, "end": 1.0, "level": 3.0}
    assert all(type(value) is float for value in data["drops"][0].values())


@pytest.mark.parametrize(
    "t, loss, kwargs, message",
    [
        ([0, 1, 2, 3], [1, 1, 0], {}, r"t and loss have different lengths, 4 and 3"),
        ([0, 1, 1, 3], [1, 1, 0, 0], {}, r"t is not strictly increasing: t\[2\]=1.0 follows t\[1\]=1.0"),
        ([0, 2, 1, 3], [1, 1, 0, 0], {}, r"t is not strictly increasing: t\[2\]=1.0"),
        ([0, 1, 2, 3], [1, np.nan, 0, 0], {}, r"loss\[1\] is nan"),
        ([0, 1, np.inf, 3], [1, 1, 0, 0], {}, r"t\[2\] is inf"),
        ([[0, 1], [2, 3]], [1, 1, 0, 0], {}, r"t has shape \(2, 2\): expected a 1-D array"),
        ([0, 1], [1, 0], {}, r"the curve has 2 points: expected at least 3"),
        ([-1, 0, 1, 2], [1, 1, 0, 0], {"axis": "log"}, r"2 points with t > 0"),
        ([0, 1, 2], [1, 1, 0], {"axis": "ln"}, r"axis='ln': expected 'linear' or 'log'"),
        ([0, 1, 2], [1, 1, 0], {"min_drop": 0.0}, r"min_drop=0.0: expected a number in \(0.0, 1.0\)"),
        ([0, 1, 2], [1, 1, 0], {"min_length": 1.5}, r"min_length=1.5"),
        ([0, 1, 2], [1, 1, 0], {"slope_thresholds": {"linear": -1}}, r"slope_threshold=-1"),
        ([0, 1, 2], [1, 1, 0], {"slope_thresholds": {"log": 0.3}}, r"has no entry for axis='linear'"),
        ([0, 1, 2], [1, 1, 0], {"smooth": 0.5}, r"smooth=0.5"),
        ([0, 1, 2], ["a", "b", "c"], {}, r"loss: expected a 1-D array of numbers"),
    ],
)
def test_bad_input(t, loss, kwargs, message):
    with pytest.raises(ConfigError, match=message) as error:
        find_plateaus(t, loss, **kwargs)
    assert isinstance(error.value, ValueError)
    assert "\n" not in str(error.value)


def test_log_axis_leaves_out_step_zero():
    times = irregular_times()
    assert times[0] == 0.0
    with_zero = find_plateaus(times, saxe_loss(times), axis="log")
    without = find_plateaus(times[1:], saxe_loss(times[1:]), axis="log")
    assert with_zero == without
