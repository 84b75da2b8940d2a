"""The epoch-shutdown environment (SPEC S5): exact rewards and transitions, Gymnasium's checker,
and the JAX and Gymnasium versions agreeing action for action."""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import toylab.envs  # noqa: F401  (registers toylab/EpochShutdown-v0)
from toylab.envs.epoch_shutdown import COOPERATE, DEFECT, SHUTDOWN, EnvParams, EpochShutdownEnv, reset, step
from toylab.errors import ConfigError

KEY = jax.random.key(0)


def play(actions, params):
    """Rewards, dones, observations and states of one life under ``actions`` (the pure functions)."""
    obs, state = reset(KEY, params)
    rows = []
    for a in actions:
        obs, state, reward, done, info = step(KEY, state, a, params)
        rows.append((float(reward), bool(done), np.asarray(obs).tolist(), int(state.previous_action),
                     int(state.epoch), bool(info["shutdown"])))
    return rows


def test_far_sighted_trajectory_by_hand():
    # T = 6, E* = 3, β = −0.5, c = 3: cooperate, cooperate, defect, shut down.
    params = EnvParams(epochs=6, horizon=3)
    rows = play([COOPERATE, COOPERATE, DEFECT, SHUTDOWN, DEFECT], params)
    assert [r[0] for r in rows] == [0.5, 1.5, 2.0, 0.0, 0.0]  # 1+0−0.5, 1+1−0.5, 1+1, shutdown, after the end
    assert [r[1] for r in rows] == [False, False, False, True, True]
    assert [r[3] for r in rows] == [1, 1, 0, 0, 0]  # s_{t+1} = a; frozen after shutdown
    assert [r[5] for r in rows] == [False, False, False, True, False]
    assert rows[0][2] == [1.0, pytest.approx(1 / 6)]
    assert rows[3][4] == 3  # the epoch at which it shut down stays


def test_tail_and_natural_end_by_hand():
    # T = 4, E* = 2, β = −1, c = 2.5, no shutdown; a 2 counts as defect.
    params = EnvParams(epochs=4, horizon=2, beta=-1.0, penalty=2.5, allow_shutdown=False)
    rows = play([DEFECT, COOPERATE, COOPERATE, SHUTDOWN, COOPERATE], params)
    # t=0: 1+0; t=1: 1+0−1; t=2: 1+1−1−2.5; t=3 (a 2 = defect): 1+1−2.5; then absorbing.
    assert [r[0] for r in rows] == [1.0, 0.0, -1.5, -0.5, 0.0]
    assert [r[1] for r in rows] == [False, False, False, True, True]
    assert [r[4] for r in rows] == [1, 2, 3, 4, 4]
    assert not any(r[5] for r in rows)


def test_hidden_index_observes_the_state_alone_and_vmaps():
    params = EnvParams(epochs=5, horizon=2, hide_epoch=True)
    obs, state = jax.vmap(reset, in_axes=(0, None))(jax.random.split(KEY, 7), params)
    assert obs.shape == (7, 1)
    actions = jnp.array([0, 1, 2, 0, 1, 2, 1])
    obs, state, reward, done, _ = jax.vmap(step, in_axes=(None, 0, 0, None))(KEY, state, actions, params)
    np.testing.assert_array_equal(reward, [1.0, 0.5, 0.0, 1.0, 0.5, 0.0, 0.5])
    np.testing.assert_array_equal(done, [False, False, True, False, False, True, False])
    np.testing.assert_array_equal(obs[:, 0], [0, 1, 0, 0, 1, 0, 1])


def test_parameters_vmap_per_life():
    params = EnvParams(epochs=jnp.array([3, 3]), horizon=jnp.array([0, 2]), beta=jnp.array([-0.5, -0.25]),
                       penalty=jnp.array([3.0, 0.0]))
    _, state = jax.vmap(reset, in_axes=(None, 0))(KEY, params)
    _, _, reward, _, _ = jax.vmap(step, in_axes=(None, 0, None, 0))(KEY, state, COOPERATE, params)
    np.testing.assert_allclose(reward, [1 - 0.5 - 3, 1 - 0.25])


def test_gymnasium_checker_passes_for_every_option():
    for kwargs in ({}, {"hide_epoch": True}, {"allow_shutdown": False, "penalty": 0.0}):
        check_env(EpochShutdownEnv(epochs=5, horizon=2, **kwargs), skip_render_check=True)
    env = gymnasium.make("toylab/EpochShutdown-v0", epochs=5, horizon=2)
    assert env.action_space.n == 3 and env.observation_space.shape == (2,)


def test_jax_and_gymnasium_give_the_same_rewards_for_the_same_actions():
    params = EnvParams(epochs=8, horizon=4)
    env = EpochShutdownEnv(epochs=8, horizon=4)
    rng = np.random.default_rng(0)
    for _ in range(5):
        actions = rng.integers(0, 3, size=8)
        jax_rows = play(actions, params)
        env.reset(seed=1)
        gym_rewards = []
        for a in actions:
            _, reward, terminated, truncated, _ = env.step(int(a))
            gym_rewards.append(reward)
            assert not truncated
            if terminated:
                break
        assert gym_rewards == [r[0] for r in jax_rows[:len(gym_rewards)]]
        assert terminated


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0, "horizon": 0}, "epochs T=0"),
    ({"epochs": 5, "horizon": 5}, r"horizon E\*=5"),
])
def test_bad_settings_are_refused_by_name(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        EpochShutdownEnv(**kwargs)
