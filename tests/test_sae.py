"""Sparse autoencoders on toy activations whose true features are known (S6)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from toylab.errors import ConfigError
from toylab.tasks import superposition
from toylab.metrics import capability
from toylab.metrics import sae as metrics_sae
from toylab.metrics.sae import encode
from toylab.tasks.sae import sae_on_activations, sae_on_models
from toylab.train import TrainConfig, train


def sparse_directions(n_features=8, d_in=4, p=0.05, rows=20_000, seed=0):
    """Rows ``Σ_i c_i d_i``: n random unit directions ``d_i`` (columns), each on w.p. p with ``c_i ~ U[0,1)``."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((d_in, n_features))
    features /= np.linalg.norm(features, axis=0)
    codes = np.where(rng.random((rows, n_features)) < p, rng.random((rows, n_features)), 0.0)
    return (codes @ features.T).astype(np.float32), features


def test_an_sae_recovers_features_in_superposition():
    # 8 directions in 4 dimensions: no basis holds them, only a sparse code does.
    acts, features = sparse_directions()
    task = sae_on_activations(acts, d_sae=16, features=features)
    result = train(task, [{"l1_coefficient": 0.1}], seeds=4,
                   config=TrainConfig(steps=2000, lr=3e-3, elicit_steps=0))
    best = int(np.argmax(result.history("mmcs")[-1]))
    assert result.history("mmcs")[-1][best] >= 0.95
    assert result.history("matched")[-1][best] >= 7
    # Every decoder column is unit length after every step (the projection), so after the last.
    norms = np.linalg.norm(result.params["W_dec"], axis=1)  # (models, d_sae)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


def test_topk_keeps_exactly_k_latents_per_row_with_k_per_instance():
    acts, _ = sparse_directions(p=0.5, rows=2000)
    task = sae_on_activations(acts, d_sae=16, architecture="topk")
    result = train(task, [{"k": 1}, {"k": 3}], seeds=1, config=TrainConfig(steps=50, elicit_steps=0))
    l0 = result.history("l0")[-1]
    assert l0[0] <= 1.0 and 1.0 < l0[1] <= 3.0
    f = encode(result.instance_params(1), acts[:100], k=3)
    assert int((np.asarray(f) > 0).sum(axis=1).max()) <= 3
    with pytest.raises(ConfigError, match="k=17"):
        task.hyper({"k": 17})
    with pytest.raises(ConfigError, match="l1_coefficient=-0.1"):
        task.hyper({"k": 2, "l1_coefficient": -0.1})


def test_saes_read_the_hidden_layer_of_the_model_they_index():
    toy = superposition(n_features=6, n_hidden=3)
    models = train(toy, [{"feature_probability": 0.1}, {"feature_probability": 0.5}], seeds=1,
                   config=TrainConfig(steps=200, elicit_steps=0))
    task = sae_on_models(toy, models.params, models.hyper, d_sae=12)
    hyper = task.hyper({"model": 1, "l1_coefficient": 0.01})
    key = jax.random.key(3)
    h = task.sample(key, hyper, 64, data=task.data)
    # The same draw the model's own task makes with model 1's settings, through model 1's W.
    x = toy.sample(key, jax.tree.map(lambda leaf: leaf[1], models.hyper), 64)
    np.testing.assert_allclose(h, np.asarray(x) @ models.params["W"][1].T, rtol=1e-5, atol=1e-6)
    configs = [{"model": i, "l1_coefficient": l} for i in (0, 1) for l in (1e-3, 1e-2)]
    saes = train(task, configs, seeds=2, config=TrainConfig(steps=300, lr=3e-3, elicit_steps=0))
    assert saes.params["W_dec"].shape == (8, 3, 12)
    recovered = saes.history("spliced_loss_recovered")[-1]
    assert np.isfinite(recovered).all() and recovered.min() > 0.5
    with pytest.raises(ConfigError, match="model=2"):
        task.hyper({"model": 2})


def test_mmcs_and_mcc_are_one_for_a_permutation_of_the_true_features():
    rng = np.random.default_rng(1)
    features = rng.standard_normal((4, 6))  # (d_in, n_features), any lengths
    decoder = features[:, rng.permutation(6)] * rng.uniform(0.5, 2.0, 6)  # scaled: only directions count
    assert metrics_sae.mmcs(decoder, features) == pytest.approx(1.0)
    assert metrics_sae.mcc(decoder, features) == pytest.approx(1.0)
    assert metrics_sae.matched_features(decoder, features).all()
    # Rows instead of columns (SAELens' W_dec), and a PyTorch tensor, give the same.
    torch = pytest.importorskip("torch")
    assert metrics_sae.mcc(torch.tensor(decoder.T), features.T, feature_axis=0) == pytest.approx(1.0)


