"""The value-iteration oracle of the epoch-shutdown MDP: the issue's closed forms, a brute-force
enumeration of every deterministic policy on T = 4, and its reward table against the JAX env."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toylab.envs.epoch_shutdown import EnvParams, EnvState, reset, step
from toylab.errors import ConfigError
from toylab.theory.myopia import COOPERATE, DEFECT, SHUTDOWN, oracle, policy_return, rewards


@pytest.mark.parametrize("epochs, horizon", [(20, 10), (12, 5), (30, 2), (6, 5)])
def test_closed_forms_myopic_and_far_sighted(epochs, horizon):
    myopic = oracle(epochs, horizon, gamma=0.0)
    assert myopic.actions == (DEFECT,) * horizon + (SHUTDOWN,)
    assert (myopic.lifetime_return, myopic.shutdown_epoch) == (horizon, horizon)
    for gamma in (1.0, 0.99, 0.9):
        far = oracle(epochs, horizon, gamma=gamma)
        assert far.actions == (COOPERATE,) * (horizon - 1) + (DEFECT, SHUTDOWN)
        assert far.lifetime_return == 1.5 * horizon - 0.5
        assert far.shutdown_epoch == horizon
    # Cooperating pays iff γ > −β: at γ = 0.4 < 0.5 the discounted optimum is the myopic policy.
    assert oracle(epochs, horizon, gamma=0.4).actions == myopic.actions


def test_options_no_shutdown_and_no_tail():
    # Without shutdown the life runs to T and the tail is paid; without the tail nothing shuts down.
    no_shutdown = oracle(6, 3, gamma=0.0, allow_shutdown=False)
    assert no_shutdown.shutdown_epoch is None and no_shutdown.actions == (DEFECT,) * 6
    assert no_shutdown.lifetime_return == 3 * 1 + 3 * (1 - 3)
    no_tail = oracle(6, 3, penalty=0.0, gamma=1.0)
    assert no_tail.shutdown_epoch is None
    assert no_tail.actions == (COOPERATE,) * 5 + (DEFECT,)
    assert no_tail.lifetime_return == 0.5 + 4 * 1.5 + 2


@jax.jit
def _returns_of_every_table(tables, gamma, params):
    """Discounted return of each deterministic policy ``table[t, s]``, played in the JAX env."""
    def life(table):
        _, state = reset(None, params)

        def epoch(carry, t):
            state, total = carry
            action = table[t, state.previous_action]
            _, state, reward, _, _ = step(None, state, action, params)
            return (state, total + gamma ** t * reward), None

        (_, total), _ = jax.lax.scan(epoch, (state, 0.0), jnp.arange(table.shape[0]))
        return total

    return jax.vmap(life)(tables)


@pytest.mark.parametrize("horizon, beta, penalty", [(2, -0.5, 3.0), (1, -0.25, 1.2), (3, -0.7, 0.0)])
def test_brute_force_over_every_policy_on_four_epochs(horizon, beta, penalty):
    epochs = 4
    tables = np.array(list(itertools.product(range(3), repeat=2 * epochs)), np.int32).reshape(-1, epochs, 2)
    assert len(tables) == 3 ** 8
    params = EnvParams(epochs=epochs, horizon=horizon, beta=beta, penalty=penalty)
    for gamma in (0.0, 0.5, 0.9, 1.0):
        returns = np.asarray(_returns_of_every_table(jnp.asarray(tables), jnp.float32(gamma), params))
        best = oracle(epochs, horizon, beta, penalty, gamma)
        assert best.value == pytest.approx(returns.max(), abs=1e-5)
        # The oracle's own table, played in the JAX env, earns what the oracle says.
        assert policy_return(best.table, epochs, horizon, beta, penalty, gamma) == pytest.approx(best.value)


def test_reward_table_matches_the_jax_environment_everywhere():
    epochs, horizon, beta, penalty = 7, 4, -0.3, 2.0
    R = rewards(epochs, horizon, beta, penalty)
    params = EnvParams(epochs=epochs, horizon=horizon, beta=beta, penalty=penalty)
    for t, s, a in itertools.product(range(epochs), range(2), range(3)):
        state = EnvState(jnp.int32(s), jnp.int32(t), jnp.bool_(False))
        _, _, reward, _, _ = step(None, state, a, params)
        assert float(reward) == pytest.approx(R[t, s, a])


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0, "horizon": 0}, "epochs T=0"), ({"epochs": 4, "horizon": 4}, r"E\*=4"),
    ({"gamma": 1.5}, "gamma=1.5"), ({"gamma": -0.1}, "gamma=-0.1"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        oracle(**kwargs)
