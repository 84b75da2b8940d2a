"""The trainer: batches of task instances, compiled steps, evaluations on a compute schedule."""

import sys
import types

from toylab.train.config import TrainConfig
from toylab.train.gradient_flow import gradient_flow, gradient_flow_losses
from toylab.train.optim import learning_rate_schedule, make_optimizer
from toylab.train.schedule import EvalPoint, next_evaluation, planned_evaluations
from toylab.train.trainer import (
    MAX_SEED, Evaluation, Instance, Population, TrainResult, batch_shapes, evaluation_shapes, initial_params,
    memory_needed, parameter_shapes, train,
)

__all__ = [
    "TrainConfig", "train", "TrainResult", "Evaluation", "Instance", "Population", "initial_params",
    "evaluation_shapes", "parameter_shapes", "batch_shapes", "memory_needed", "MAX_SEED",
    "make_optimizer", "learning_rate_schedule", "EvalPoint", "next_evaluation",
    "planned_evaluations", "gradient_flow", "gradient_flow_losses",
]


class _TrainPackage(types.ModuleType):
    """This package, callable as :func:`train`.

    ``toylab.train`` names both the function (the public API: ``from toylab import train``) and
    this package. Importing the package binds the package to that name in ``toylab``, so after
    ``from toylab import TrainConfig`` (or any import of ``toylab.train``) ``from toylab import
    train`` gives the package; calling it must still train.
    """

    def __call__(self, *args, **kwargs):
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _TrainPackage
