"""Tasks: models, data and losses, each written for one instance (see :class:`Task`)."""

from toylab.tasks.base import Task
from toylab.tasks.sae import sae_on_activations, sae_on_models
from toylab.tasks.superposition import superposition

__all__ = ["Task", "superposition", "sae_on_activations", "sae_on_models"]
