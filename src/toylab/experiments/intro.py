"""Reproduce the introduction figure of "Toy Models of Superposition" (Elhage et al. 2022).

Command::

    make demo                       # or: toylab reproduce intro [--seeds K] [--out DIR]

Setting (the paper's §1 figure): n = 5 features squeezed into m = 2 dimensions, importance
I_i = 0.9^i, feature probability p = 20^−linspace(0, 1, 10) (from dense, p = 1, to p = 0.05),
several seeds per probability, the lowest-loss seed kept. AdamW, lr 1e-3, batch 1024, 10,000
steps.

Expected result: dense inputs give the PCA-like solution, the two most important features on
orthogonal axes and the rest dropped; as features get sparser the model packs more of them into
the plane: first antipodal pairs, then, at the sparsest settings, all five features as a
pentagon (D_i ≈ 2/5 each, 2.5 features per dimension).

The 80 runs train as one sweep into the embedded results store (SQLite,
``runs/intro-k<seeds>-s<steps>.sqlite`` unless ``--store`` says otherwise): an interrupted run
resumes where it stopped, and a finished one is read back without training.

Runtime: about a minute on 2 CPU cores (80 instances train side by side).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from toylab import sweeps
from toylab.experiments import tms
from toylab.experiments.runs import created_parents
from toylab.store import default_path
from toylab.store.load import EVALUATION_FIELDS
from toylab.sweeps.worker import leaf_name
from toylab.train import Evaluation, Instance, TrainConfig, TrainResult, parameter_shapes

# The paper's setting; each value is what its figure used.
N_FEATURES = 5  # n
N_HIDDEN = 2  # m
IMPORTANCE = 0.9  # I_i = 0.9^i
FEATURE_PROBABILITY = tuple(float(p) for p in 20.0 ** -np.linspace(0, 1, 10))
SEEDS = 8  # best of 8 per probability: local minima are common at high sparsity
TRAIN = tms.TrainConfig(steps=10_000, batch_size=1024, optimizer="adamw", lr=1e-3)


def sweep_spec(*, seeds: int = SEEDS, seed: int = 0, steps: int = TRAIN.steps) -> sweeps.SweepSpec:
    """The experiment as a :class:`toylab.sweeps.SweepSpec`: probabilities × seeds."""
    return sweeps.SweepSpec(
        task="superposition", task_params={"n_features": N_FEATURES, "n_hidden": N_HIDDEN},
        fixed={"importance": IMPORTANCE}, axes={"feature_probability": list(FEATURE_PROBABILITY)},
        seeds=seeds, seed=seed, train={**TRAIN.model_dump(exclude_unset=True), "steps": steps})


def default_store(*, seeds: int = SEEDS, steps: int = TRAIN.steps, seed: int = 0) -> Path:
    """``runs/intro-k<seeds>-s<steps>[-seed<S>].sqlite``: the same command finds its store again."""
    return default_path("intro", k=seeds, s=steps, seed=seed)


def run(*, seeds: int = SEEDS, seed: int = 0, steps: int = TRAIN.steps, progress: bool | None = None,
        store: str | Path | None = None):
    """Train (or resume, or read back) the introduction experiment in a results store.

    Returns:
      The :class:`toylab.train.TrainResult` of all its runs, as :func:`toylab.experiments.tms.run`
      would return it: the same weights, bit for bit, when the sweep trains in one chunk (the
      80 runs always fit), else up to float rounding. A diverged run keeps its place with NaN
      weights (see :func:`train_result`).
    """
    path = Path(store) if store is not None else default_store(seeds=seeds, steps=steps, seed=seed)
    spec = sweep_spec(seeds=seeds, seed=seed, steps=steps)  # bad values fail before a store exists
    with created_parents(path, f"--store {path}"):
        sweeps.run(spec, store=path, progress=progress)
    return train_result(sweeps.load(path))


def train_result(data: sweeps.SweepResults) -> TrainResult:
    """A finished store as one :class:`toylab.train.TrainResult`, diverged runs included.

    :meth:`toylab.sweeps.SweepResults.train_result` refuses a store with a diverged run (the
    store keeps no weights for it); here such a run stays in its place with NaN weights and
    the evaluations the store recorded for it, NaN from the step it diverged at, so that
    :func:`toylab.experiments.tms.summarize` flags it and reports every other run.

    Raises:
      StoreError: a run failed or is unfinished (rerun to finish it first).
    """
    runs = data.runs.sort_values(["cell", "seed"])
    statuses = set(runs["status"])
    if "diverged" not in statuses or not statuses <= {"done", "diverged"}:
        return data.train_result()  # all done; or failed or unfinished runs, which it refuses
    task = data.task(runs["task_params"].iloc[0])
    ids, statuses = [int(run) for run in runs["run"]], list(runs["status"])
    paths, treedef = jax.tree_util.tree_flatten_with_path(parameter_shapes(task, runs["config"].iloc[0]))

    def weights(path, shape) -> np.ndarray:
        return np.stack([data.weights(run)[leaf_name(path)] if status == "done"
                         else np.full(shape.shape, np.nan, shape.dtype) for run, status in zip(ids, statuses)])

    params = jax.tree_util.tree_unflatten(treedef, [weights(path, shape) for path, shape in paths])
    rows = data.evaluations[data.evaluations["run"].isin(ids)]
    metric_names = [c for c in rows.columns if c not in EVALUATION_FIELDS]
    evaluations = []
    for step, at_step in rows.groupby("step", sort=True):
        by_run = at_step.set_index("run")
        first = by_run.iloc[0]

        def stacked(name: str) -> np.ndarray:
            # A diverged run has no row from the step it diverged at: NaN there and after.
            blank = np.full(np.shape(first[name]), np.nan)
            return np.stack([np.asarray(by_run.at[run, name], dtype=float) if run in by_run.index else blank
                             for run in ids])

        values = {name: stacked(name) for name in metric_names}
        evaluations.append(Evaluation(
            step=int(step), trigger=first["trigger"], flops=float(first["flops"]), compute=float(first["compute"]),
            wall_time=float(first["wall_time"]),
            raw={k: v for k, v in values.items() if not k.startswith("elicited_")},
            elicited={k.removeprefix("elicited_"): v for k, v in values.items() if k.startswith("elicited_")}))
    return TrainResult(task=task, config=TrainConfig(**runs["train"].iloc[0]),
                       instances=[Instance(config=c, seed=int(s)) for c, s in zip(runs["config"], runs["seed"])],
                       params=params, evaluations=evaluations)


def describe() -> dict[str, Any]:
    """The study's settings, for the run folder and ``--json`` output."""
    return {"study": "intro", "paper": "Elhage et al. 2022, Toy Models of Superposition, §1",
            "n_features": N_FEATURES, "n_hidden": N_HIDDEN, "importance": IMPORTANCE,
            "feature_probability": list(FEATURE_PROBABILITY), "train": TRAIN.model_dump()}
