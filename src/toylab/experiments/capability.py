"""Interpretable capability against capability, on families of superposition models.

Command::

    toylab reproduce capability [--seeds K] [--steps N] [--out DIR] [--json]

Question (from Olah's diagram of interpretability against model capability: simple models
interpretable, then a valley, then crisper abstractions): if the vertical axis is *total
interpretable capability*, is there a valley, where, and does a sparse autoencoder fill it?

Setting: two families of superposition models (Elhage et al. 2022; tied weights, ReLU output,
importance ``0.9^i``), ``n = 20`` features with hidden width ``m ∈ {1, 2, 3, 5, 8, 12, 20}`` and
``n = 64`` with ``m ∈ {2, 4, 8, 16, 32, 64}``, each at densities ``p ∈ {1, 0.3, 0.1, 0.03, 0.01}``;
the best of K = 2 seeds (lowest loss on held-out data the seeds share) trained for 4,000 steps
(AdamW, lr 1e-3, batch 1024).
Each model is measured on 8,192 fresh inputs by :func:`toylab.metrics.capability.interpretable_capability`:
capability ``C = L_trivial − L_model`` split per feature, and the interpretable part by geometry
(features with ``D_i ≥ 0.9``) and by SAE (features matched one-to-one by an SAE latent at
cosine ≥ 0.9; and the splice variant).

SAEs (the rule): ``d_sae = 2n`` latents, L1 architecture, 2,000 steps (Adam, lr 3e-3, batch 256)
on fresh ``h = W x`` from the model's own distribution, for ``λ = c · RMS‖h − mean h‖`` with
``c ∈ {0.1, 0.3, 1}`` (the penalty must carry the activations' scale, which grows with the
density); for each model the λ whose SAE has the highest MCC against the represented features
is kept (the true features are known here; this picks the SAE a ground-truth benchmark would).
All SAEs of one width train side by side in one compiled program.

Along training (the second figure): the smallest family's (``n = 20``) weights at every
evaluation of the compute schedule (every 4× of compute), measured by both definitions; from
step 16 on each snapshot gets its own SAE, with the λ scale chosen for the final model.

Runtime: 3.8 minutes on 2 CPU cores with nothing else running (4.7 while other jobs shared them).

Expected result (the run's ``summary.json`` ``note`` gives the fractions per family and density):

- By geometry, sparse models (p ≤ 0.1) have ``F_geometry = 0`` at every m ≤ 8 (n = 20; at
  n = 64, m ≤ 8, and m ≤ 16 for p ≤ 0.03) although they remove 19–98% of the trivial loss;
  ``F_geometry`` reaches 1 only at m = n. ``IC_geometry`` never falls as m grows (one exception,
  n = 64, p = 0.3, m = 8, by 0.0001): a floor at 0, not a valley. Dense models keep
  ``F_geometry`` between 0.53 and 1.
- The SAE fills that floor: ``F_sae ≥ 0.93`` at p ≤ 0.03 and ≥ 0.58 at p ∈ {0.1, 0.3}; but
  ``F_sae = 0`` for dense models of width ≥ 8 (MCC 0.3–0.8): on dense activations no latent
  lines up with a feature. At n = 20, p = 1, ``F_sae`` = 1, 0.55, 0.39, 0.25, 0, 0, 0 for
  m = 1 … 20: the SAE reading's valley is on dense data.
- Along training (n = 20), on sparse data ``IC_sae`` follows ``C`` while ``IC_geometry`` stays 0;
  at p = 0.3, m = 12 the SAE reading lags mid-training (C/L_trivial 0.74, IC_sae/L_trivial 0.30
  at step 256) and falls back from 0.87 to 0.78 at the end as ``IC_geometry`` rises.
- In one hidden dimension every direction has cosine ±1 with every other: ``F_sae = 1`` at
  m = 1 is an artifact of cosine matching.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
from rich.table import Table

from toylab import figures
from toylab.errors import ConfigError
from toylab.experiments import tms
from toylab.experiments.runs import divergence_warning
from toylab.io import atomic_write, json_safe
from toylab.metrics.capability import interpretable_capability
from toylab.metrics.sae import rms_norm
from toylab.tasks import superposition
from toylab.tasks.sae import sae_on_models
from toylab.train import Population, TrainConfig, train

FAMILIES = {20: (1, 2, 3, 5, 8, 12, 20), 64: (2, 4, 8, 16, 32, 64)}
DENSITIES = (1.0, 0.3, 0.1, 0.03, 0.01)
IMPORTANCE = 0.9
SEEDS = 2
STEPS = 4000
SAE_STEPS = 2000
L1_SCALES = (0.1, 0.3, 1.0)  # λ in units of the activations' RMS (centred) norm
MEASURE_ROWS = 8192


def describe() -> dict[str, Any]:
    return {"study": "capability", "families": {str(n): list(m) for n, m in FAMILIES.items()},
            "densities": list(DENSITIES), "importance": IMPORTANCE, "seeds": SEEDS, "steps": STEPS,
            "sae": {"d_sae": "2n", "steps": SAE_STEPS, "l1_scales": list(L1_SCALES),
                    "selection": "highest MCC over represented features"}}


@dataclasses.dataclass(frozen=True)
class CapabilityResult:
    rows: list[dict[str, Any]]  # one per model (the best seed of each n, m, p)
    trajectories: list[dict[str, Any]]  # the smallest family: C, IC_geometry and IC_sae at every evaluation
    diverged: int
    total: int


def run(*, seeds: int = SEEDS, steps: int = STEPS, seed: int = 0, progress: bool | None = None,
        families: dict[int, tuple[int, ...]] | None = None, densities: tuple[float, ...] = DENSITIES,
        sae_steps: int | None = None, l1_scales: tuple[float, ...] = L1_SCALES) -> CapabilityResult:
    """Train every family, its SAEs, and measure both definitions (see the module docstring)."""
    families = FAMILIES if families is None else families
    tracked = min(families)  # the family whose weights are measured at every evaluation
    sae_steps = SAE_STEPS if sae_steps is None else sae_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps={steps!r}: expected an integer ≥ 1")
    rows, trajectories, diverged, total = [], [], 0, 0
    for n, widths in families.items():
        for m in widths:
            toy = superposition(n_features=n, n_hidden=m)
            configs = [{"feature_probability": p, "importance": IMPORTANCE} for p in densities]
            snapshots: list[tuple[int, dict[str, np.ndarray]]] = []

            def keep(population: Population) -> None:
                snapshots.append((population.step, jax.tree.map(np.array, population.params)))

            models = train(toy, configs, seeds=seeds, seed=seed, progress=progress,
                           config=TrainConfig(steps=steps, elicit_steps=0),
                           on_evaluation=keep if n == tracked else None)
            losses = models.final.raw["loss"].reshape(len(configs), -1)
            finite = np.isfinite(losses)
            diverged += int((~finite).sum())
            total += losses.size
            # The best seed on a held-out set shared by the seeds (toylab.experiments.tms), not
            # on each seed's own 4 trainer batches; a setting whose every seed diverged is left out.
            best = [i for i in tms.best_indices(models, seed=seed) if np.isfinite(models.final.raw["loss"][i])]
            params = jax.tree.map(lambda leaf: np.asarray(leaf)[best], models.params)
            hyper = jax.tree.map(lambda leaf: np.asarray(leaf)[best], models.hyper)
            samples = [np.asarray(toy.sample(jax.random.key(10_000 + j), jax.tree.map(lambda leaf: leaf[j], hyper),
                                             MEASURE_ROWS), np.float64) for j in range(len(best))]
            saes = _train_saes(toy, params, hyper, samples, n, sae_steps, [l1_scales] * len(best), seed)
            chosen_scale = []
            for j in range(len(best)):
                W, b, importance = params["W"][j], params["b"][j], hyper["importance"][j]
                reports = [interpretable_capability(W, b, samples[j], importance, sae=sae) for sae in saes[j]]
                pick = int(np.argmax([-np.inf if r["sae"]["mcc"] is None else r["sae"]["mcc"] for r in reports]))
                chosen_scale.append(l1_scales[pick])
                rows.append(_row(n, m, float(hyper["feature_probability"][j][0]), reports[pick]))
            if n == tracked:
                final = (steps, {name: np.asarray(value) for name, value in models.params.items()})
                trajectories += _along_training(toy, [*snapshots, final], best, hyper, samples, chosen_scale,
                                                [row["interpretable_capability"]["sae"] for row in rows[-len(best):]],
                                                n, m, sae_steps, seed)
    return CapabilityResult(rows, trajectories, diverged, total)


def _train_saes(toy, params, hyper, samples, n, steps, l1_scales, seed) -> list[list[dict[str, np.ndarray]]]:
    """For each model ``j``, one SAE per λ scale in ``l1_scales[j]`` (all trained side by side)."""
    configs, owner = [], []
    for j, x in enumerate(samples):
        h = x @ params["W"][j].T
        rms = float(rms_norm(h))
        configs += [{"model": j, "l1_coefficient": scale * rms} for scale in l1_scales[j]]
        owner += [j] * len(l1_scales[j])
    task = sae_on_models(toy, params, hyper, d_sae=2 * n, batch_size=256)
    result = train(task, configs, seeds=1, seed=seed, progress=False,
                   config=TrainConfig(steps=steps, optimizer="adam", lr=3e-3, elicit_steps=0))
    weights: list[list[dict[str, np.ndarray]]] = [[] for _ in samples]
    for i, j in enumerate(owner):
        weights[j].append(result.instance_params(i))
    return weights


# Evaluations before this step are left without an SAE: the weights are still near their random
# init (C < 0), and the first evaluations (steps 0, 1, 4) would triple the SAEs to train.
_FIRST_SAE_STEP = 16


def _along_training(toy, snapshots, best, hyper, samples, scales, final_sae, n, m, sae_steps, seed):
    """C, IC_geometry and IC_sae of each best model at every evaluation; one SAE per snapshot
    (from step 16 on), with the λ scale chosen for the final model, all trained side by side."""
    points, stacked = [], []  # stacked: (j, snapshot weights) of the points that get an SAE
    for step, weights in snapshots:
        for j, index in enumerate(best):
            W, b = weights["W"][index], weights["b"][index]
            report = interpretable_capability(W, b, samples[j], hyper["importance"][j])
            points.append({"n_features": n, "n_hidden": m, "feature_probability": float(
                hyper["feature_probability"][j][0]), "step": step, "capability": report["capability"],
                "loss_trivial": report["loss_trivial"], "geometry": report["interpretable_capability"]["geometry"],
                "sae": final_sae[j] if step == snapshots[-1][0] else None})
            if _FIRST_SAE_STEP <= step < snapshots[-1][0]:
                stacked.append((len(points) - 1, j, W, b))
    if stacked:
        params = {"W": np.stack([W for _, _, W, _ in stacked]), "b": np.stack([b for _, _, _, b in stacked])}
        picked = jax.tree.map(lambda leaf: np.asarray(leaf)[[j for _, j, _, _ in stacked]], hyper)
        draws = [samples[j] for _, j, _, _ in stacked]
        saes = _train_saes(toy, params, picked, draws, n, sae_steps, [(scales[j],) for _, j, _, _ in stacked], seed)
        for (point, j, W, b), sae in zip(stacked, saes, strict=True):
            report = interpretable_capability(W, b, samples[j], hyper["importance"][j], sae=sae[0])
            points[point]["sae"] = report["interpretable_capability"]["sae"]
    return points


def _row(n: int, m: int, p: float, report: dict[str, Any]) -> dict[str, Any]:
    sae = report["sae"]
    return {"n_features": n, "n_hidden": m, "feature_probability": p, "capability": report["capability"],
            "loss_trivial": report["loss_trivial"], "loss_model": report["loss_model"],
            "interpretable_capability": report["interpretable_capability"], "fraction": report["fraction"],
            "sae": {"l0": sae["l0"], "fvu": sae["fvu"], "mmcs": sae["mmcs"], "mcc": sae["mcc"],
                    "dead_latents": sae["dead_latents"], "matched": sae["matched"],
                    "spliced_loss_recovered": sae["spliced_loss_recovered"]},
            "geometric_features": int(report["geometric_features"].sum())}


def summarize(result: CapabilityResult) -> dict[str, Any]:
    """``rows`` (one per model), ``trajectories`` and a ``note`` with what the numbers say."""
    return {"rows": result.rows, "trajectories": result.trajectories, "diverged": result.diverged,
            "models_trained": result.total, "note": note(result.rows)}


def note(rows: list[dict[str, Any]]) -> str:
    """Where interpretable capability by geometry dips below its value at smaller widths (a
    valley), and how much of that the SAE recovers, per family and density, in numbers."""
    parts = []
    for n in sorted({r["n_features"] for r in rows}):
        for p in sorted({r["feature_probability"] for r in rows if r["n_features"] == n}, reverse=True):
            line = sorted((r for r in rows if r["n_features"] == n and r["feature_probability"] == p),
                          key=lambda r: r["n_hidden"])
            ic = [r["interpretable_capability"]["geometry"] for r in line]
            sae = [r["interpretable_capability"]["sae"] for r in line]
            # A valley: some width whose IC_geometry is below the largest IC at a smaller width.
            dips = [(r["n_hidden"], max(ic[:i]) - ic[i]) for i, r in enumerate(line) if i and ic[i] < max(ic[:i])]
            worst = max(dips, key=lambda d: d[1]) if dips else None
            fg = [r["fraction"]["geometry"] for r in line]
            fs = [r["fraction"]["sae"] for r in line]
            text = f"n={n} p={p:g}: F_geometry " + ",".join("-" if f is None else f"{f:.2f}" for f in fg)
            text += " F_sae " + ",".join("-" if f is None else f"{f:.2f}" for f in fs)
            if worst:
                i = [r["n_hidden"] for r in line].index(worst[0])
                text += (f"; valley at m={worst[0]}: IC_geometry {ic[i]:.4f} is {worst[1]:.4f} below a narrower "
                         f"model's, IC_sae {sae[i]:.4f}")
            else:
                text += "; no valley (IC_geometry never falls as m grows)"
            parts.append(text)
    return " | ".join(parts)


def write_run(folder: Path, result: CapabilityResult, summary: dict[str, Any]) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [atomic_write(folder / "summary.json",
                            lambda f: f.write(json.dumps(json_safe(summary), indent=1).encode()))]
    written += figures.save(figures.capability_axes(result.rows), folder, "capability")
    if result.trajectories:
        written += figures.save(figures.capability_along_training(result.trajectories), folder,
                                "capability_training")
    return written


def tables(summary: dict[str, Any]) -> list[Any]:
    table = Table(title="Interpretable capability (best seed per model; SAE: best λ by MCC)")
    for column in ("n", "m", "p", "C", "IC geom", "IC sae", "IC splice", "F geom", "F sae", "MMCS", "MCC", "L0"):
        table.add_column(column, justify="right")
    fmt = lambda v, spec=".3f": "-" if v is None else format(v, spec)  # noqa: E731
    for r in summary["rows"]:
        ic, f, s = r["interpretable_capability"], r["fraction"], r["sae"]
        table.add_row(str(r["n_features"]), str(r["n_hidden"]), f"{r['feature_probability']:g}",
                      fmt(r["capability"], ".4f"), fmt(ic["geometry"], ".4f"), fmt(ic["sae"], ".4f"),
                      fmt(ic["sae_splice"], ".4f"), fmt(f["geometry"], ".2f"), fmt(f["sae"], ".2f"),
                      fmt(s["mmcs"]), fmt(s["mcc"]), fmt(s["l0"], ".2f"))
    return [table, summary["note"]]


def warning(summary: dict[str, Any]) -> str | None:
    return divergence_warning(summary["diverged"], summary["models_trained"], "models",
                              "the best finite seed of each setting was measured")


__all__ = ["describe", "run", "summarize", "note", "write_run", "tables", "warning"]
