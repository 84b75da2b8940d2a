"""S-curve findings (Jermyn & Shlegeris 2022) against exact theory (Saxe et al. 2014)."""

import jax
import numpy as np
import pytest

from toylab.experiments import scurve
from toylab.metrics.plateaus import find_plateaus, plateau_length
from toylab.tasks.lowrank import lowrank
from toylab.theory import saxe
from toylab.train import gradient_flow_losses, initial_params

S = np.array([3.0, 2.0, 1.0])


def _crossing(t, u, level):
    """First time ``u`` reaches ``level``, linearly interpolated between evaluations."""
    i = int(np.argmax(u >= level))
    return t[i - 1] + (level - u[i - 1]) * (t[i] - t[i - 1]) / (u[i] - u[i - 1])


@pytest.fixture(scope="module")
def aligned_run():
    """Aligned balanced init, MSE, gradient descent with a small step (lr 1e-3, t up to 10)."""
    result = scurve.run(d=8, singular_values=S, init="aligned", init_scale=1e-3, lr=1e-3,
                        steps=10_000, eval_every=25)
    return result, scurve.summarize(result)


def test_each_mode_follows_saxe_closed_form_within_two_percent(aligned_run):
    result, _ = aligned_run
    t = result.steps * 1e-3
    measured = result.history("mode_strength")[:, 0, :3]
    theory = saxe.mode_strength(t[:, None], S[None, :], 1e-6)
    assert np.max(np.abs(measured - theory) / S) < 0.02
    for k, s in enumerate(S):  # the half-way time, near (1/2s) ln(s/u0) (Saxe et al. 2014)
        assert _crossing(t, measured[:, k], s / 2) == pytest.approx(saxe.drop_time(s, 1e-6), rel=0.02)


def test_modes_are_learned_one_at_a_time_each_drop_removing_half_s_squared(aligned_run):
    _, summary = aligned_run
    (run,) = summary["runs"]
    assert len(run["drops"]) == 3 and len(run["plateaus"]) == 4
    times = [d["time"] for d in run["drops"]]
    assert times == sorted(times)  # largest singular value first
    np.testing.assert_allclose([d["size"] for d in run["drops"]], 0.5 * S**2, rtol=0.05)
    levels = [p["level"] for p in run["plateaus"]]
    np.testing.assert_allclose(levels, [0.5 * np.sum(S**2), *saxe.loss_levels(S)], atol=0.05)
    # The detector dates a drop by the steepest fall, as theory_drops does.
    np.testing.assert_allclose(times, run["theory_drops"], rtol=0.03)


def _plateau_lengths(components, scales, lr, steps, seeds=16):
    """Median over random inits of the time the mode reaches half strength, per scale.

    A random init's initial strength along the target mode is itself random (a product of
    Gaussian factors), so single seeds scatter; the median over 16 is stable.
    """
    result = scurve.run(d=6, singular_values=[2.0], components=components, init="random",
                        init_scale=scales, lr=lr, steps=steps, seeds=seeds)
    t = result.steps * lr
    strength = result.history("mode_strength")[:, :, 0]  # (evals, models)
    lengths = np.array([_crossing(t, strength[:, i], 1.0) for i in range(strength.shape[1])])
    return np.median(lengths.reshape(len(scales), seeds), axis=1)


def test_plateau_length_grows_linearly_in_log_inverse_scale_for_two_components():
    scales = np.array([1e-1, 1e-2, 1e-3, 1e-4])
    lengths = _plateau_lengths(2, scales, lr=0.01, steps=700)
    slope, intercept = np.polyfit(np.log(1 / scales), lengths, 1)
    residual = lengths - (slope * np.log(1 / scales) + intercept)
    assert np.max(np.abs(residual)) < 0.05 * lengths.max()
    assert slope == pytest.approx(1 / 2.0, rel=0.1)  # t ≈ ln(s/ε²)/(2s): slope 1/s per ln(1/ε)


