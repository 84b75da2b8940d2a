"""toylab: train thousands of toy models at once, measure what they learned, reproduce papers.

The public API in one place::

    from toylab import Task, TrainConfig, metrics, superposition, train
    toylab.load(store)        # a sweep store (toylab sweep) as pandas DataFrames
    toylab.load(store).train_result()   # ... or as one TrainResult
    toylab.sae.fit(activations, d_sae=16, l1_coefficient=0.1)   # SAEs on your activations
"""

import importlib

from toylab._xla import prefer_eigen_dots

__version__ = "0.1.0"

__all__ = ["ConfigError", "Evaluation", "Population", "Task", "TrainConfig", "TrainResult", "load",
           "metrics", "sae", "superposition", "train"]

# Where each public name lives. They load on first use, not with `import toylab`: these modules
# import JAX (and load: pandas), which costs seconds that `toylab --help` or a mistyped flag
# should not pay.
# ConfigError too: toylab.errors imports pydantic, a few tenths of a second before `python -m toylab`
# reaches the code that answers Ctrl-C (toylab.__main__).
_LAZY = {"ConfigError": ("toylab.errors", "ConfigError"),
         "metrics": ("toylab.metrics", None), "sae": ("toylab.sae", None), "Task": ("toylab.tasks", "Task"),
         "superposition": ("toylab.tasks", "superposition"), "Evaluation": ("toylab.train", "Evaluation"),
         "TrainConfig": ("toylab.train", "TrainConfig"), "TrainResult": ("toylab.train", "TrainResult"),
         "train": ("toylab.train", "train"), "Population": ("toylab.train", "Population"),
         "load": ("toylab.sweeps", "load")}


# Before anything imports JAX: XLA reads its flags once, when its first backend starts.
prefer_eigen_dots()


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'toylab' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = importlib.import_module(module)
    return value if attribute is None else getattr(value, attribute)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
