"""The introduction figure's setting with a linear output: a linear model never superposes.

Command::

    toylab reproduce linear [--seeds K] [--steps N] [--store PATH] [--out DIR] [--json]

Setting: the ``intro`` study's (:mod:`toylab.experiments.intro`: n = 5 features, m = 2
dimensions, importance I_i = 0.9^i, p = 20^−linspace(0, 1, 10), AdamW lr 1e-3, batch 1024,
10,000 steps) with the ReLU taken off the output: x̂ = WᵀW x + b.

Expected result (Elhage et al. 2022, §2 "the linear model", and §3): without the nonlinearity
the loss is a quadratic form in x, E[(x − WᵀWx − b)ᵀ diag(I) (x − WᵀWx − b)], minimised by b
= the mean's residual and WᵀW = the orthogonal projection onto the top-m eigenvectors of the
importance-weighted covariance, diag(I_i Var(x_i)) here (the features are independent and
equally distributed, so the top m by importance). So at every sparsity the best linear model
represents exactly the m most important features, orthogonally, each with ‖W_i‖ = 1:
features per dimension ‖W‖²_F/m = 1, D_1 = D_2 = 1 and D_i = 0 for the rest. Sparsity, which
makes the ReLU model superpose, only scales the covariance; it does not change its
eigenvectors.

Runtime: about 20 s on 2 CPU cores (20 instances, 2 seeds per probability: a linear
autoencoder has no spurious local minima, so one seed would do; two guard against a slow one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toylab import sweeps
from toylab.experiments import intro
from toylab.experiments.runs import created_parents
from toylab.store import default_path

SEEDS = 2


def sweep_spec(*, seeds: int = SEEDS, seed: int = 0, steps: int = intro.TRAIN.steps) -> sweeps.SweepSpec:
    """The intro sweep (:func:`toylab.experiments.intro.sweep_spec`) with ``output="linear"``."""
    spec = intro.sweep_spec(seeds=seeds, seed=seed, steps=steps)
    return spec.model_copy(update={"task_params": {**spec.task_params, "output": "linear"}})


def default_store(*, seeds: int = SEEDS, steps: int = intro.TRAIN.steps, seed: int = 0) -> Path:
    """``runs/linear-k<seeds>-s<steps>[-seed<S>].sqlite``."""
    return default_path("linear", k=seeds, s=steps, seed=seed)


def run(*, seeds: int = SEEDS, seed: int = 0, steps: int = intro.TRAIN.steps, progress: bool | None = None,
        store: str | Path | None = None):
    """Train (or resume, or read back) the linear sweep; returns its :class:`toylab.train.TrainResult`
    (diverged runs keep their place with NaN weights), as :func:`toylab.experiments.intro.run`."""
    path = Path(store) if store is not None else default_store(seeds=seeds, steps=steps, seed=seed)
    spec = sweep_spec(seeds=seeds, seed=seed, steps=steps)
    with created_parents(path, f"--store {path}"):
        sweeps.run(spec, store=path, progress=progress)
    return sweeps.load(path).train_result(diverged=True)


def describe() -> dict[str, Any]:
    """The study's settings, for the run folder and ``--json`` output."""
    return {**intro.describe(), "study": "linear", "output": "linear",
            "paper": "Elhage et al. 2022, Toy Models of Superposition, §2 (the linear model) and §3"}
