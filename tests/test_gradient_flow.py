"""Gradient flow against closed forms (a quadratic, Saxe's S-curves) and against gradient descent."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toylab.errors import ConfigError
from toylab.theory import saxe
from toylab.train.gradient_flow import gradient_flow, gradient_flow_losses

D = 6  # the target and every component matrix are D × D
SINGULAR_VALUES = np.array([3.0, 2.0, 1.0, 0.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def target():
    """``C = U diag(3, 2, 1, 0, 0, 0) Vᵀ`` for random orthogonal ``U``, ``V`` (float64)."""
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.normal(size=(D, D)))
    V, _ = np.linalg.qr(rng.normal(size=(D, D)))
    return U, V, U @ np.diag(SINGULAR_VALUES) @ V.T


def mode_strengths(Z, U, V):
    """``u_k = u_kᵀ Z v_k`` for a stack of products ``Z``: (times, D, D) -> (times, D)."""
    return np.einsum("ik,tij,jk->tk", U, Z, V)


def test_a_quadratic_decays_exponentially():
    k = 2.0
    theta0 = jnp.array([1.0, -0.5, 3.0], dtype=jnp.float32)  # converted to float64 inside
    t = np.linspace(0.0, 5.0, 11)
    path = gradient_flow(lambda theta: 0.5 * k * jnp.sum(theta**2), theta0, t)
    assert path.shape == (11, 3) and path.dtype == np.float64
    exact = np.exp(-k * t)[:, None] * np.asarray(theta0, dtype=np.float64)
    np.testing.assert_allclose(path, exact, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(path[0], np.asarray(theta0, dtype=np.float64))  # t = 0 is θ₀
    losses = gradient_flow_losses(lambda theta: 0.5 * k * jnp.sum(theta**2), theta0, t)
    np.testing.assert_allclose(losses, 0.5 * k * np.sum(exact**2, axis=1), rtol=1e-6)


def test_two_component_factorisation_follows_saxe(target):
    U, V, C = target
    eps = 0.01  # balanced and aligned: A = εU, B = εVᵀ, so every mode starts at u₀ = ε²
    t = np.linspace(0.0, 6.0, 31)  # past all three drops (the last at ≈ 4.6)
    params = {"A": eps * U, "B": eps * V.T}
    path = gradient_flow(lambda p: 0.5 * jnp.sum((C - p["A"] @ p["B"]) ** 2), params, t)
    u = mode_strengths(path["A"] @ path["B"], U, V)
    np.testing.assert_allclose(u, saxe.mode_strength(t[:, None], SINGULAR_VALUES, eps**2), rtol=1e-5)


def test_three_component_factorisation_follows_saxe(target):
    U, V, C = target
    eps = 0.1  # A = εU, M = εI, B = εVᵀ: u₀ = ε³
    t = np.linspace(0.0, 12.0, 31)  # past all three drops (the last at ≈ 9.1)
    params = {"A": eps * U, "M": eps * np.eye(D), "B": eps * V.T}
    path = gradient_flow(lambda p: 0.5 * jnp.sum((C - p["A"] @ p["M"] @ p["B"]) ** 2), params, t)
    u = mode_strengths(path["A"] @ path["M"] @ path["B"], U, V)
    np.testing.assert_allclose(u, saxe.mode_strength(t[:, None], SINGULAR_VALUES, eps**3, 3), rtol=1e-5)


def test_gradient_descent_approaches_the_flow_linearly_in_the_learning_rate(target):
    U, V, C = target

    def loss(p):
        return 0.5 * jnp.sum((C - p["A"] @ p["B"]) ** 2)

    params = {"A": 0.01 * U, "B": 0.01 * V.T}
    interval, intervals = 0.3, 20  # compare every 0.3 time units up to t = 6: all three drops
    t = interval * np.arange(intervals + 1)
    flow = gradient_flow(loss, params, t)
    flow_Z = flow["A"] @ flow["B"]
    errors = []
    with jax.enable_x64(True):  # float64, so that the gap measured is the O(η) one alone
        for lr in (1e-2, 3e-3, 1e-3):
            steps = round(interval / lr)  # t = lr × steps

            @jax.jit
            def advance(p, lr=lr, steps=steps):
                def step(_, p):
                    return jax.tree.map(lambda x, g: x - lr * g, p, jax.grad(loss)(p))

                return jax.lax.fori_loop(0, steps, step, p)

            p = jax.tree.map(jnp.asarray, params)
            Z = [p["A"] @ p["B"]]
            for _ in range(intervals):
                p = advance(p)
                Z.append(p["A"] @ p["B"])
            errors.append(np.max(np.linalg.norm(np.asarray(Z) - flow_Z, axis=(1, 2))))
    assert errors[0] > errors[1] > errors[2]
    assert 5 < errors[0] / errors[2] < 20  # first order: 10× smaller η, ~10× smaller gap


def test_a_flow_that_blows_up_names_the_time():
    # θ̇ = θ³ from θ = 1 reaches infinity at t = 1/2.
    with pytest.raises(RuntimeError, match=r"t≈0\.5"):
        gradient_flow(lambda theta: -(theta**4) / 4, 1.0, [0.0, 1.0])


def test_a_non_finite_gradient_names_the_time():
    # L = √θ: the flow θ̇ = −1/(2√θ) from θ = 1 reaches 0 at t = 4/3, where √θ has no gradient.
    with pytest.raises(RuntimeError, match=r"not finite at t=1\.333"):
        gradient_flow(lambda theta: jnp.sqrt(theta), 1.0, [0.0, 2.0])


def test_implicit_methods_get_the_hessian():
    t = np.array([0.0, 1.0, 2.0])
    curvatures = jnp.array([1.0, 100.0])  # stiff: time scales 1 and 0.01
    path = gradient_flow(lambda w: 0.5 * jnp.sum(curvatures * w**2), jnp.ones(2), t, method="Radau")
    np.testing.assert_allclose(path, np.exp(-np.outer(t, curvatures)), atol=1e-7)


def test_repeated_times_repeat_the_state():
    path = gradient_flow(lambda w: 0.5 * w**2, 1.0, [0.0, 0.0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(path, np.exp(-np.array([0.0, 0.0, 0.5, 0.5, 1.0])), rtol=1e-7)


def test_only_zero_time_returns_the_start():
    path = gradient_flow(lambda p: jnp.sum(p["w"] ** 2), {"w": np.ones((2, 2), np.float32)}, [0.0, 0.0])
    assert path["w"].shape == (2, 2, 2) and path["w"].dtype == np.float64
    np.testing.assert_array_equal(path["w"], 1.0)


def test_bad_input_is_a_one_line_config_error():
    def loss(w):
        return jnp.sum(w**2)

    with pytest.raises(ConfigError, match="not sorted"):
        gradient_flow(loss, jnp.ones(2), [1.0, 0.5])
    with pytest.raises(ConfigError, match="t_eval contains -1.0"):
        gradient_flow(loss, jnp.ones(2), [-1.0, 0.5])
    with pytest.raises(ConfigError, match=r"params\['n'\] has dtype int"):
        gradient_flow(loss, {"n": jnp.ones(2, dtype=jnp.int32)}, [1.0])
    with pytest.raises(ConfigError, match="expected a scalar loss"):
        gradient_flow(lambda w: w**2, jnp.ones(2), [1.0])
    with pytest.raises(ConfigError, match="method='Euler'"):
        gradient_flow(loss, jnp.ones(2), [1.0], method="Euler")
    with pytest.raises(ConfigError, match="rtol=0"):
        gradient_flow(loss, jnp.ones(2), [1.0], rtol=0)
