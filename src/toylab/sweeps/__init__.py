"""Sweeps: grids of configs × seeds, trained in vectorized chunks into a resumable store.

Example:
    >>> from toylab import sweeps
    >>> spec = sweeps.SweepSpec(task="superposition", task_params={"n_features": 5, "n_hidden": 2},
    ...                         axes={"feature_probability": [0.1, 1.0]}, seeds=2,
    ...                         train={"steps": 50, "batch_size": 64, "elicit_steps": 0})
    >>> summary = sweeps.run(spec, store=tmp / "tms.sqlite")     # doctest: +SKIP
    >>> sweeps.load(tmp / "tms.sqlite").best()                   # doctest: +SKIP

Modules: ``spec`` (the validated spec and its grid), ``registry`` (which task: names, entry
points, modules, files), ``chunks`` (packing runs into vectorized calls), ``worker``
(training one chunk), ``backends`` (local, Ray), ``runner`` (the coordinator: plan, resume,
write), ``load`` (a store back as tables, a task and a ``TrainResult``; ``toylab.load``).
"""

from toylab.sweeps.load import SweepResults, load
from toylab.sweeps.registry import register_task, registered_tasks
from toylab.sweeps.runner import SweepSummary, run
from toylab.sweeps.spec import Selection, SweepSpec, load_spec

__all__ = ["SweepSpec", "Selection", "load_spec", "run", "SweepSummary", "load", "SweepResults",
           "register_task", "registered_tasks"]
