"""Sparse autoencoders on toy activations whose true features are known (S6)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from toylab.errors import ConfigError
from toylab.tasks import superposition
from toylab.tasks.sae import encode, sae_on_activations, sae_on_models
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