def test_mcc_is_below_mmcs_when_one_latent_is_the_best_match_of_two_features():
    # Features e0 and (0.8, 0.6); the decoder has e0 and e1. Latent e0 is the best match of both
    # features: MMCS counts it twice, (1 + 0.8)/2; one-to-one matching must give the second
    # feature e1, cosine 0.6: MCC = (1 + 0.6)/2.
    features = np.array([[1.0, 0.8], [0.0, 0.6]])
    decoder = np.eye(2)
    assert metrics_sae.mmcs(decoder, features) == pytest.approx(0.9)
    assert metrics_sae.mcc(decoder, features) == pytest.approx(0.8)
    # A decoder that repeats feature 0 instead of having feature 1: with fewer latents than
    # features the repeat is the only match for both (MMCS (1 + 0.8)/2, MCC (1 + 0)/2) ...
    assert metrics_sae.mmcs(features[:, :1], features) == pytest.approx(0.9)
    assert metrics_sae.mcc(features[:, :1], features) == pytest.approx(0.5)
    # ... while exact copies give each feature a copy of its own, and the two agree.
    copies = features[:, [0, 0]]
    assert metrics_sae.mcc(copies, features) == pytest.approx(metrics_sae.mmcs(copies, features)) == pytest.approx(0.9)
    assert metrics_sae.matched_features(decoder, features).tolist() == [True, False]
    with pytest.raises(ConfigError, match="dimension 2"):
        metrics_sae.mmcs(np.eye(3), np.eye(2))


