"""toylab: train thousands of toy models at once, measure what they learned, reproduce papers.

The public API in one place::

    from toylab import Task, TrainConfig, metrics, superposition, train
    toylab.load(store)        # a sweep store (toylab sweep) as pandas DataFrames
    toylab.load(store).train_result()   # ... or as one TrainResult
"""

from toylab import metrics
from toylab.errors import ConfigError
from toylab.tasks import Task, superposition
from toylab.train import Evaluation, TrainConfig, TrainResult, train

__version__ = "0.1.0"

__all__ = ["ConfigError", "Evaluation", "Task", "TrainConfig", "TrainResult", "load", "metrics",
           "superposition", "train"]


def __getattr__(name: str):
    # toylab.load needs the sweep machinery (and pandas when called): imported on first use,
    # so that `import toylab` stays as fast as the trainer alone.
    if name == "load":
        from toylab.sweeps import load

        return load
    raise AttributeError(f"module 'toylab' has no attribute {name!r}")
