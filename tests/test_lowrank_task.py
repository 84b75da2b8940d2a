"""The multi-component matrix task: targets, losses, minibatches, init, input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from toylab.errors import ConfigError
from toylab.metrics import lowrank as lowrank_metrics
from toylab.tasks.lowrank import lowrank


def _setup(task, config, seed=0):
    hyper = jax.tree.map(jnp.asarray, task.hyper(config))
    return hyper, task.init(jax.random.key(seed), hyper)


def _kl(p, q):
    p, q = np.asarray(p, np.float64).ravel(), np.asarray(q, np.float64).ravel()
    return float(np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / q), 0.0)))


def _softmax(x, axis=None):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_target_has_the_requested_rank_and_singular_values():
    task = lowrank(d=12)
    hyper = task.hyper({"singular_values": [3.0, 2.0, 0.5]})
    np.testing.assert_allclose(np.linalg.svd(hyper["target"], compute_uv=False)[:4], [3, 2, 0.5, 0], atol=1e-5)
    random = task.hyper({"rank": 4, "target_seed": 3})
    s = random["s"]
    assert np.count_nonzero(s) == 4 and np.all((s[:4] >= 1) & (s[:4] < 4))
    assert np.all(np.diff(s[:4]) <= 0)
    # The mode basis is the target's own: U diag(s) Vᵀ reproduces it.
    np.testing.assert_allclose((random["U"] * s) @ random["V"].T, random["target"], atol=1e-5)


def test_mse_loss_is_half_the_squared_frobenius_error():
    task = lowrank(d=5)
    hyper, params = _setup(task, {"rank": 2, "init_scale": 0.3})
    Z = np.asarray(params["factors"][0] @ params["factors"][1])
    expected = 0.5 * np.sum((np.asarray(hyper["target"]) - Z) ** 2)
    assert float(task.exact_loss(params, hyper)) == pytest.approx(expected, rel=1e-5)
    assert float(task.loss(params, jax.random.key(0), hyper)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss", ["ce", "ce-rows"])
def test_offset_cross_entropy_is_a_kl_divergence_with_zero_at_the_target(loss):
    task = lowrank(d=4, loss=loss, init="random")
    hyper, params = _setup(task, {"rank": 2, "init_scale": 0.5})
    C = np.asarray(hyper["target"], np.float64)
    Z = np.asarray(params["factors"][0] @ params["factors"][1], np.float64)
    if loss == "ce":
        expected = _kl(_softmax(C.ravel()), _softmax(Z.ravel()))
    else:
        expected = np.mean([_kl(_softmax(c), _softmax(z)) for c, z in zip(C, Z)])
    assert float(task.exact_loss(params, hyper)) == pytest.approx(expected, rel=1e-4)
    # Z = C, and Z = C + a constant (per row for ce-rows), are zero-loss solutions.
    shift = np.arange(4.0)[:, None] if loss == "ce-rows" else 3.0
    for solution in (C, C + shift):
        at = {"factors": (jnp.asarray(solution, jnp.float32), jnp.eye(4))}
        assert abs(float(task.exact_loss(at, hyper))) < 1e-5


def test_probability_target_is_validated_and_its_kl_is_exact():
    task = lowrank(d=3, loss="ce-prob")
    P = np.array([[0.2, 0.1, 0.0], [0.1, 0.3, 0.1], [0.0, 0.1, 0.1]])
    hyper, params = _setup(task, {"target": P.tolist(), "init_scale": 0.4})
    Z = np.asarray(params["factors"][0] @ params["factors"][1], np.float64)
    assert float(task.exact_loss(params, hyper)) == pytest.approx(_kl(P, _softmax(Z.ravel())), rel=1e-4)
    generated = task.hyper({"rank": 2})["target"]
    assert generated.min() >= 0 and generated.sum() == pytest.approx(1, abs=1e-5)
    assert np.linalg.matrix_rank(generated.astype(np.float64), tol=1e-6) == 2


@pytest.mark.parametrize("loss", ["mse", "ce", "ce-rows", "ce-prob"])
def test_minibatch_losses_are_unbiased_estimates_of_the_exact_loss(loss):
    task = lowrank(d=6, loss=loss, entries_per_step=64)
    hyper, params = _setup(task, {"rank": 2, "init_scale": 0.6})
    keys = jax.random.split(jax.random.key(1), 4000)
    estimates = jax.vmap(lambda k: task.loss(params, k, hyper))(keys)
    exact = float(task.exact_loss(params, hyper))
    standard_error = float(np.std(estimates) / np.sqrt(len(estimates)))
    assert abs(float(np.mean(estimates)) - exact) < 4 * standard_error + 1e-6


@pytest.mark.parametrize("components", [2, 3, 4])
def test_aligned_balanced_init_starts_every_mode_at_eps_to_the_n(components):
    task = lowrank(d=6, components=components, init="aligned")
    hyper, params = _setup(task, {"singular_values": [3.0, 1.0], "init_scale": 0.2})
    strengths = task.metrics(params, hyper, None)["mode_strength"]
    np.testing.assert_allclose(strengths, 0.2**components, rtol=1e-5)
    np.testing.assert_allclose(task.metrics(params, hyper, None)["alignment"], 1.0, atol=1e-5)


def test_random_init_has_entries_of_standard_deviation_eps():
    task = lowrank(d=60, components=3, width=40)
    hyper, params = _setup(task, {"rank": 1, "init_scale": 0.05})
    assert [f.shape for f in params["factors"]] == [(60, 40), (40, 40), (40, 60)]
    for factor in params["factors"]:
        assert float(jnp.std(factor)) == pytest.approx(0.05, rel=0.05)


@pytest.mark.parametrize("loss", ["mse", "ce", "ce-rows"])
def test_loss_gradients_match_finite_differences(loss):
    task = lowrank(d=4, components=3, loss=loss)
    with jax.enable_x64():
        hyper, params = _setup(task, {"rank": 2, "init_scale": 0.5})
        hyper = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), hyper)
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        check_grads(lambda p: task.exact_loss(p, hyper), (params,), order=2, modes=["rev"],
                    eps=1e-5, atol=1e-6, rtol=1e-5)


def test_task_functions_are_clean_under_jit_with_strict_promotion():
    task = lowrank(d=5, loss="ce-rows", entries_per_step=8)
    hyper = jax.tree.map(jnp.asarray, task.hyper({"rank": 2}))
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        params = jax.jit(task.init)(jax.random.key(0), hyper)
        loss, _ = jax.jit(jax.value_and_grad(task.loss))(params, jax.random.key(1), hyper)
        measured = jax.jit(task.metrics)(params, hyper, jax.random.key(2))
    assert np.isfinite(loss) and measured["mode_strength"].shape == (5,)
    assert measured["overlaps"].shape == (5, 5)  # (learned vectors, target modes)


def test_metrics_on_a_constructed_matrix():
    U, V = np.linalg.qr(np.random.default_rng(0).standard_normal((2, 5, 5)))[0]
    Z = (U[:, :2] * [2.0, 0.5]) @ V[:, :2].T + 0.1 * np.outer(U[:, 4], V[:, 3])
    np.testing.assert_allclose(lowrank_metrics.mode_strengths(Z, U, V), [2, 0.5, 0, 0, 0], atol=1e-5)
    in_target = np.array([True, True, False, False, False])
    assert float(lowrank_metrics.orthogonal_norm(Z, U, V, in_target)) == pytest.approx(0.1, rel=1e-4)
    np.testing.assert_allclose(lowrank_metrics.mode_alignment(Z, U, V)[:2], 1.0, atol=1e-5)
    assert float(lowrank_metrics.mode_alignment(Z, U, V)[3]) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize(
    "build, config, needle",
    [
        (lambda: lowrank(d=10), {"rank": 11}, "rank=11 exceeds d=10"),
        (lambda: lowrank(d=3), {"singular_values": [3, 2, 1, 0.5]}, "rank=4 exceeds d=3"),
        (lambda: lowrank(d=10), {"rank": 2, "init_scale": 0.0}, "init_scale=0.0"),
        (lambda: lowrank(d=10), {"rank": 2, "init_scale": -1e-3}, "init_scale=-0.001"),
        (lambda: lowrank(d=10, loss="hinge"), None, "loss='hinge'"),
        (lambda: lowrank(d=2, loss="ce-prob"), {"target": [[0.5, -0.1], [0.3, 0.3]]},
         "target[0, 1]=-0.1 is negative"),
        (lambda: lowrank(d=2, loss="ce-prob"), {"target": [[0.5, 0.1], [0.3, 0.3]]},
         "target sums to 1.2, not 1"),
        (lambda: lowrank(d=2), {"target": [[1.0, 2.0]]}, "target has shape (1, 2)"),
        (lambda: lowrank(d=4, width=8, init="aligned"), None, "aligned init needs width ≤ d"),
    ],
)
def test_bad_input_is_refused_in_one_line_naming_the_value(build, config, needle):
    with pytest.raises(ConfigError) as error:
        build().hyper(config) if config is not None else build()
    assert needle in str(error.value) and "\n" not in str(error.value)
