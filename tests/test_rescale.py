"""The rescaling sanity check on a real classifier and on the superposition autoencoder.

Small settings: the classifier trains 300 steps (≈ 95% test accuracy on digits) and the
autoencoder 400 steps, once per module.
"""

from __future__ import annotations

import json

from cli_json import result_of
import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from toylab import metrics
from toylab.cli import app
from toylab.errors import ConfigError
from toylab.experiments import rescale
from toylab.tasks.classifier import digits, mlp_classifier

runner = CliRunner()
SCALES = (0.1, 0.3, 1.0, 3.0, 10.0)
SMALL = {"steps": 300, "tms_steps": 400, "tms_seeds": 1}


@pytest.fixture(scope="module")
def result() -> rescale.RescaleResult:
    return rescale.run(scales=SCALES, **SMALL)


# ---------------------------------------------------------------------------------------------
# The classifier: behaviour unchanged, Elhage's measure ∝ c², the invariants flat.


def test_classifier_learned_digits(result):
    assert result.settings["classifier"]["test_accuracy"] > 0.9


def test_predictions_are_identical_for_every_c(result):
    assert result.classifier["predictions_changed"].tolist() == [0] * len(SCALES)
    np.testing.assert_array_equal(result.classifier["accuracy"], result.settings["classifier"]["test_accuracy"])


def test_predictions_identical_in_an_independent_float64_forward_pass(result):
    # Recomputed here in numpy float64, not through the experiment's own JAX code.
    data = digits(split_seed=0)
    W_in = result.classifier_params["W_in"].astype(np.float64)
    W_out = result.classifier_params["W_out"].astype(np.float64)

    def predict(c):
        return np.argmax(np.maximum(data.x_test @ (c * W_in).T, 0.0) @ W_out.T, axis=1)

    for c in SCALES:
        np.testing.assert_array_equal(predict(c), predict(1.0))


def test_the_changed_predictions_count_can_see_a_change(result):
    # c = −1 flips every pre-activation's sign: ReLU is not homogeneous for negative factors.
    data = digits(split_seed=0)
    flipped = rescale.rescale_classifier(result.classifier_params, data.x_test, data.y_test, np.array([-1.0, 1.0]))
    assert flipped["predictions_changed"][0] > 100 and flipped["predictions_changed"][1] == 0


def test_features_per_dimension_grows_as_c_squared(result):
    fpd = result.classifier["features_per_dimension"]
    at_one = fpd[SCALES.index(1.0)]
    np.testing.assert_allclose(fpd / at_one, np.square(SCALES), rtol=1e-5)
    assert at_one == pytest.approx(float(metrics.features_per_dimension(result.classifier_params["W_in"])), rel=1e-6)


def test_dimensionality_and_invariant_are_unchanged(result):
    D = result.classifier["feature_dimensionality"]  # (scales, n_inputs)
    assert D.shape == (len(SCALES), 61)
    np.testing.assert_allclose(D, np.broadcast_to(D[SCALES.index(1.0)], D.shape), rtol=1e-5, atol=1e-7)
    for key in ("features_per_dimension_invariant", "mean_feature_dimensionality"):
        values = result.classifier[key]
        np.testing.assert_allclose(values, values[SCALES.index(1.0)], rtol=1e-5)
    invariant = result.classifier["features_per_dimension_invariant"][0]
    assert 1 / 32 <= invariant <= 61 / 32  # 61 pixel features in 32 hidden dimensions


# ---------------------------------------------------------------------------------------------
# The autoencoder: the same measures, but the loss depends on the scale.


def test_rescaling_the_autoencoder_changes_its_loss(result):
    loss = result.autoencoder["loss"]
    trained = loss[SCALES.index(1.0)]
    assert np.argmin(loss) == SCALES.index(1.0)  # the trained scale is the best of the grid
    assert loss[SCALES.index(0.3)] > 2 * trained and loss[SCALES.index(3.0)] > 10 * trained
    fpd = result.autoencoder["features_per_dimension"]
    np.testing.assert_allclose(fpd / fpd[SCALES.index(1.0)], np.square(SCALES), rtol=1e-5)
    invariant = result.autoencoder["features_per_dimension_invariant"]
    np.testing.assert_allclose(invariant, invariant[0], rtol=1e-5)


