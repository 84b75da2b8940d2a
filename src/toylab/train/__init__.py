"""The trainer: batches of task instances, compiled steps, evaluations on a compute schedule."""

from toylab.train.config import TrainConfig
from toylab.train.gradient_flow import gradient_flow, gradient_flow_losses
from toylab.train.optim import learning_rate_schedule, make_optimizer
from toylab.train.schedule import EvalPoint, next_evaluation, planned_evaluations
from toylab.train.trainer import (
    Evaluation, Instance, Population, TrainResult, batch_shapes, evaluation_shapes, initial_params,
    parameter_shapes, train,
)

__all__ = [
    "TrainConfig", "train", "TrainResult", "Evaluation", "Instance", "Population", "initial_params",
    "evaluation_shapes", "parameter_shapes", "batch_shapes",
    "make_optimizer", "learning_rate_schedule", "EvalPoint", "next_evaluation",
    "planned_evaluations", "gradient_flow", "gradient_flow_losses",
]
