"""toylab: train thousands of toy models at once, measure what they learned, reproduce papers.

The public API in one place::

    from toylab import Task, TrainConfig, metrics, superposition, train
"""

from toylab import metrics
from toylab.errors import ConfigError
from toylab.tasks import Task, superposition
from toylab.train import Evaluation, TrainConfig, TrainResult, train

__version__ = "0.1.0"

__all__ = ["ConfigError", "Evaluation", "Task", "TrainConfig", "TrainResult", "metrics",
           "superposition", "train"]
