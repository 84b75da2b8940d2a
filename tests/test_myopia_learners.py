"""Learners on the epoch-shutdown environment through the unchanged trainer: each finds the optimum
the oracle names for its discount; the exact measures agree with the oracle; the population hooks
do exactly what they say."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toylab.envs.epoch_shutdown import EnvParams
from toylab.errors import ConfigError
from toylab.tasks.myopia import (
    LearnerState,
    chain_hooks,
    myopia_learner,
    policy_measures,
    population_based_training,
    swap_environments,
)
from toylab.theory.myopia import oracle
from toylab.train import TrainConfig, train

ENV = EnvParams(epochs=8, horizon=4)
CONFIG = TrainConfig(steps=1200, elicit_steps=0, eval_batches=1)


def test_myopic_reinforce_population_defects_and_shuts_down_at_the_horizon():
    result = train(myopia_learner("reinforce", gamma=0.0, env=ENV, lives=32), [{"lr": 0.05}], seeds=8,
                   config=CONFIG, progress=False)
    final = result.final.raw
    assert np.all(final["p_cooperate"] < 0.1), final["p_cooperate"]
    assert np.all(final["p_shutdown_at_horizon"] >= 0.9), final["p_shutdown_at_horizon"]
    # The myopic optimum's return is E* = 4; the far-sighted one's 1.5·4 − 0.5 = 5.5.
    assert np.all(np.abs(final["lifetime_return"] - oracle(8, 4, gamma=0.0).lifetime_return) < 0.1)


def test_far_sighted_ppo_cooperates():
    result = train(myopia_learner("ppo", gamma=0.99, env=ENV, lives=32), [{"lr": 0.05}], seeds=4,
                   config=CONFIG, progress=False)
    final = result.final.raw
    assert np.all(final["p_cooperate"] > 0.5), final["p_cooperate"]
    assert np.mean(final["lifetime_return"]) > 0.9 * oracle(8, 4, gamma=0.99).lifetime_return


def test_exact_measures_of_the_oracle_policies_match_the_oracle():
    for gamma in (0.0, 1.0):
        best = oracle(8, 4, gamma=gamma)
        pi = jax.nn.one_hot(best.table.reshape(-1), 3)  # rows s + 2t, as the learners index them
        measures = policy_measures(pi, ENV)
        assert float(measures["lifetime_return"]) == pytest.approx(best.lifetime_return)
        assert float(measures["mean_shutdown_epoch"]) == pytest.approx(best.shutdown_epoch)
        assert float(measures["p_shutdown_at_horizon"]) == 1.0
        assert float(measures["p_cooperate"]) == (1.0 if gamma else 0.0)
    # The myopic optimum ignores s: as a table over the epoch alone (hide_state) it measures the same.
    myopic = oracle(8, 4, gamma=0.0)
    by_epoch = policy_measures(jax.nn.one_hot(myopic.table[:, 0], 3), ENV, hide_state=True)
    assert float(by_epoch["lifetime_return"]) == myopic.lifetime_return == 4.0
    # One row for everything (state and index hidden) is the same policy at every (t, s).
    blind = policy_measures(jnp.full((1, 3), 1 / 3), dataclasses.replace(ENV, hide_epoch=True), hide_state=True)
    assert float(blind["p_cooperate"]) == pytest.approx(1 / 3)
    assert float(blind["shutdown_distribution"][8]) == pytest.approx((2 / 3) ** 8, rel=1e-5)
    # The uniform policy over three actions: P(reach t) = (2/3)^t, half of the survivors cooperate.
    uniform = policy_measures(jnp.full((16, 3), 1 / 3), ENV)
    assert float(uniform["p_cooperate"]) == pytest.approx(1 / 3)
    np.testing.assert_allclose(uniform["shutdown_distribution"][:8], (2 / 3) ** np.arange(8) / 3, rtol=1e-6)
    assert float(uniform["shutdown_distribution"][8]) == pytest.approx((2 / 3) ** 8)


@dataclasses.dataclass(frozen=True)
class FakeEvaluation:
    raw: dict


@dataclasses.dataclass(frozen=True)
class Members:  # the fields of toylab.train.Population that the hooks read
    step: int
    evaluation: object
    params: dict
    opt_state: tuple
    state: LearnerState
    hyper: dict
    key: jax.Array


def members(n=10, lives=3):
    lives_state = jax.tree.map(lambda x: jnp.broadcast_to(x, (n, lives)),
                               myopia_learner("reinforce", env=ENV, lives=lives).init_state(jax.random.key(0), None).lives)
    lives_state = lives_state._replace(epoch=jnp.arange(n * lives, dtype=jnp.int32).reshape(n, lives))
    state = LearnerState(lives_state, jnp.arange(n * lives, dtype=jnp.float32).reshape(n, lives), jnp.zeros((n, 16)),
                         jnp.arange(n, dtype=jnp.float32), jnp.arange(n, dtype=jnp.float32)[::-1] * 4, jnp.full(n, 2.0))
    return Members(step=10, evaluation=FakeEvaluation({}), params={"logits": jnp.arange(n, dtype=jnp.float32)},
                   opt_state=(jnp.arange(n, dtype=jnp.float32) * 10,), state=state,
                   hyper={"lr": np.full(n, 0.1, np.float32)}, key=jax.random.key(3))


@pytest.mark.parametrize("select, top, bottom", [("last", {8, 9}, {0, 1}), ("lifetime", {0, 1}, {8, 9})])
def test_pbt_copies_top_fifth_over_bottom_fifth_and_perturbs_their_rate(select, top, bottom):
    before = members()
    after = population_based_training(10, select)(before)
    logits = np.asarray(after.params["logits"])
    assert set(logits[sorted(bottom)].astype(int)) <= top  # the bottom 20% took a top member's weights
    np.testing.assert_array_equal(np.asarray(after.opt_state[0])[sorted(bottom)], logits[sorted(bottom)] * 10)
    others = sorted(set(range(10)) - bottom)
    np.testing.assert_array_equal(logits[others], np.arange(10)[others])
    for lr in after.hyper["lr"][sorted(bottom)]:  # 0.1 × 0.8 or 0.1 × 1.2
        assert lr == pytest.approx(0.08) or lr == pytest.approx(0.12)
    np.testing.assert_array_equal(after.hyper["lr"][others], np.float32(0.1))
    assert float(after.state.ended_count.sum()) == 0  # the interval's statistics start again
    np.testing.assert_array_equal(after.state.lives.epoch, before.state.lives.epoch)  # lives stay
    assert population_based_training(10, select)(dataclasses.replace(before, step=5)) is None
    # Two populations of 5: each one's bottom member takes its own top member's weights.
    grouped = np.asarray(population_based_training(10, select, group_size=5)(before).params["logits"])
    low, high = (0, 4) if select == "last" else (4, 0)
    assert (grouped[low], grouped[5 + low]) == (high, 5 + high)


def test_swapping_permutes_each_life_slot_across_members_with_its_return():
    before = members()
    after = swap_environments()(before)
    epoch, returned = np.asarray(after.state.lives.epoch), np.asarray(after.state.life_return)
    np.testing.assert_array_equal(epoch, returned)  # a life carries its return with it
    for slot in range(3):
        assert sorted(epoch[:, slot]) == sorted(np.asarray(before.state.lives.epoch)[:, slot])
    assert not np.array_equal(epoch, before.state.lives.epoch)
    np.testing.assert_array_equal(after.params["logits"], before.params["logits"])
    grouped = np.asarray(swap_environments(group_size=5)(before).state.lives.epoch)
    original = np.asarray(before.state.lives.epoch)
    for block in (slice(0, 5), slice(5, 10)):  # lives stay inside their own population
        for slot in range(3):
            assert sorted(grouped[block, slot]) == sorted(original[block, slot])
    both = chain_hooks(swap_environments(), population_based_training(10, "last"))(before)
    np.testing.assert_array_equal(both.state.lives.epoch, epoch)


@pytest.mark.parametrize("kwargs, message", [
    ({"learner": "sarsa"}, "learner 'sarsa'"), ({"learner": "ppo", "gamma": 1.5}, "gamma=1.5"),
    ({"learner": "reinforce", "gamma": 0.9}, "gamma=0.9: reinforce"),
])
def test_bad_learner_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        myopia_learner(**kwargs)