def test_autoencoder_loss_at_c_1_matches_the_task_loss(result):
    # The per-scale loss is the task's own loss on a fixed sample: at c = 1 it is the trained model's.
    from toylab.tasks import superposition

    task = superposition(5, 2)
    hyper = task.hyper({"feature_probability": 0.05, "importance": 1.0})
    x = task.sample(jax.random.key(0), hyper, rescale.TMS_EVAL_EXAMPLES)
    params = {k: np.asarray(v) for k, v in result.tms_params.items()}
    assert float(task.loss(params, x, hyper)) == pytest.approx(result.autoencoder["loss"][SCALES.index(1.0)],
                                                               rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Summary, run folder, CLI.


def test_summary_lists_are_aligned_with_scales_and_json_ready(result):
    summary = rescale.summarize(result)
    json.dumps(summary, allow_nan=False)
    for key in ("accuracy", "predictions_changed", "features_per_dimension", "features_per_dimension_invariant",
                "mean_feature_dimensionality", "tms_loss"):
        assert len(summary[key]) == len(summary["scales"]), key
    assert summary["scales"] == list(SCALES)
    assert all(isinstance(n, int) for n in summary["predictions_changed"])


def test_run_folder_weights_measure_like_the_summary(tmp_path, result):
    summary = rescale.summarize(result)
    written = {p.name for p in rescale.write_run(tmp_path, result, summary)}
    assert {"summary.json", "weights.npz", "rescale_check.png", "rescale_check.svg"} <= written
    measured = runner.invoke(app, ["measure", str(tmp_path / "weights.npz"), "--array", "W_in", "--json"])
    payload = result_of(measured, "measure")
    k = SCALES.index(1.0)
    assert payload["features_per_dimension"] == pytest.approx(summary["features_per_dimension"][k], rel=1e-5)
    assert payload["features_per_dimension_invariant"] == pytest.approx(
        summary["features_per_dimension_invariant"][k], rel=1e-5)


@pytest.mark.slow
def test_rescale_check_cli_json(tmp_path):
    # The fixture's scales and seed count: the compiled programs are reused.
    result = runner.invoke(app, ["rescale-check", "--scales", ",".join(map(str, SCALES)), "--steps", "50",
                                 "--tms-steps", "50", "--tms-seeds", "1", "--out", str(tmp_path), "--json"])
    payload = result_of(result, "rescale-check")
    assert payload["scales"] == list(SCALES)
    for key in ("accuracy", "predictions_changed", "features_per_dimension", "features_per_dimension_invariant",
                "mean_feature_dimensionality", "tms_loss"):
        assert len(payload[key]) == len(SCALES), key
    assert payload["predictions_changed"] == [0] * len(SCALES)
    assert (tmp_path / "rescale_check.png").exists()


@pytest.mark.parametrize(("flags", "needle"), [
    (["--scales", "0,1"], "c=0.0 is not a finite number > 0"),
    (["--scales", "-2"], "c=-2.0"),
    (["--scales", "big"], "'--scales': 'big'"),
    (["--steps", "0"], "steps=0"),
    (["--tms-seeds", "0"], "tms_seeds=0"),
    (["--n-hidden", "0"], "n_hidden=0"),
])
def test_rescale_check_bad_input_is_one_line(tmp_path, flags, needle):
    out = tmp_path / "run"
    result = runner.invoke(app, ["rescale-check", "--out", str(out), *flags])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# The classifier task itself.


def test_digits_split_is_fixed_by_its_seed_and_disjoint():
    a, b, other = digits(split_seed=0), digits(split_seed=0), digits(split_seed=1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.y_test, other.y_test)
    assert len(a.y_train) + len(a.y_test) == 1797 and a.x_train.shape[1] == 61
    rows = {row.tobytes() for row in a.x_train}
    assert sum(row.tobytes() in rows for row in a.x_test) < 5  # only the data set's own duplicate images
    assert a.x_train.min() >= 0.0 and a.x_train.max() <= 1.0


def test_classifier_task_is_bias_free_and_checks_its_settings():
    task = mlp_classifier(digits(), n_hidden=8)
    params = task.init(jax.random.key(0), task.hyper({}), data=task.data)
    assert set(params) == {"W_in", "W_out"}  # no biases: the homogeneity the check relies on
    with pytest.raises(ConfigError, match="n_hidden=0"):
        mlp_classifier(digits(), n_hidden=0)
    with pytest.raises(ConfigError, match="lr"):
        task.hyper({"lr": 0.1})  # the classifier has no per-instance settings
    with pytest.raises(ConfigError, match="test_fraction=1.5"):
        digits(test_fraction=1.5)
