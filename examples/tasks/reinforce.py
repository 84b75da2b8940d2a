"""A worked task: REINFORCE on a corridor written in JAX, tuned by population-based training.

The environment is two pure functions with Gymnasium's names, so it vectorises like any model:
``reset(key) -> (obs, state)`` and ``step(state, action) -> (obs, state, reward, terminated,
truncated)``. The agent starts at cell 0 of a corridor of ``length`` cells and moves left or
right; entering the last cell pays 1 and ends the episode; an episode is truncated after
``horizon`` moves. With discount γ the best return is ``γ^(length−2)`` (``length − 1`` moves
right, the reward arriving on the last).

The policy is tabular: logits ``θ[s, a]``. The loss rolls it out (the task has no ``sample``:
a step's "batch" is its key) and is REINFORCE's surrogate (Williams 1992) with a baseline::

    L(θ) = −(1/E) Σ_episodes Σ_t γ^t (G_t − b) log π_θ(a_t | s_t),    G_t = Σ_{k≥t} γ^(k−t) r_k

whose gradient is an unbiased estimate of −∇ E[G_0]. The baseline ``b`` is task state: a
running mean of the sampled returns, carried through the compiled loop and updated each step.

Metrics are exact, not sampled: ``value`` is the expected discounted return of the current
stochastic policy from cell 0 over the horizon, by ``horizon`` rounds of policy evaluation
``v ← r_π + γ P_π v`` on the corridor's transition matrix; :func:`optimal_value` is the same
recursion with a max over actions (value iteration), the oracle a trained policy is held to.

Population-based training (Jaderberg et al. 2017) is :func:`population_based_training`, a hook
for :func:`toylab.train` that every evaluation copies the best members over the worst and
perturbs their learning rate. The task's optimizer reads each member's rate from its ``hyper``,
so changing ``hyper["lr"]`` between segments is all it takes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from toylab.errors import ConfigError
from toylab.tasks import Task

LEFT, RIGHT = 0, 1


class CorridorState(NamedTuple):
    position: jax.Array  # int32 cell
    t: jax.Array  # int32 moves made


def corridor(length: int, horizon: int):
    """The environment's ``reset`` and ``step`` for a corridor of ``length`` cells."""
    goal = length - 1

    def reset(key: jax.Array) -> tuple[jax.Array, CorridorState]:
        del key  # the start is fixed
        state = CorridorState(jnp.int32(0), jnp.int32(0))
        return state.position, state

    def step(state: CorridorState, action: jax.Array):
        position = jnp.clip(state.position + 2 * action - 1, 0, goal).astype(jnp.int32)
        t = state.t + 1
        terminated = position == goal
        reward = terminated.astype(jnp.float32)
        return position, CorridorState(position, t), reward, terminated, t >= horizon

    return reset, step


def transition_matrices(length: int) -> tuple[np.ndarray, np.ndarray]:
    """``P[a, s, s']`` and expected reward ``R[a, s]``; the goal cell is absorbing, pays 0."""
    goal = length - 1
    P, R = np.zeros((2, length, length), np.float32), np.zeros((2, length), np.float32)
    for s in range(length):
        for a, move in ((LEFT, -1), (RIGHT, 1)):
            s_next = s if s == goal else min(max(s + move, 0), goal)
            P[a, s, s_next] = 1.0
            R[a, s] = float(s != goal and s_next == goal)
    return P, R


def optimal_value(length: int, horizon: int, gamma: float) -> float:
    """Value iteration over ``horizon`` moves from cell 0: the best expected return."""
    P, R = transition_matrices(length)
    v = np.zeros(length)
    for _ in range(horizon):
        v = np.max(R + gamma * P @ v, axis=0)
    return float(v[0])