def test_plateau_length_is_a_power_law_in_scale_for_three_components():
    scales = np.array([0.2, 0.1, 0.05, 0.025])
    lengths = _plateau_lengths(3, scales, lr=0.02, steps=2500)
    # t ∝ ε^−(N−2) = 1/ε once ε is small: the local exponent between the two smallest scales.
    exponent = np.log(lengths[-1] / lengths[-2]) / np.log(scales[-2] / scales[-1])
    assert exponent == pytest.approx(1.0, abs=0.15)
    # Not logarithmic: each halving of ε nearly doubles the wait instead of adding to it.
    increments = np.diff(lengths)
    assert np.all(increments[1:] > 1.6 * increments[:-1])


def test_gradient_descent_converges_to_the_exact_gradient_flow():
    task = lowrank(d=5, components=2, init="random")
    config = {"rank": 2, "init_scale": 0.3}  # exactly what scurve.run builds, so the same init
    start = jax.tree.map(lambda leaf: leaf[0], initial_params(task, [config]))
    hyper = task.hyper(config)
    horizon, errors = 4.0, []
    for lr in (0.04, 0.02, 0.01):
        steps = int(round(horizon / lr))
        result = scurve.run(d=5, rank=2, init_scale=0.3, lr=lr, steps=steps, eval_every=steps // 40)
        t = result.steps * lr
        flow = gradient_flow_losses(lambda p: task.exact_loss(p, hyper), start, t)
        errors.append(np.max(np.abs(result.history("loss")[:, 0] - flow)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] / errors[2] == pytest.approx(4.0, rel=0.35)  # first order in the step
    assert errors[2] < 0.02 * flow[0]


def test_sgd_noise_does_not_fool_the_detector():
    result = scurve.run(d=8, singular_values=S, init="aligned", optimizer="sgd", lr=5e-3,
                        steps=2400, entries_per_step=16)
    (run,) = scurve.summarize(result)["runs"]
    assert len(run["drops"]) == 3
    np.testing.assert_allclose([d["size"] for d in run["drops"]], 0.5 * S**2, rtol=0.15)


def test_random_init_begins_with_a_norm_decay_that_is_not_a_drop():
    """Width-1 components (vectors, the post's rank-1 model) from a random init of norm ~1:
    the parts orthogonal to the target decay first, the loss falls from ~0.9 to the plateau
    at ½s², and only the S-curve after it is a drop."""
    result = scurve.run(d=64, width=1, singular_values=[1.0], init="random", init_scale=0.12,
                        lr=0.01, steps=1000, seeds=3)
    t = result.steps * 0.01
    loss, orthogonal = result.history("loss"), result.history("orthogonal_norm")
    for index, run in enumerate(scurve.summarize(result)["runs"]):
        assert loss[0, index] > 0.8  # ½s² = 0.5 plus the orthogonal part's ½‖Z⊥‖²
        (drop,) = run["drops"]
        assert drop["size"] == pytest.approx(0.5, rel=0.1)
        assert run["plateaus"][0]["level"] == pytest.approx(0.5, rel=0.1)
        before_drop = np.searchsorted(t, run["plateaus"][0]["start"])
        assert orthogonal[before_drop, index] < 0.6 * orthogonal[0, index]


def test_a_diverged_run_is_marked_and_keeps_its_history():
    result = scurve.run(d=6, singular_values=[3.0, 1.0], lr=2.0, steps=40, init_scale=0.5)
    loss = result.history("loss")[:, 0]
    first_bad = int(np.argmin(np.isfinite(loss)))
    assert 0 < first_bad < len(loss) - 1  # diverged mid-run: the cut below is not the whole history
    for axis in ("linear", "log"):  # the log axis leaves out step 0: fewer points before NaN
        summary = scurve.summarize(result, time_axis=axis)
        (run,) = summary["runs"]
        assert run["diverged"] and run["loss_final"] is None and run["final_mode_strength"] is None
        # The history up to and including the first non-finite loss, and no further.
        assert [row["loss"] for row in run["history"][:-1]] == loss[:first_bad].tolist()
        assert len(run["history"]) == first_bad + 1 and not np.isfinite(run["history"][-1]["loss"])
        assert scurve.warning(summary) == ("warning: 1 of 1 runs diverged (non-finite loss or weights); "
                                           "their final loss and mode strengths are null")


# The post's observations about cross-entropy and Adam (Jermyn & Shlegeris 2022 and comments),
# on small targets; experiments/scurves_paper.py measures the same at d = 100.
SMALL_D = 12


def _drops(loss, optimizer, lr, singular_values=(3.0, 1.0), seeds=2):
    result = scurve.run(d=SMALL_D, singular_values=list(singular_values), loss=loss, optimizer=optimizer,
                        lr=lr, steps=1000, init_scale=1e-3, seeds=seeds)
    return [run["drops"] for run in scurve.summarize(result, time_axis="log")["runs"]]


@pytest.mark.slow
def test_offset_cross_entropy_at_rank_two_has_two_plateaus_like_mse():
    # At small logits KL(p_C ‖ p_Z) = ‖(C − Z) − mean‖² / (2d²) to second order: gradient descent
    # at lr·d² retraces MSE's staircase. Logits here reach ~s/d = 0.25, so the first drop (the
    # s = 3 mode, largest logits) is ~11% smaller than ½s²/d²; the times agree closely.
    d2 = SMALL_D**2
    mse = _drops("mse", "gd", 0.05)
    ce = _drops("ce", "gd", 0.05 * d2)
    for mse_drops, ce_drops in zip(mse, ce):
        assert len(ce_drops) == 2  # a plateau before each drop: two plateaus, then the solution
        np.testing.assert_allclose([x["time"] / d2 for x in ce_drops], [x["time"] for x in mse_drops], rtol=0.1)
        np.testing.assert_allclose([x["size"] * d2 for x in ce_drops], [4.5, 0.5], rtol=0.15)


@pytest.mark.slow
def test_adam_learns_both_modes_of_a_rank_two_target_in_one_drop():
    # Gradient descent: the s = 3 and s = 1 modes drop at times ~3× apart. Adam's per-parameter
    # normalisation removes the 1/s in the time scale and they fall together.
    assert [len(drops) for drops in _drops("mse", "gd", 0.05)] == [2, 2]
    for drops in _drops("mse", "adam", 1e-3):
        assert len(drops) == 1
        assert drops[0]["size"] == pytest.approx(0.5 * (9.0 + 1.0), rel=0.05)


@pytest.mark.slow
def test_full_rank_plateau_grows_with_log_inverse_init_under_gd_but_not_under_adam():
    spectrum = np.linspace(4.0, 1.0, SMALL_D)  # full rank; the first drop is the s = 4 mode's
    scales = [1e-2, 1e-3, 1e-4, 1e-5]
    steps = {}
    for optimizer, lr in (("gd", 0.05), ("adam", 1e-3)):
        result = scurve.run(d=SMALL_D, singular_values=spectrum, optimizer=optimizer, lr=lr, steps=1000,
                            init_scale=scales, seeds=4)
        t, loss = result.steps * lr, result.history("loss")
        lengths = [plateau_length(t, loss[:, i], axis="log") / lr for i in range(loss.shape[1])]
        steps[optimizer] = np.median(np.reshape(lengths, (len(scales), 4)), axis=1)
    # Gradient descent: u₀ ∝ ε², so each decade of ε adds ln(100)/(2·s_max) = ln(10)/4 to t.
    increments = np.diff(steps["gd"]) * 0.05
    np.testing.assert_allclose(increments, np.log(10.0) / 4.0, rtol=0.25)
    # Adam moves each parameter by about lr per step: escaping takes as many steps at any ε.
    assert steps["adam"].max() / steps["adam"].min() < 1.15


def test_figures_of_several_seeds_of_one_target_draw_its_theory_once():
    # Seeds of one target and init share Saxe's curve: it is drawn once, not refused as before.
    result = scurve.run(d=6, singular_values=[3.0, 1.0], init="aligned", lr=0.05, steps=300, seeds=2,
                        progress=False)
    summary = scurve.summarize(result)
    (ax,) = scurve.scurve_figures(result, summary)["loss_curves"].axes
    assert [line.get_linestyle() for line in ax.lines] == ["-", "-", "--"]  # two seeds, one theory
    assert len(ax.patches) == sum(len(run["plateaus"]) for run in summary["runs"])
