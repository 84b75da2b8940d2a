"""What the reference notebook's two paper-scale studies share: the grid, training, and rows.

The official notebook of "Toy Models of Superposition" (Elhage et al. 2022) trains, besides the
introduction figure (:mod:`toylab.experiments.intro`), two larger models over the same 20
feature probabilities p = 20^−linspace(0, 1, 20) (dense, p = 1, to p = 0.05), each with AdamW
at lr 1e-3, batch 1024, 10,000 steps: n = 100 features of decaying importance in m = 20
dimensions (:mod:`toylab.experiments.importance`), and n = 200 features of equal importance in
m = 20 (:mod:`toylab.experiments.dimensionality`). The notebook trains one model per
probability, and so do these studies by default; with ``--seeds K`` toylab keeps the honest best
of K (:func:`toylab.experiments.tms.summarize`: seeds compared on shared held-out data, the winner's
loss measured again on an independent set).

Both train as a sweep into a results store (an interrupted run resumes, a finished one is read
back), with elicitation off: these studies read the final weights only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toylab import metrics, sweeps
from toylab.experiments import tms
from toylab.experiments.runs import created_parents
from toylab.io import atomic_write, json_safe
from toylab.figures.superposition import POLYTOPE_FRACTIONS
from toylab.train import TrainResult

__all__ = ["FEATURE_PROBABILITY", "TRAIN", "NEAR", "ALONE", "best_weights", "write_summary_and_weights", "sweep_spec", "train_sweep", "summarize", "fraction_counts"]

# The notebook's grid and optimizer (its `optimize` defaults; AdamW's weight decay is PyTorch's 0.01).
FEATURE_PROBABILITY = tuple(float(p) for p in 20.0 ** -np.linspace(0, 1, 20))
# elicit_steps=0: the studies measure final weights; elicitation (100 fine-tuning steps at each of
# the 8 evaluations of a 10,000-step run) would add ~8% to the training for nothing read.
TRAIN = tms.TrainConfig(steps=10_000, batch_size=1024, optimizer="adamw", lr=1e-3, elicit_steps=0)

# A feature "sits at" a reference fraction D = dims/k when its D_i is within NEAR of it. Tighter
# than the geometry classifier's 0.05: bands of ±0.05 around 1, 3/4, 2/3, 1/2, 2/5 and 3/8 cover
# 65% of [0.3, 1], so counts at ±0.05 could not tell clustering from a uniform spread; at ±0.02
# they cover 29%.
NEAR = 0.02
# A represented feature is "alone" (its own dimension) at D_i ≥ 0.95: the geometry classifier's
# "dedicated", within its tolerance of D = 1.
ALONE = 1 - metrics.D_TOLERANCE


def sweep_spec(*, n_features: int, n_hidden: int, importance: float | Sequence[float], seeds: int, seed: int,
               steps: int, feature_probability: Sequence[float] = FEATURE_PROBABILITY,
               task_params: dict[str, Any] | None = None) -> sweeps.SweepSpec:
    """The experiment as a :class:`toylab.sweeps.SweepSpec`: probabilities × seeds."""
    importance = importance if isinstance(importance, (int, float)) else [float(i) for i in importance]
    return sweeps.SweepSpec(
        task="superposition", task_params={"n_features": n_features, "n_hidden": n_hidden, **(task_params or {})},
        fixed={"importance": importance}, axes={"feature_probability": list(feature_probability)},
        seeds=seeds, seed=seed, train={**TRAIN.model_dump(exclude_unset=True), "steps": steps})


def train_sweep(spec: sweeps.SweepSpec, store: str | Path, *, progress: bool | None = None) -> TrainResult:
    """Train (or resume, or read back) ``spec`` in the store at ``store``; every run, diverged
    ones kept in place with NaN weights (see :meth:`toylab.sweeps.SweepResults.train_result`)."""
    path = Path(store)
    with created_parents(path, f"--store {path}"):
        sweeps.run(spec, store=path, progress=progress)
    return sweeps.load(path).train_result(diverged=True)


def fraction_counts(D: np.ndarray, represented: np.ndarray) -> dict[str, int]:
    """How many features sit at each reference fraction (1, 3/4, 2/3, 1/2, 2/5, 3/8).

    A represented feature counts at the fraction nearest its ``D_i`` when within ``NEAR`` of it,
    else as ``"other"``; the rest as ``"not represented"``.

    >>> fraction_counts(np.array([1.0, 0.51, 0.49, 0.6, 0.0]), np.array([1, 1, 1, 1, 0], bool))
    {'1': 1, '3/4': 0, '2/3': 0, '1/2': 2, '2/5': 0, '3/8': 0, 'other': 1, 'not represented': 1}
    """
    values = np.array([value for value, _, _ in POLYTOPE_FRACTIONS])
    counts = dict.fromkeys([text for _, text, _ in POLYTOPE_FRACTIONS], 0)
    counts.update({"other": 0, "not represented": int((~represented).sum())})
    for d in np.asarray(D)[represented]:
        nearest = int(np.argmin(np.abs(values - d)))
        key = POLYTOPE_FRACTIONS[nearest][1] if abs(values[nearest] - d) <= NEAR else "other"
        counts[key] += 1
    return counts


# Per-seed fields kept in a study's summary: the per-feature lists live in ``rows`` (best seeds).
_SEED_FIELDS = ("feature_probability", "seed", "diverged", "loss", "selection_loss", "features_per_dimension",
                "dimensions_per_feature", "n_represented")


def summarize(result: TrainResult, *, seed: int = 0) -> dict[str, Any]:
    """One row per feature probability (its best seed), and every seed in brief.

    The best seed is :func:`toylab.experiments.tms.summarize`'s (lowest loss on held-out data
    shared by the seeds; its ``loss`` measured again on an independent set).

    Returns:
      ``{"rows": [...], "instances": [...]}``. A row: ``feature_probability``, ``seed``,
      ``diverged``, ``loss``, ``loss_standard_error``, ``loss_examples``,
      ``features_per_dimension`` (‖W‖²_F/m), ``dimensions_per_feature`` (m/‖W‖²_F),
      ``n_represented``, ``n_alone`` (represented with D_i ≥ 0.95, the geometry classifier's
      "dedicated"), ``n_superposed`` (represented, D_i < 0.95), ``feature_dimensionality``,
      ``feature_norms``, ``interference`` (n values each, in feature order),
      ``fraction_counts`` (:func:`fraction_counts`), and ``seeds_dimensions_per_feature``
      (every seed's, in seed order). A diverged best seed has these None. An instance:
      ``feature_probability``, ``seed``, ``diverged``, ``loss`` (on the shared selection set, or
      the report set for the best), ``selection_loss``, ``features_per_dimension``,
      ``dimensions_per_feature``, ``n_represented``.
    """
    full = tms.summarize(result, seed=seed)
    W = np.asarray(result.params["W"], dtype=np.float64)
    position = {id(entry): i for i, entry in enumerate(full["instances"])}
    instances = [{name: entry[name] for name in _SEED_FIELDS} for entry in full["instances"]]
    rows = []
    for best in full["best"]:
        p = best["feature_probability"]
        row = {"feature_probability": p, "seed": best["seed"], "diverged": best["diverged"],
               "seeds_dimensions_per_feature": [i["dimensions_per_feature"] for i in instances
                                                if i["feature_probability"] == p]}
        if best["diverged"]:
            row.update(dict.fromkeys(("loss", "loss_standard_error", "loss_examples", "features_per_dimension",
                                      "dimensions_per_feature", "n_represented", "n_alone", "n_superposed",
                                      "feature_dimensionality", "feature_norms", "interference", "fraction_counts")))
        else:
            D = np.asarray(best["feature_dimensionality"])
            kept = np.asarray(metrics.represented(W[position[id(best)]]))
            alone = kept & (D >= ALONE)
            row.update({name: best[name] for name in ("loss", "loss_standard_error", "loss_examples",
                                                      "features_per_dimension", "dimensions_per_feature",
                                                      "n_represented", "feature_dimensionality", "feature_norms",
                                                      "interference")})
            row.update({"n_alone": int(alone.sum()), "n_superposed": int((kept & ~alone).sum()),
                        "fraction_counts": fraction_counts(D, kept)})
        rows.append(row)
    return {"rows": rows, "instances": instances}


def best_weights(result: TrainResult, summary: dict[str, Any]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The weights ``(rows, m, n)`` of the rows' best seeds that did not diverge, and those rows."""
    index = {(i.config["feature_probability"], i.seed): k for k, i in enumerate(result.instances)}
    rows = [row for row in summary["rows"] if not row["diverged"]]
    W = np.asarray(result.params["W"])
    return W[[index[(row["feature_probability"], row["seed"])] for row in rows]], rows


def write_summary_and_weights(folder: Path, result: TrainResult, summary: dict[str, Any]) -> list[Path]:
    """``summary.json`` and ``weights.npz`` (every seed, diverged ones too), each written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.asarray(leaf) for name, leaf in result.params.items()}
    return [atomic_write(folder / "summary.json", lambda f: f.write(json.dumps(json_safe(summary), indent=1).encode())),
            atomic_write(folder / "weights.npz", lambda f: np.savez(f, **arrays))]
