"""Environment steps per second: the epoch-shutdown env's pure JAX functions under ``jax.vmap``
in one compiled loop, against a plain Python loop over its Gymnasium class.

Command::

    JAX_PLATFORMS=cpu PYTHONPATH=src python benchmarks/bench_env.py [--lives 4096] [--epochs 1000] [--rounds 3]

Both sides play random actions (defect, cooperate, shut down) in lives of the default
environment (T = 20, E* = 10), starting a new life wherever one ended, in this process,
alternating rounds; each figure is the median of its rounds.

- JAX: ``reset``/``step`` vmapped over ``--lives`` lives inside one ``lax.fori_loop`` of
  ``--epochs`` steps, compiled once (compile time reported apart, excluded from the rate);
- Gymnasium: ``gymnasium.make("toylab/EpochShutdown-v0")`` stepped one action at a time from
  Python (each ``step`` calls the same compiled JAX function), the way a Gymnasium user would.

Measured on 2 shared CPU cores (README): see the last lines this prints.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

import toylab.envs  # noqa: F401  (registers toylab/EpochShutdown-v0)
from toylab.envs.epoch_shutdown import EnvParams, reset, step


def jax_runner(lives: int, epochs: int):
    params = EnvParams()

    @jax.jit
    def run(key):
        _, state = jax.vmap(reset, in_axes=(0, None))(jax.random.split(key, lives), params)
        fresh = state

        def epoch(t, carry):
            state, total = carry
            action = jax.random.randint(jax.random.fold_in(key, t), (lives,), 0, 3)
            _, state, reward, done, _ = jax.vmap(step, in_axes=(None, 0, 0, None))(None, state, action, params)
            state = jax.tree.map(lambda new, old: jnp.where(done, new, old), fresh, state)
            return state, total + reward.sum()

        return jax.lax.fori_loop(0, epochs, epoch, (state, jnp.float32(0)))[1]

    tic = time.perf_counter()
    run(jax.random.key(0)).block_until_ready()
    compile_seconds = time.perf_counter() - tic

    def rate(round_: int) -> float:
        tic = time.perf_counter()
        run(jax.random.key(round_ + 1)).block_until_ready()
        return lives * epochs / (time.perf_counter() - tic)

    return rate, compile_seconds


def gymnasium_rate(steps: int, round_: int) -> float:
    env = gymnasium.make("toylab/EpochShutdown-v0")
    rng = np.random.default_rng(round_)
    env.reset(seed=round_)
    env.step(0)  # compile outside the timing
    env.reset(seed=round_)
    tic = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(0, 3)))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lives", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--gym-steps", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; jax {jax.__version__} ({jax.default_backend()}); "
          f"gymnasium {gymnasium.__version__}", flush=True)
    jax_rate, compile_seconds = jax_runner(args.lives, args.epochs)
    ours, theirs = [], []
    for round_ in range(args.rounds):
        ours.append(jax_rate(round_))
        theirs.append(gymnasium_rate(args.gym_steps, round_))
        print(f"round {round_ + 1}: JAX vmap {ours[-1]:12.0f} env-steps/s, Gymnasium loop {theirs[-1]:9.0f} env-steps/s",
              flush=True)
    print(f"\nepoch-shutdown env, random actions, {args.lives} lives × {args.epochs} epochs per JAX round")
    print(f"JAX (vmap, compiled loop): {statistics.median(ours):12.0f} env-steps/s (compile {compile_seconds:.1f} s)")
    print(f"Gymnasium (Python loop):   {statistics.median(theirs):12.0f} env-steps/s")
    print(f"ratio: {statistics.median(ours) / statistics.median(theirs):.0f}×")


if __name__ == "__main__":
    main()
