"""The three worked tasks in examples/tasks/, trained by the unchanged trainer.

Each is one file a user could have written: a regression, REINFORCE on a JAX environment tuned
by population-based training through the trainer's hook, and sparse autoencoders on activations
shared by every instance.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from toylab.errors import ConfigError
from toylab.train import TrainConfig, train

EXAMPLES = Path(__file__).parents[1] / "examples" / "tasks"


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"toylab_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the module look themselves up here
    spec.loader.exec_module(module)
    return module


regression = _example("regression")
reinforce = _example("reinforce")
sae = _example("sae")


def test_regression_finds_the_teacher_and_reports_the_irreducible_loss():
    task = regression.regression(d=8)
    result = train(task, [{"noise": 0.0}, {"noise": 0.5}], seeds=2,
                   config=TrainConfig(steps=600, optimizer="adam", lr=0.05, schedule="cosine", elicit_steps=0))
    error = result.history("weight_error")[-1]  # (4,)
    assert error[:2].max() < 1e-2 and error[2:].max() < 0.15
    # The exact loss is ½(‖w − w*‖² + σ²): at the teacher, the noise floor ½σ².
    np.testing.assert_allclose(result.history("loss")[-1][2:], 0.5 * 0.25, rtol=0.05)
    with pytest.raises(ConfigError, match="noise=-1.0"):
        task.hyper({"noise": -1.0})


def test_value_iteration_gives_the_corridor_closed_form():
    for length, gamma in ((2, 0.5), (5, 0.9), (7, 0.99)):
        assert reinforce.optimal_value(length, 12, gamma) == pytest.approx(gamma ** (length - 2), rel=1e-6)
    assert reinforce.optimal_value(7, 5, 0.9) == 0.0  # the goal is 6 moves away: out of reach


@pytest.mark.slow
def test_population_based_training_rescues_members_whose_learning_rate_is_too_small():
    task = reinforce.reinforce(length=5, horizon=12, gamma=0.9)
    best = reinforce.optimal_value(5, 12, 0.9)
    config = TrainConfig(steps=300, eval_every_steps=25, elicit_steps=0)
    population = [{"lr": 0.002}, {"lr": 0.1}]  # half the members learn ~50× too slowly
    fixed = train(task, population, seeds=4, config=config)
    pbt = train(task, population, seeds=4, config=config,
                on_evaluation=reinforce.population_based_training(fraction=0.25))
    fixed_value, pbt_value = fixed.history("value")[-1], pbt.history("value")[-1]
    assert fixed_value[4:].min() > 0.97 * best  # a good rate reaches the optimum alone ...
    assert fixed_value[:4].max() < 0.9 * best  # ... a slow one does not in 300 steps
    assert pbt_value.min() > 0.97 * best  # exploit + explore lifts every member
    assert pbt.hyper["lr"].min() > 0.01  # the slow rates were replaced
    # The task state: a running mean of sampled returns, near the policy's exact value.
    np.testing.assert_allclose(pbt.state, pbt_value, atol=0.05)


@pytest.mark.slow
def test_sparse_autoencoders_trade_reconstruction_for_sparsity_and_recover_the_features():
    task = sae.sparse_autoencoder(n_features=16, d_in=8, d_sae=16, p=0.05)
    l1 = [1e-3, 3e-2, 0.3]
    result = train(task, [{"l1_coefficient": c} for c in l1],
                   config=TrainConfig(steps=2000, lr=3e-3, elicit_steps=0))
    final = {name: result.history(name)[-1] for name in ("l0", "fvu", "mmcs", "dead_fraction", "mse")}
    assert np.all(np.diff(final["l0"]) < 0) and np.all(np.diff(final["fvu"]) > 0)
    # The true code has 16 · 0.05 = 0.8 active features a row; the sparsest SAE is close and
    # its decoder rows line up with the true directions.
    assert final["l0"][-1] < 1.5 and final["mmcs"][-1] > 0.9
    assert final["dead_fraction"].max() == 0.0
    # The projection keeps every decoder row on the unit sphere.
    np.testing.assert_allclose(np.linalg.norm(result.params["W_dec"], axis=-1), 1.0, atol=1e-5)


def test_sae_metrics_on_a_constructed_autoencoder():
    import jax.numpy as jnp

    task = sae.sparse_autoencoder(n_features=4, d_in=4, d_sae=4, p=0.25, rows=512, held_out=256)
    features = task.data["features"]
    # Encoder and decoder are the true directions; a large negative bias kills latent 3.
    params = {"W_enc": jnp.asarray(features.T), "W_dec": jnp.asarray(features),
              "b_enc": jnp.array([0.0, 0.0, 0.0, -1e3]), "b_dec": jnp.zeros(4)}
    measured = task.metrics(params, task.hyper({}), None, data=task.data)
    assert float(measured["dead_fraction"]) == 0.25
    assert float(measured["mmcs"]) == pytest.approx(1.0, abs=1e-6)
