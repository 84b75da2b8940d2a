"""Dimensions per feature "sticks" at 1 and 1/2: the reference notebook's dimensionality experiment.

Command::

    toylab reproduce dimensionality [--seeds K] [--steps S] [--out DIR]

Setting (the official notebook of Elhage et al. 2022, its feature-dimensionality cell; the
paper's §6 "Feature Dimensionality" figure): n = 200 features of equal importance in m = 20
dimensions, feature probability p = 20^−linspace(0, 1, 20) (p = 1 to 0.05), AdamW, lr 1e-3,
batch 1024, 10,000 steps; one seed per probability as in the notebook (``--seeds K``: the honest
best of K)
(:func:`toylab.experiments.notebook.summarize`).

Expected result: as features get sparser, dimensions per feature m/‖W‖²_F falls from 1, but not
smoothly: it "sticks" at 1 (one feature per dimension) and at 1/2 (antipodal pairs) over ranges
of sparsity. Each feature's dimensionality D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)² clusters at the fractions
of the polytopes the features form: 1, 3/4 (tetrahedron), 2/3 (triangle), 1/2 (digon), 2/5
(pentagon), 3/8 (square antiprism).

Figures: ``dimensions_per_feature`` (m/‖W‖²_F against 1/(1−S), every seed a dot, the best seeds
joined) and ``feature_dimensionality`` (D_i of every represented feature of the best seeds, with
the reference fractions).

Runtime: see the README (its performance section gives the measured time on 2 CPU cores).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.table import Table

from toylab import figures, metrics
from toylab.experiments import notebook, tms
from toylab.store import default_path

# The notebook's setting; each value is what its cell used.
N_FEATURES = 200  # n
N_HIDDEN = 20  # m
IMPORTANCE = 1.0  # equal importance
FEATURE_PROBABILITY = notebook.FEATURE_PROBABILITY
# The notebook's own setting, one model per probability: three seeds would triple training time
# that is already past the 3 minutes on 2 CPU cores (see the README); --seeds K picks the
# honest best of K.
SEEDS = 1
TRAIN = notebook.TRAIN


def sweep_spec(*, seeds: int = SEEDS, seed: int = 0, steps: int = TRAIN.steps,
               init: Literal["xavier", "notebook"] = "xavier"):
    """The experiment as a :class:`toylab.sweeps.SweepSpec`: probabilities × seeds.

    ``init="notebook"``: the notebook's initial scale, std √(2/(m(n+I))) with I = 20 (its one
    tensor of 20 instances), instead of the default per-model √(2/(n+m)) (4.5× larger here).
    """
    task = {"init": "notebook", "init_instances": len(FEATURE_PROBABILITY)} if init == "notebook" else None
    return notebook.sweep_spec(n_features=N_FEATURES, n_hidden=N_HIDDEN, importance=IMPORTANCE, seeds=seeds,
                               seed=seed, steps=steps, feature_probability=FEATURE_PROBABILITY,
                               task_params=task)


def default_store(*, seeds: int = SEEDS, steps: int = TRAIN.steps, seed: int = 0) -> Path:
    """``runs/dimensionality-k<seeds>-s<steps>[-seed<S>].sqlite``: the same command finds its store again."""
    return default_path("dimensionality", k=seeds, s=steps, seed=seed)


def run(*, seeds: int = SEEDS, seed: int = 0, steps: int = TRAIN.steps, progress: bool | None = None,
        store: str | Path | None = None, init: Literal["xavier", "notebook"] = "xavier"):
    """Train (or resume, or read back) the experiment in a results store; its :class:`TrainResult`.

    ``init`` (Python only): see :func:`sweep_spec`; a store holds one init, so pass ``store``.
    """
    path = Path(store) if store is not None else default_store(seeds=seeds, steps=steps, seed=seed)
    return notebook.train_sweep(sweep_spec(seeds=seeds, seed=seed, steps=steps, init=init), path,
                                progress=progress)


def describe() -> dict[str, Any]:
    """The study's settings, for the run folder and ``--json`` output."""
    return {"study": "dimensionality", "paper": "Elhage et al. 2022, Toy Models of Superposition, §6 (the "
            "reference notebook's n = 200, m = 20 experiment)", "n_features": N_FEATURES, "n_hidden": N_HIDDEN,
            "importance": IMPORTANCE, "feature_probability": list(FEATURE_PROBABILITY), "train": TRAIN.model_dump(),
            "near": notebook.NEAR}


summarize = notebook.summarize
warning = tms.warning


def write_run(folder: str | Path, result, summary: dict[str, Any]) -> list[Path]:
    """Save ``summary.json``, ``weights.npz`` (every seed) and the two figures."""
    folder = Path(folder)
    written = notebook.write_summary_and_weights(folder, result, summary)
    W, rows = notebook.best_weights(result, summary)
    if not rows:
        return written
    seeds = [i for i in summary["instances"] if not i["diverged"]]
    best = {(row["feature_probability"], row["seed"]) for row in rows}
    written += figures.save(figures.dimensions_per_feature(
        np.array([i["feature_probability"] for i in seeds]), np.array([i["dimensions_per_feature"] for i in seeds]),
        n_hidden=N_HIDDEN, best=np.array([(i["feature_probability"], i["seed"]) in best for i in seeds])),
        folder, "dimensions_per_feature")
    D = np.array([row["feature_dimensionality"] for row in rows])
    D[~np.asarray(metrics.represented(W))] = np.nan  # dropped features (D ≈ 0) are not drawn
    written += figures.save(figures.feature_dimensionality(
        np.array([row["feature_probability"] for row in rows]), D), folder, "feature_dimensionality")
    return written


def tables(summary: dict[str, Any]) -> list[Table]:
    """The best seed of each probability: m/‖W‖²_F and how many features sit at each fraction."""
    fractions = [text for _, text, _ in figures.POLYTOPE_FRACTIONS]
    table = Table(title=f"Best seed per feature probability (n = {N_FEATURES}, m = {N_HIDDEN}, equal importance): "
                        f"dimensions per feature, and features with D_i within {notebook.NEAR} of each fraction")
    for column in ("p", "1/(1−S)", "loss", "m/‖W‖²", "seeds", *fractions, "other", "dropped"):
        table.add_column(column, justify="right")
    for row in summary["rows"]:
        p = row["feature_probability"]
        seeds = " ".join("—" if v is None else f"{v:.2f}" for v in row["seeds_dimensions_per_feature"])
        if row["diverged"]:
            table.add_row(f"{p:.3g}", f"{1 / p:.3g}", "diverged", "—", seeds, *["—"] * (len(fractions) + 2))
            continue
        counts = row["fraction_counts"]
        table.add_row(f"{p:.3g}", f"{1 / p:.3g}", f"{row['loss']:.4g}", f"{row['dimensions_per_feature']:.3f}", seeds,
                      *[str(counts[f]) for f in fractions], str(counts["other"]), str(counts["not represented"]))
    return [table]
