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

import numpy as np

from toylab import sweeps
from toylab.experiments import tms
from toylab.experiments.runs import created_parents
from toylab.store import default_path

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
      weights (see :meth:`toylab.sweeps.SweepResults.train_result`).
    """
    path = Path(store) if store is not None else default_store(seeds=seeds, steps=steps, seed=seed)
    spec = sweep_spec(seeds=seeds, seed=seed, steps=steps)  # bad values fail before a store exists
    with created_parents(path, f"--store {path}"):
        sweeps.run(spec, store=path, progress=progress)
    return sweeps.load(path).train_result(diverged=True)


def describe() -> dict[str, Any]:
    """The study's settings, for the run folder and ``--json`` output."""
    return {"study": "intro", "paper": "Elhage et al. 2022, Toy Models of Superposition, §1",
            "n_features": N_FEATURES, "n_hidden": N_HIDDEN, "importance": IMPORTANCE,
            "feature_probability": list(FEATURE_PROBABILITY), "train": TRAIN.model_dump()}