def test_sparsity_reconstruction_and_splice_measures_on_constructed_latents():
    latents = np.array([[0.0, 2.0, 0.0, 0.0], [1.0, 3.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert metrics_sae.l0(latents) == pytest.approx(1.0)
    assert metrics_sae.dead_latents(latents) == 2
    h = np.array([[1.0, 0.0], [3.0, 2.0]])  # mean (2, 1): total variance 2 + 2 = 4
    assert metrics_sae.fraction_of_variance_unexplained(h, h + [[1.0, 0.0], [0.0, 0.0]]) == pytest.approx(0.25)
    # Recovered: 1 at the model's loss, 0 at the ablated loss, elementwise over arrays.
    np.testing.assert_allclose(metrics_sae.spliced_loss_recovered([1.0, 1.0], [1.0, 3.0], [3.0, 3.0]), [1.0, 0.0])


def _sparse_inputs(n, rows=20_000, p=0.1, seed=0):
    rng = np.random.default_rng(seed)
    return np.where(rng.random((rows, n)) < p, rng.random((rows, n)), 0.0)


def test_an_orthonormal_model_is_fully_interpretable_and_so_is_a_perfect_sae():
    W = np.linalg.qr(np.random.default_rng(0).standard_normal((4, 4)))[0]  # m = n = 4, orthonormal columns
    x, importance = _sparse_inputs(4), 0.9 ** np.arange(4)
    report = capability.interpretable_capability(W, np.zeros(4), x, importance)
    assert report["capability"] > 0 and report["geometric_features"].all()
    assert report["interpretable_capability"]["geometry"] == pytest.approx(report["capability"])
    assert report["fraction"]["geometry"] == pytest.approx(1.0)
    # An SAE whose latents are the features themselves: f = ReLU(Wᵀ W x) = x, ĥ = h exactly.
    perfect = {"W_enc": W.T, "b_enc": np.zeros(4), "W_dec": W, "b_dec": np.zeros(4)}
    report = capability.interpretable_capability(W, np.zeros(4), x, importance, sae=perfect)
    C, c = report["capability"], report["per_feature"]
    assert report["interpretable_capability"]["sae"] == pytest.approx(C)
    assert report["interpretable_capability"]["sae_splice"] == pytest.approx(C)
    assert report["sae"]["mmcs"] == pytest.approx(1.0) and report["sae"]["mcc"] == pytest.approx(1.0)
    assert report["sae"]["fvu"] == pytest.approx(0.0, abs=1e-12)
    assert report["sae"]["spliced_loss_recovered"] == {"zero": pytest.approx(1.0), "mean": pytest.approx(1.0)}
    # Without the latent of feature 3, that feature's capability is no longer interpretable.
    three = {**perfect, "W_enc": W.T[:3], "b_enc": np.zeros(3), "W_dec": W[:, :3]}
    report = capability.interpretable_capability(W, np.zeros(4), x, importance, sae=three)
    assert report["matched_features"].tolist() == [True, True, True, False]
    assert report["interpretable_capability"]["sae"] == pytest.approx(C - c[3])


def test_a_pentagon_has_no_feature_with_a_dimension_of_its_own():
    angles = 2 * np.pi * np.arange(5) / 5
    W = np.stack([np.cos(angles), np.sin(angles)])  # (2, 5): D_i = 2/5 each
    report = capability.interpretable_capability(W, np.full(5, -0.3), _sparse_inputs(5, p=0.02), np.ones(5))
    assert report["capability"] > 0  # the model does something ...
    assert not report["geometric_features"].any()  # ... and none of it is in a dimension of its own
    assert report["interpretable_capability"]["geometry"] == 0.0 and report["fraction"]["geometry"] == 0.0


def test_per_feature_capability_sums_to_the_models_own_loss_difference():
    toy = superposition(n_features=6, n_hidden=3)
    models = train(toy, [{"feature_probability": 0.1, "importance": 0.8}], seeds=2,
                   config=TrainConfig(steps=300, elicit_steps=0))
    for i in range(2):
        params, hyper = models.instance_params(i), jax.tree.map(lambda leaf: leaf[i], models.hyper)
        x = np.asarray(toy.sample(jax.random.key(i), hyper, 4096), np.float64)
        report = capability.interpretable_capability(params["W"], params["b"], x, hyper["importance"])
        # L_trivial and L_model from the task's own loss: W = 0 with the best bias, and the model.
        trivial = {"W": np.zeros_like(params["W"]), "b": x.mean(axis=0).astype(np.float32)}
        C = float(toy.loss(trivial, x.astype(np.float32), hyper) - toy.loss(params, x.astype(np.float32), hyper))
        assert report["capability"] == pytest.approx(C, rel=1e-4) and C > 0
        assert report["per_feature"].sum() == pytest.approx(report["capability"], rel=1e-12)


def test_toylab_sae_trains_on_a_file_and_prints_one_json_object(tmp_path):
    from typer.testing import CliRunner

    from toylab.cli import app

    acts, features = sparse_directions()
    np.save(tmp_path / "acts.npy", acts)
    np.save(tmp_path / "features.npy", features.T)  # rows: --feature-axis 0
    result = CliRunner().invoke(app, ["sae", str(tmp_path / "acts.npy"), "--d-sae", "16", "--k", "1", "--steps", "1500",
                                      "--seeds", "2", "--features", str(tmp_path / "features.npy"),
                                      "--feature-axis", "0", "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    saes, best = envelope["result"]["saes"], envelope["result"]["best"]
    assert [row["seed"] for row in saes] == [0, 1]
    assert set(best) == {"seed", "l0", "fvu", "dead_latents", "mmcs", "mcc", "matched"}
    assert best["mcc"] == max(row["mcc"] for row in saes) and best["l0"] <= 1.0
    # TopK with k = 1 on rows that mostly hold one feature: each latent learns one direction.
    assert best["mmcs"] >= 0.95 and best["matched"] >= 7
    with np.load(tmp_path / "run" / "sae.npz") as saved:
        assert saved["W_dec"].shape == (2, 4, 16)


def test_the_capability_study_reports_both_definitions_per_model(tmp_path):
    from toylab.experiments import capability as study

    result = study.run(seeds=1, steps=200, families={5: (3,)}, densities=(0.3, 0.05), sae_steps=200,
                       progress=False)
    summary = study.summarize(result)
    assert [(r["n_features"], r["n_hidden"], round(r["feature_probability"], 6)) for r in summary["rows"]] == [
        (5, 3, 0.3), (5, 3, 0.05)]
    for row in summary["rows"]:
        assert {"n_features", "n_hidden", "feature_probability", "capability", "interpretable_capability",
                "fraction", "sae"} <= set(row)
        assert set(row["interpretable_capability"]) == set(row["fraction"]) == {"geometry", "sae", "sae_splice"}
        assert {"l0", "fvu", "mmcs", "mcc", "dead_latents"} <= set(row["sae"])
        for name, value in row["interpretable_capability"].items():
            assert row["fraction"][name] == pytest.approx(value / row["capability"])
        assert row["capability"] == pytest.approx(row["loss_trivial"] - row["loss_model"], rel=1e-9)
    # Geometry along training: every evaluation of the compute schedule, from init to the end.
    steps = sorted({t["step"] for t in summary["trajectories"] if round(t["feature_probability"], 6) == 0.05})
    assert steps[0] == 0 and steps[-1] == 200 and len(steps) >= 4
    # From step 16 on every evaluation has its own SAE, the last one the SAE of the row.
    with_sae = {t["step"] for t in summary["trajectories"] if t["sae"] is not None}
    assert with_sae == {step for step in steps if step >= 16}
    last = [t for t in summary["trajectories"] if t["step"] == 200]
    assert [t["sae"] for t in last] == [r["interpretable_capability"]["sae"] for r in summary["rows"]]
    written = study.write_run(tmp_path, result, {"study": study.describe(), **summary})
    assert {p.name for p in written} >= {"summary.json", "capability.png", "capability_training.png"}


def test_a_sweep_trains_saes_on_a_file_named_in_its_spec(tmp_path):
    from toylab import sweeps

    acts, features = sparse_directions(rows=4000)
    np.save(tmp_path / "acts.npy", acts)
    np.save(tmp_path / "features.npy", features)
    spec = {"task": "toylab.tasks.sae:sae_on_activations", "seeds": 2,
            "task_params": {"activations": str(tmp_path / "acts.npy"), "features": str(tmp_path / "features.npy"),
                            "d_sae": 16},
            "axes": {"l1_coefficient": [0.01, 0.1]},
            "train": {"steps": 50, "optimizer": "adam", "lr": 3e-3, "elicit_steps": 0}}
    summary = sweeps.run(spec, store=tmp_path / "saes.sqlite")
    assert summary.failed == 0
    result = sweeps.load(tmp_path / "saes.sqlite").train_result()
    assert result.params["W_dec"].shape == (4, 4, 16)
    assert np.isfinite(result.history("mmcs")[-1]).all()
