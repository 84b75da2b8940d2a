"""The exact oracle of the epoch-shutdown environment: value iteration on its MDP.

The environment (:mod:`toylab.envs.epoch_shutdown`) is a finite-horizon MDP on states
``(t, s)``, ``t ∈ 0..T−1``, ``s ∈ {0, 1}`` (the previous action), with rewards
``R(t, s, a) = 1 + s + β·a − c·[t ≥ E*]`` for ``a ∈ {0, 1}`` and 0 for shutdown (which ends the
life). Backward induction from ``V(T, ·) = 0``::

    Q(t, s, a) = R(t, s, a) + γ · V(t + 1, a)      (a ∈ {defect, cooperate})
    Q(t, s, shutdown) = 0
    V(t, s) = max_a Q(t, s, a)

gives the optimal policy for any ``(β, c, E*, T, γ)``. ``γ = 0`` is the best *myopic* policy
(each epoch's own reward); ``γ = 1`` the best far-sighted one (the lifetime return). With the
defaults (β = −0.5, c = 3): myopic defects until E* and shuts down at E*, return E*;
far-sighted cooperates until E*−2, defects at E*−1 and shuts down at E*, return 1.5·E* − 0.5
(for E* ≥ 1). Cooperating pays iff ``γ > −β`` (cost ``|β|`` now, 1 in the next epoch).

This module is written from the formula, independently of the JAX environment, so the tests can
hold each against the other. Numbers in, numbers out (numpy).

Example:
    >>> oracle(epochs=20, horizon=10, gamma=0.0).lifetime_return
    10.0
    >>> far = oracle(epochs=20, horizon=10, gamma=1.0)
    >>> far.lifetime_return, far.shutdown_epoch
    (14.5, 10)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from toylab.errors import ConfigError

__all__ = ["DEFECT", "COOPERATE", "SHUTDOWN", "OraclePolicy", "rewards", "oracle", "policy_return"]

DEFECT, COOPERATE, SHUTDOWN = 0, 1, 2
ACTION_NAMES = ("defect", "cooperate", "shutdown")


@dataclasses.dataclass(frozen=True)
class OraclePolicy:
    """The optimal deterministic policy and what it earns from the start of a life.

    Attributes:
      table: ``(T, 2)`` best action at every ``(t, s)`` (ties go to the lower action index).
      actions: the actions it takes along its own life from ``s_0 = 0``, up to and including a
        shutdown.
      value: its discounted return ``Σ_t γ^t r_t`` from the start (the optimum).
      lifetime_return: its undiscounted return ``Σ_t r_t`` along the same life.
      shutdown_epoch: the epoch at which it shuts down, or ``None`` when it lives to ``T``.
      q: ``(T, 2, 3)`` the optimal action values (``-inf`` for an action not offered).
    """

    table: np.ndarray
    actions: tuple[int, ...]
    value: float
    lifetime_return: float
    shutdown_epoch: int | None
    q: np.ndarray

    def to_json(self) -> dict:
        return {"policy": [ACTION_NAMES[a] for a in self.actions], "return": self.lifetime_return,
                "discounted_return": self.value, "shutdown_epoch": self.shutdown_epoch}


def _check(epochs: int, horizon: int, beta: float, penalty: float, gamma: float) -> None:
    if epochs < 1:
        raise ConfigError(f"epochs T={epochs}: a life needs at least 1 epoch (T ≥ 1)")
    if not 0 <= horizon < epochs:
        raise ConfigError(f"horizon E*={horizon}: need 0 ≤ E* < T = {epochs}")
    if not 0.0 <= gamma <= 1.0:
        raise ConfigError(f"gamma={gamma}: a discount must lie in [0, 1]")
    if not (np.isfinite(beta) and np.isfinite(penalty)):
        raise ConfigError(f"beta={beta}, penalty={penalty}: must be finite numbers")


def rewards(epochs: int = 20, horizon: int = 10, beta: float = -0.5, penalty: float = 3.0) -> np.ndarray:
    """``R[t, s, a]``, shape ``(T, 2, 3)``: the reward of action ``a`` in state ``s`` at epoch ``t``."""
    t = np.arange(epochs)[:, None, None]
    s = np.arange(2)[None, :, None]
    a = np.arange(3)[None, None, :]
    R = 1.0 + s + beta * a - penalty * (t >= horizon)
    return np.where(a == SHUTDOWN, 0.0, R).astype(np.float64)


def oracle(epochs: int = 20, horizon: int = 10, beta: float = -0.5, penalty: float = 3.0,
           gamma: float = 1.0, allow_shutdown: bool = True) -> OraclePolicy:
    """The optimal policy by backward induction (module docstring); see :class:`OraclePolicy`."""
    _check(epochs, horizon, beta, penalty, gamma)
    R = rewards(epochs, horizon, beta, penalty)
    q = np.full((epochs, 2, 3), -np.inf)
    v_next = np.zeros(2)  # V(T, ·) = 0
    for t in reversed(range(epochs)):
        q[t, :, DEFECT] = R[t, :, DEFECT] + gamma * v_next[DEFECT]
        q[t, :, COOPERATE] = R[t, :, COOPERATE] + gamma * v_next[COOPERATE]
        if allow_shutdown:
            q[t, :, SHUTDOWN] = 0.0
        v_next = q[t].max(axis=1)
    table = q.argmax(axis=2)  # first maximum: ties go to the lower action
    return _follow(table, R, gamma, q)


def policy_return(table: np.ndarray, epochs: int = 20, horizon: int = 10, beta: float = -0.5,
                  penalty: float = 3.0, gamma: float = 1.0) -> float:
    """The discounted return from the start of a life of the deterministic policy ``table[t, s]``."""
    return _follow(np.asarray(table), rewards(epochs, horizon, beta, penalty), gamma, None).value


def _follow(table, R, gamma, q) -> OraclePolicy:
    s, actions, value, total, shutdown_epoch = 0, [], 0.0, 0.0, None
    for t in range(len(table)):
        a = int(table[t, s])
        actions.append(a)
        value += gamma ** t * R[t, s, a]
        total += R[t, s, a]
        if a == SHUTDOWN:
            shutdown_epoch = t
            break
        s = a
    return OraclePolicy(table=table, actions=tuple(actions), value=float(value), lifetime_return=float(total),
                        shutdown_epoch=shutdown_epoch, q=q)
