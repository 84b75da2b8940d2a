"""toylab: train thousands of toy models at once, measure what they learned, reproduce papers.

The public API in one place::

    from toylab import Task, TrainConfig, metrics, superposition, train
    toylab.load(store)        # a sweep store (toylab sweep) as pandas DataFrames
"""

from toylab import metrics
from toylab.errors import ConfigError
from toylab.tasks import Task, superposition
from toylab.train import Evaluation, TrainConfig, TrainResult, train

__version__ = "0.1.0"

__all__ = ["ConfigError", "Evaluation", "Task", "TrainConfig", "TrainResult", "load", "metrics",
           "superposition", "train"]


def __getattr__(name: str):
    # toylab.load reads a sweep store with pandas: imported on first use, not with toylab.
    if name == "load":
        from toylab.store import load

        return load
    raise AttributeError(f"module 'toylab' has no attribute {name!r}")
