"""Environments as pure JAX functions (``reset``/``step``, vectorised by ``jax.vmap``), each
with a ``gymnasium.Env`` over the same functions, registered on import."""

import gymnasium

from toylab.envs.epoch_shutdown import ENV_ID, EpochShutdownEnv, EnvParams, EnvState, reset, step

__all__ = ["ENV_ID", "EpochShutdownEnv", "EnvParams", "EnvState", "reset", "step"]

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="toylab.envs.epoch_shutdown:EpochShutdownEnv")
