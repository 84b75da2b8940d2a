"""The superposition task on its own: data distribution, loss, gradients, input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from toylab.errors import ConfigError
from toylab.experiments import tms
from toylab.tasks import superposition
from toylab.train import TrainConfig, initial_params, train


def _draw(task, config, batch, seed=0):
    hyper = task.hyper(config)
    return np.asarray(task.sample(jax.random.key(seed), hyper, batch))


def test_independent_features_are_on_with_probability_p_and_uniform_when_on():
    task = superposition(8, 3)
    x = _draw(task, {"feature_probability": [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0]}, 200_000)
    on = x > 0
    np.testing.assert_allclose(on.mean(0), [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0], atol=4e-3)
    values = x[:, 2][on[:, 2]]  # p = 0.2: given "on", U[0, 1)
    assert values.min() >= 0 and values.max() < 1
    np.testing.assert_allclose(np.quantile(values, [0.1, 0.5, 0.9]), [0.1, 0.5, 0.9], atol=0.01)
    # Features are independent: the joint "on" rate is the product of the marginals.
    np.testing.assert_allclose((on[:, 4] & on[:, 5]).mean(), 0.5 * 0.7, atol=4e-3)


def test_correlated_groups_switch_on_together_and_anticorrelated_never_overlap():
    task = superposition(6, 2, correlated_groups=1, anticorrelated_groups=1, group_size=2)
    x = _draw(task, {"feature_probability": 0.2}, 200_000)
    on = x > 0
    np.testing.assert_allclose(on.mean(0), 0.2, atol=4e-3)  # every marginal is still p
    assert np.array_equal(on[:, 0], on[:, 1])  # correlated pair: together
    assert not np.any(on[:, 2] & on[:, 3])  # anticorrelated pair: never both
    np.testing.assert_allclose((on[:, 4] & on[:, 5]).mean(), 0.04, atol=3e-3)  # independent
    # Magnitudes stay U[0,1) inside groups, and the pair's magnitudes are independent.
    for feature in (1, 3):
        np.testing.assert_allclose(np.median(x[on[:, feature], feature]), 0.5, atol=0.01)
    both = on[:, 0]
    assert abs(np.corrcoef(x[both, 0], x[both, 1])[0, 1]) < 0.02


def test_loss_is_importance_weighted_mse_with_relu_and_tied_weights():
    task = superposition(3, 2)
    hyper = task.hyper({"feature_probability": 1.0, "importance": [1.0, 2.0, 0.5]})
    W = jnp.array([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]])
    b = jnp.array([0.0, -0.1, 0.2])
    x = jnp.array([[0.5, 0.2, 0.0], [0.0, 0.0, 1.0]])
    x_hat = np.maximum(np.asarray(x) @ np.asarray(W).T @ np.asarray(W) + np.asarray(b), 0)
    expected = np.mean(np.array([1.0, 2.0, 0.5]) * (np.asarray(x) - x_hat) ** 2)
    assert float(task.loss({"W": W, "b": b}, x, hyper)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("output,tied", [("relu", True), ("linear", True), ("relu", False)])
def test_loss_gradients_match_finite_differences(output, tied):
    task = superposition(5, 2, output=output, tied=tied)
    hyper = task.hyper({"feature_probability": 0.3, "importance": 0.8})
    with jax.enable_x64():
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), task.init(jax.random.key(1), hyper))
        params["b"] = params["b"] + 0.05  # away from the ReLU kink at exactly 0
        x = jnp.asarray(task.sample(jax.random.key(2), hyper, 64), jnp.float64)
        hyper64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), hyper)
        check_grads(lambda p: task.loss(p, x, hyper64), (params,), order=1, modes=["rev"],
                    eps=1e-6, atol=1e-6, rtol=1e-5)


def test_importance_ratio_is_geometric():
    hyper = superposition(4, 2).hyper({"feature_probability": 0.5, "importance": 0.7})
    np.testing.assert_allclose(hyper["importance"], [1, 0.7, 0.49, 0.343], rtol=1e-6)


def test_init_is_xavier_normal_with_zero_bias():
    task = superposition(400, 100)
    params = task.init(jax.random.key(0), task.hyper({"feature_probability": 0.1}))
    assert np.std(np.asarray(params["W"])) == pytest.approx(np.sqrt(2 / 500), rel=0.02)
    assert not np.any(np.asarray(params["b"]))


def test_threefry_gives_the_same_weights_as_before_the_init_and_rng_options():
    """Recorded on main before ``init`` and ``rng`` existed (seed 3, two seeds; an untied model; 20
    steps): ``rng="threefry"`` with the default init reproduces those runs bit for bit."""
    config = [{"feature_probability": 0.1}]
    W = initial_params(superposition(5, 2, rng="threefry"), config, seeds=2, seed=3)["W"]
    np.testing.assert_array_equal(np.asarray(W).ravel()[:6], np.float32(
        [-0.4731194078922272, 0.20794759690761566, -0.6484250426292419,
         0.35792872309684753, 0.43075892329216003, -0.04101329296827316]))
    W_dec = initial_params(superposition(4, 3, tied=False, init="xavier", rng="threefry"), config)["W_dec"]
    np.testing.assert_array_equal(np.asarray(W_dec).ravel()[:4], np.float32(
        [0.27298468351364136, -0.13304372131824493, 0.43247273564338684, -0.0876222774386406]))
    trained = train(superposition(5, 2, rng="threefry"), config, seeds=1, seed=3,
                    config=TrainConfig(steps=20, batch_size=64, elicit_steps=0))
    np.testing.assert_array_equal(np.asarray(trained.params["W"]).ravel()[:4], np.float32(
        [-0.490003377199173, 0.22576232254505157, -0.6379795670509338, 0.37488776445388794]))


@pytest.mark.parametrize("n, m, instances", [(5, 2, 4), (200, 20, 20)])
def test_notebook_init_has_the_std_of_xavier_normal_on_the_whole_instances_tensor(n, m, instances):
    """torch's xavier_normal_ on (I, n, m): fan_in = n·m, fan_out = I·m, std = √(2/(m(n+I)))."""
    seeds = max(1, 4000 // (n * m))
    task = superposition(n, m, init="notebook", init_instances=instances)
    W = np.asarray(initial_params(task, [{"feature_probability": 0.1}], seeds=seeds)["W"])
    notebook, xavier = np.sqrt(2 / (m * (n + instances))), np.sqrt(2 / (n + m))
    assert W.std() == pytest.approx(notebook, rel=0.05)
    assert abs(notebook / xavier - 1) > 0.3  # the two scales are told apart at this size


@pytest.mark.parametrize(
    "build, config, needle",
    [
        (lambda: superposition(5, 0), None, "n_hidden=0"),
        (lambda: superposition(0, 2), None, "n_features=0"),
        (lambda: superposition(5, 2, output="tanh"), None, "output='tanh'"),
        (lambda: superposition(5, 2), {"feature_probability": 1.5}, "feature_probability=1.5"),
        (lambda: superposition(5, 2), {"feature_probability": 0.0}, "feature_probability=0.0"),
        (lambda: superposition(5, 2), {"feature_probability": 0.1, "importance": [1, 1]},
         "importance has 2 values, expected n_features=5"),
        (lambda: superposition(5, 2, anticorrelated_groups=1, group_size=2),
         {"feature_probability": 0.8}, "feature_probability=0.8"),
        (lambda: superposition(3, 2, correlated_groups=2), None, "do not fit"),
        (lambda: superposition(5, 2, init="kaiming"), None, "init='kaiming'"),
        (lambda: superposition(5, 2, init_instances=4), None, "init_instances=4"),
        (lambda: superposition(5, 2, init="notebook", init_instances=0), None, "init_instances=0"),
    ],
)
def test_bad_input_is_refused_in_one_line_naming_the_value(build, config, needle):
    with pytest.raises(ConfigError) as error:
        build().hyper(config) if config is not None else build()
    assert needle in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("variant", [
    {}, {"output": "linear"}, {"tied": False},
    {"correlated_groups": 1, "anticorrelated_groups": 1},
])
def test_every_task_function_is_clean_under_jit_with_strict_promotion(variant):
    """No implicit rank broadcasting or dtype promotion hides in the model (equinox practice)."""
    task = superposition(6, 3, **variant)
    hyper = jax.tree.map(jnp.asarray, task.hyper({"feature_probability": 0.2, "importance": 0.9}))
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        params = jax.jit(task.init)(jax.random.key(0), hyper)
        x = jax.jit(task.sample, static_argnums=2)(jax.random.key(1), hyper, 32)
        loss, grads = jax.jit(jax.value_and_grad(task.loss))(params, x, hyper)
        measured = jax.jit(task.metrics)(params, hyper, jax.random.key(2))
    assert x.shape == (32, 6) and x.dtype == jnp.float32
    assert loss.shape == () and np.isfinite(loss)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
    assert all(np.shape(v) == () and np.isfinite(v) for v in measured.values())


def test_tms_notebook_init_counts_every_instance_trained_at_once():
    one_step = tms.TrainConfig(steps=1, batch_size=8, elicit_steps=0)
    notebook = tms.run(feature_probability=[0.1, 0.2], seeds=3, init="notebook", train_config=one_step)
    assert (notebook.task.spec["init"], notebook.task.spec["init_instances"]) == ("notebook", 6)
    # The default leaves the spec (which keys every instance's random stream) as it was.
    assert "init" not in superposition(5, 2).spec
