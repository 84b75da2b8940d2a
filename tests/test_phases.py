"""The n = 2, m = 1 phase diagram: closed-form candidate losses against the task's own loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toylab.errors import ConfigError
from toylab.tasks import superposition
from toylab.theory import phases


@pytest.mark.parametrize("density", [1.0, 0.4, 0.05])
@pytest.mark.parametrize("relative_importance", [0.3, 1.0, 4.0])
def test_candidate_losses_equal_the_task_loss_on_a_large_sample(density, relative_importance):
    task = superposition(2, 1)
    hyper = task.hyper({"feature_probability": density, "importance": [1.0, relative_importance]})
    x = task.sample(jax.random.key(0), hyper, 2_000_000)
    predicted = phases.candidate_losses(density, relative_importance)
    for phase in phases.PHASES:
        params = {k: jnp.asarray(v, jnp.float32) for k, v in phases.candidate_solution(phase, density).items()}
        per_example = np.asarray(jax.vmap(lambda row: task.loss(params, row[None], hyper))(x), np.float64)
        # Within 5 Monte Carlo standard errors (at p = 0.05 one error is ~0.6% of the loss).
        standard_error = per_example.std() / np.sqrt(per_example.size)
        assert abs(per_example.mean() - float(predicted[phase])) <= 5 * standard_error + 1e-9, phase


def test_boundaries_are_where_two_candidates_tie():
    r = np.array([0.1, 0.3, 1.0, 3.0, 10.0])
    p = phases.boundary_density(r)
    losses = phases.candidate_losses(p, r)
    rival = np.where(r <= 1, losses["not_represented"], losses["dedicated"])
    np.testing.assert_allclose(losses["superposition"], rival, rtol=1e-12)
    # All three meet at r = 1, p = 4/7.
    at = phases.candidate_losses(4 / 7, 1.0)
    assert len({round(float(v), 12) for v in at.values()}) == 1
    # Just sparser than the boundary superposition wins; just denser it loses.
    assert set(phases.closed_form_phase(0.97 * p, r)) == {"superposition"}
    assert "superposition" not in set(phases.closed_form_phase(np.minimum(1.03 * p, 1.0), r))


def test_swapping_importance_swaps_not_represented_and_dedicated():
    p = np.geomspace(0.01, 1.0, 9)[:, None]
    r = np.geomspace(0.1, 10.0, 9)[None, :]
    forward, mirrored = phases.closed_form_phase(p, r), phases.closed_form_phase(p, 1 / r)
    swap = {"not_represented": "dedicated", "dedicated": "not_represented", "superposition": "superposition"}
    off_diagonal = np.abs(np.log(r)) > 1e-9 + 0 * p  # at r = 1 ties go to not_represented
    assert all(swap[a] == b for a, b, keep in zip(forward.ravel(), mirrored.ravel(), off_diagonal.ravel()) if keep)


@pytest.mark.parametrize("density, relative_importance, message", [
    (0.0, 1.0, r"density=0.0"), (1.5, 1.0, r"density=1.5"), (0.5, -1.0, r"relative_importance=-1.0"),
])
def test_bad_values_are_named(density, relative_importance, message):
    with pytest.raises(ConfigError, match=message):
        phases.candidate_losses(density, relative_importance)


def test_classify_phase_reads_the_extra_feature_at_any_scale():
    from toylab.metrics import classify_phase

    W = np.array([[[1.0, 0.02]], [[0.05, 1.0]], [[1.0, -0.9]], [[1.0, 0.3]]])
    expected = ["not_represented", "dedicated", "superposition", "superposition"]
    for scale in (0.01, 1.0, 50.0):
        assert classify_phase(scale * W).tolist() == expected
    # n = 3, m = 2: the extra feature on its own axis, or sharing it antipodally with feature 2.
    own = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    shared = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
    assert classify_phase(np.stack([own, shared])).tolist() == ["dedicated", "superposition"]


def test_phase_diagram_marks_disagreements_and_draws_boundaries():
    from toylab.figures import phase_diagram

    p, r = np.geomspace(0.02, 1.0, 5), np.geomspace(0.1, 10.0, 4)
    closed = phases.closed_form_phase(p[None, :], r[:, None])
    trained = closed.copy()
    trained[0, 0] = "dedicated"
    fig = phase_diagram(p, r, trained, closed_form=closed, boundaries=True)
    ax = fig.axes[0]
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(dots) == 1 and dots[0].get_xdata().tolist() == [p[0]] and dots[0].get_ydata().tolist() == [r[0]]
    assert sum(line.get_linestyle() == "--" for line in ax.lines) == 2
    with pytest.raises(ConfigError, match=r"unknown phase names \['pentagon'\]"):
        phase_diagram(p, r, np.full((4, 5), "pentagon", dtype=object))


@pytest.mark.slow
def test_trained_n2m1_diagram_matches_the_closed_form_away_from_boundaries(tmp_path):
    from cli_json import result_of
    from typer.testing import CliRunner

    from toylab.cli import app

    store = tmp_path / "phase.sqlite"
    args = ["phase", "--preset", "n2m1", "--grid", "5", "--seeds", "4", "--steps", "3000",
            "--store", str(store), "--out", str(tmp_path / "out"), "--json"]
    result = CliRunner().invoke(app, args)
    payload = result_of(result, "phase")
    assert len(payload["cells"]) == 25
    assert {"density", "relative_importance", "phase", "closed_form_phase"} <= set(payload["cells"][0])
    assert set(c["phase"] for c in payload["cells"]) == set(phases.PHASES)
    # Measured: 24 of 25 cells agree; the one that does not is next to a boundary.
    assert payload["agreement_away_from_boundary"] == 1.0 and payload["cells_away_from_boundary"] >= 8
    assert payload["agreement"] >= 0.85
    assert (tmp_path / "out" / "phase_n2m1.png").exists()
    # The same command again reads the finished store back: nothing is trained twice. The run
    # folder now holds the first run's files, so writing into it again takes --overwrite.
    again = CliRunner().invoke(app, [*args, "--overwrite"])
    assert result_of(again, "phase")["cells"] == payload["cells"]


def test_phase_refuses_an_unknown_preset_before_creating_a_store(tmp_path):
    from typer.testing import CliRunner

    from toylab.cli import app

    result = CliRunner().invoke(app, ["phase", "--preset", "n4m2", "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2 and "'n4m2' is not one of 'n2m1', 'n3m2'" in result.stderr
    assert not (tmp_path / "s.sqlite").exists()


def test_phase_run_refuses_an_unknown_preset_before_creating_a_store(tmp_path):
    from toylab.experiments import phase

    with pytest.raises(ConfigError, match="preset='n4m2': choose one of n2m1, n3m2"):
        phase.run("n4m2", store=tmp_path / "runs" / "s.sqlite")
    assert not (tmp_path / "runs").exists()


def test_near_boundary_and_agreement_on_a_constructed_grid():
    from toylab.experiments.phase import agreement

    expected = np.array([["superposition"] * 4] * 2 + [["superposition", "superposition", "dedicated", "dedicated"]] * 2,
                        dtype=object)
    trained = expected.copy()
    trained[3, 1] = "dedicated"  # next to the boundary: counts against `agreement` only
    result = agreement(trained, expected)
    assert result["agreement"] == 15 / 16
    # Away from the boundary: rows 0, the first column, and the corner (3, 3) whose neighbours
    # are all dedicated.
    assert result["agreement_away_from_boundary"] == 1.0 and result["cells_away_from_boundary"] == 8
    trained[0, 0] = "not_represented"  # far from it
    assert agreement(trained, expected)["agreement_away_from_boundary"] == 7 / 8