def reinforce(length: int = 5, horizon: int = 12, gamma: float = 0.9, episodes: int = 16,
              baseline_decay: float = 0.9) -> Task:
    """Tabular REINFORCE on the corridor; per-instance config ``{"lr": ...}`` (see the hook)."""
    if length < 2 or horizon < 1 or not 0 < gamma <= 1 or episodes < 1:
        raise ConfigError(f"corridor length={length}, horizon={horizon}, gamma={gamma}, "
                          f"episodes={episodes}: need length ≥ 2, horizon ≥ 1, 0 < gamma ≤ 1")
    reset, step = corridor(length, horizon)
    P, R = transition_matrices(length)
    discounts = gamma ** np.arange(horizon, dtype=np.float32)  # (horizon,)

    def hyper(config: Mapping[str, Any]) -> dict[str, np.ndarray]:
        lr = float(config.get("lr", 0.1))
        if not lr > 0:
            raise ConfigError(f"lr={lr!r}: a learning rate must be > 0")
        return {"lr": np.float32(lr)}

    def init(key, hyper):
        del key, hyper  # uniform policy
        return {"logits": jnp.zeros((length, 2))}

    def episode(logits, uniforms):
        """One rollout: per move, log π(a|s), the reward, and whether the episode was running.

        One uniform per move picks the action (right when u < π(right|s)): cheaper to draw and
        to compile than a categorical draw with a key split per move.
        """
        _, state = reset(None)

        def move(carry, u):
            state, running = carry
            log_pi = jax.nn.log_softmax(logits[state.position])  # (2,)
            action = (u < jnp.exp(log_pi[RIGHT])).astype(jnp.int32)
            _, state, reward, terminated, truncated = step(state, action)
            return (state, running & ~terminated & ~truncated), (log_pi[action], reward * running, running)

        _, (log_probs, rewards, running) = jax.lax.scan(move, (state, jnp.bool_(True)), uniforms)
        return log_probs, rewards, running

    def loss(params, key, hyper, baseline):
        del hyper
        uniforms = jax.random.uniform(key, (episodes, horizon))
        log_probs, rewards, running = jax.vmap(episode, in_axes=(None, 0))(
            params["logits"], uniforms)  # each (episodes, horizon)
        # G_t = Σ_{k≥t} γ^(k−t) r_k, by a reverse cumulative sum of discounted rewards.
        to_go = jnp.cumsum((rewards * discounts)[:, ::-1], axis=1)[:, ::-1] / discounts
        advantage = jax.lax.stop_gradient((to_go - baseline) * discounts * running)
        surrogate = -jnp.mean(jnp.sum(advantage * log_probs, axis=1))
        sampled_return = jnp.mean(to_go[:, 0])
        new_baseline = baseline_decay * baseline + (1 - baseline_decay) * sampled_return
        return surrogate, {"return": sampled_return}, new_baseline

    def metrics(params, hyper, key):
        del hyper, key  # exact: no sampling
        pi = jax.nn.softmax(params["logits"], axis=-1)  # (length, 2)
        P_pi = jnp.einsum("sa,ast->st", pi, P)
        r_pi = jnp.einsum("sa,as->s", pi, R)
        v = jax.lax.fori_loop(0, horizon, lambda _, v: r_pi + gamma * P_pi @ v, jnp.zeros(length))
        return {"value": v[0], "p_right_at_start": pi[0, RIGHT]}

    return Task(
        name="reinforce_corridor",
        spec={"length": length, "horizon": horizon, "gamma": gamma, "episodes": episodes,
              "baseline_decay": baseline_decay},
        hyper=hyper, init=init, sample=None, loss=loss,
        # Per move: a softmax over 2 logits and a draw (~10 FLOPs), ×3 for the backward pass.
        flops_per_step=lambda batch_size: 3.0 * 10.0 * horizon * episodes,
        metrics=metrics,
        init_state=lambda key, hyper: jnp.float32(0.0),
        # Each member's own rate, read from its hyper: the hook below may change it.
        optimizer=lambda config, hyper: optax.adam(hyper["lr"]),
    )


def population_based_training(metric: str = "value", fraction: float = 0.25,
                              perturb: tuple[float, float] = (0.8, 1.25)):
    """A :func:`toylab.train` hook: truncation selection, then a perturbed learning rate.

    At every evaluation after the first, the ``fraction`` of members with the lowest
    ``metric`` take the weights, optimizer and task state of a random member of the top
    ``fraction`` ("exploit"), and that member's learning rate times a random factor from
    ``perturb`` ("explore"). Each member's rate lives in ``hyper["lr"]``, where the task's
    optimizer reads it.
    """

    def hook(population):
        if population.step == 0:  # at init every member scores the same: nothing to select
            return None
        score = np.asarray(population.evaluation.raw[metric])
        order = np.argsort(score, kind="stable")
        k = max(1, int(len(score) * fraction))
        worst, best = order[:k], order[-k:]
        key_pick, key_perturb = jax.random.split(population.key)
        donors = np.asarray(jax.random.choice(key_pick, best, (k,)))
        copy = lambda leaf: jnp.asarray(leaf).at[worst].set(jnp.asarray(leaf)[donors])  # noqa: E731
        params, opt_state, state = jax.tree.map(
            copy, (population.params, population.opt_state, population.state))
        lr = np.array(population.hyper["lr"])
        lr[worst] = lr[donors] * np.asarray(jax.random.choice(key_perturb, np.asarray(perturb, lr.dtype), (k,)))
        return dataclasses.replace(population, params=params, opt_state=opt_state, state=state,
                                   hyper={**population.hyper, "lr": lr})

    return hook
