"""Phase diagrams of superposition (Elhage et al. 2022, §4), trained as resumable sweeps.

Command::

    toylab phase --preset n2m1|n3m2 [--grid G] [--seeds K] [--steps N] [--store PATH] [--out DIR] [--json]

Setting: ``n`` features in ``m`` dimensions, every feature on with probability ``p`` (the
density), importance 1 for all but the last feature, the *extra* one, whose importance is ``r``.
The grid is G log-spaced densities in [0.01, 1] × G log-spaced relative importances in
[0.1, 10]; each cell trains K seeds and keeps the lowest held-out loss (the paper's "best of
several runs": small models land in local minima), the seeds compared on one shared held-out
set and the winner's loss measured on an independent one (:func:`honest_best`). Each trained
model is classified by what it does with the extra feature
(:func:`toylab.metrics.classify_phase`): ``not_represented``, ``dedicated`` (a dimension to
itself) or ``superposition`` (sharing one).

- ``n2m1``: 2 features in 1 dimension; :mod:`toylab.theory.phases` gives the closed-form phase
  of every cell, from the exact expected losses of the three candidate solutions, and the
  boundaries drawn over the heatmap. ``agreement`` is the fraction of cells whose trained phase
  is the closed-form one; ``agreement_away_from_boundary`` leaves out the cells next to a
  boundary (a closed-form neighbour, diagonals included, in another phase), where the exact
  boundary falls inside the cell or the candidates are within a few percent of each other.
- ``n3m2``: 3 features in 2 dimensions (importances 1, 1, r); no closed form.

The sweep runs into a results store (default ``runs/phase-<preset>.sqlite``), so an
interrupted diagram resumes where it stopped and a finished one is read back without training.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
from rich.table import Table

from toylab import figures, sweeps
from toylab.errors import ConfigError
from toylab.experiments import tms
from toylab.experiments.runs import created_parents, divergence_warning
from toylab.io import atomic_write, json_safe
from toylab.metrics.phases import classify_phase
from toylab.store import default_path
from toylab.theory import phases as closed_form

__all__ = ["PRESETS", "Preset", "preset", "grid_axes", "sweep_spec", "run", "honest_best",
           "cells_from_weights", "agreement", "near_boundary", "default_store", "public", "warning", "write_run",
           "write_figure", "tables"]


@dataclasses.dataclass(frozen=True)
class Preset:
    """One phase diagram: the model's size and the grid's ranges."""

    n_features: int
    n_hidden: int
    densities: tuple[float, float] = (0.01, 1.0)  # log-spaced, inclusive
    relative_importances: tuple[float, float] = (0.1, 10.0)  # log-spaced, inclusive
    has_closed_form: bool = False


PRESETS = {
    "n2m1": Preset(n_features=2, n_hidden=1, has_closed_form=True),
    "n3m2": Preset(n_features=3, n_hidden=2),
}
GRID = 8  # cells per axis
SEEDS = 8  # best of K per cell: at p ≤ 0.02 a seed can end with a dead feature (W_i ≈ 0, b_i < 0)
STEPS = 5000
LR = 3e-2  # AdamW without weight decay, batch 1024: at p = 0.01 lr 1e-2 left some seeds short of the optimum after 5000 steps
BATCH = 1024
# The store's per-run losses are measured on this many fresh batches. Sparse cells lose almost
# only when two features are on at once (probability ~p²): at p = 0.01 the default 4 batches
# hold ~0.4 such events; 64 hold ~7 (n = 2). The best seed itself is picked on the shared
# selection set of honest_best (64 batches of 1024, the same for every seed).
EVAL_BATCHES = 64


def preset(name: str) -> Preset:
    """The preset called ``name``; a one-line error lists the others."""
    if name not in PRESETS:
        raise ConfigError(f"preset={name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def grid_axes(chosen: Preset, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """The densities and relative importances of a ``grid × grid`` diagram, log-spaced."""
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ConfigError(f"grid={grid!r}: expected an integer ≥ 2 (cells per axis)")
    return np.geomspace(*chosen.densities, grid), np.geomspace(*chosen.relative_importances, grid)


def importance_vector(chosen: Preset, relative_importance: float) -> list[float]:
    """Importance 1 for every feature but the extra (last) one, which gets ``r``."""
    return [1.0] * (chosen.n_features - 1) + [float(relative_importance)]


def near_boundary(phases: np.ndarray) -> np.ndarray:
    """Cells with a neighbour (diagonals included) in another phase, shape of ``phases``.

    Example:
      >>> near_boundary(np.array([["a", "a", "a"], ["a", "a", "b"]], dtype=object)).tolist()
      [[False, True, True], [False, True, True]]
    """
    phases = np.asarray(phases, dtype=object)
    rows, cols = phases.shape
    near = np.zeros(phases.shape, dtype=bool)
    for i in range(rows):
        for j in range(cols):
            block = phases[max(i - 1, 0): i + 2, max(j - 1, 0): j + 2]
            near[i, j] = bool(np.any(block != phases[i, j]))
    return near


def agreement(trained: np.ndarray, expected: np.ndarray) -> dict[str, float | int]:
    """How often the trained phase is the closed-form one, everywhere and away from boundaries.

    Returns:
      ``{"agreement", "agreement_away_from_boundary", "cells_away_from_boundary"}``; the
      second fraction is NaN when every cell is next to a boundary.
    """
    trained, expected = np.asarray(trained, dtype=object), np.asarray(expected, dtype=object)
    same = trained == expected
    away = ~near_boundary(expected)
    return {
        "agreement": float(same.mean()),
        "agreement_away_from_boundary": float(same[away].mean()) if away.any() else float("nan"),
        "cells_away_from_boundary": int(away.sum()),
    }


def sweep_spec(chosen: Preset, *, grid: int = GRID, seeds: int = SEEDS, steps: int = STEPS,
               seed: int = 0) -> sweeps.SweepSpec:
    """The diagram as a :class:`toylab.sweeps.SweepSpec`: importance × density, K seeds per cell."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps={steps!r}: expected a positive number of optimizer steps")
    densities, importances = grid_axes(chosen, grid)
    return sweeps.SweepSpec(
        task="superposition",
        task_params={"n_features": chosen.n_features, "n_hidden": chosen.n_hidden},
        axes={"importance": [importance_vector(chosen, r) for r in importances],
              "feature_probability": [float(p) for p in densities]},
        seeds=seeds, seed=seed,
        train={"steps": steps, "batch_size": BATCH, "optimizer": "adamw", "lr": LR, "weight_decay": 0.0,
               "elicit_steps": 0, "eval_every_steps": max(1, steps // 10), "eval_batches": EVAL_BATCHES},
        select={"metric": "loss", "mode": "min"},
    )


def run(name: str, *, grid: int = GRID, seeds: int = SEEDS, steps: int = STEPS, seed: int = 0,
        store: str | Path | None = None, backend: str = "local", progress: bool | None = None) -> dict[str, Any]:
    """Train (or resume, or just read back) a phase diagram and classify every cell.

    Each cell keeps its lowest-loss seed (:func:`honest_best`) among those that did not
    diverge; a cell whose every seed diverged is reported with ``"diverged": true`` and no phase.

    Args:
      store: the results store; default :func:`default_store` (its folder is created, and
        removed again if the sweep refuses to start).

    Returns:
      :func:`cells_from_weights`'s summary plus ``preset``, ``seeds``, ``store``,
      ``densities``, ``relative_importances`` and ``sweep`` (what :func:`toylab.sweeps.run` did).

    Raises:
      ConfigError: an unknown preset or a bad grid, seed or step count (before a store is
        created), or cells with a failed or unfinished run and no finished one (rerun them).
      Interrupted: Ctrl-C while training; the store keeps what finished and resumes.
    """
    chosen = preset(name)
    spec = sweep_spec(chosen, grid=grid, seeds=seeds, steps=steps, seed=seed)
    store = Path(store) if store is not None else default_store(name, grid, seeds, steps, seed)
    with created_parents(store, f"--store {store}"):
        done = sweeps.run(spec, store=store, backend=backend, progress=progress)
    data = sweeps.load(store)
    densities, importances = grid_axes(chosen, grid)
    best = honest_best(data, seed=seed)
    runs = data.runs
    all_diverged = runs.groupby("cell")["status"].agg(lambda status: (status == "diverged").all())
    lost = runs[runs["cell"].isin(all_diverged.index[all_diverged])].drop_duplicates("cell")
    if len(best) + len(lost) != grid * grid:
        missing = grid * grid - len(best) - len(lost)
        raise ConfigError(f"{missing} of {grid * grid} cells have no finished run in {store} "
                          f"(failed: {done.failed} runs); rerun to retry")
    W = np.zeros((grid, grid, chosen.n_hidden, chosen.n_features))
    loss, error, seed_of = np.zeros((grid, grid)), np.zeros((grid, grid)), np.zeros((grid, grid), dtype=int)
    for row in lost.itertuples():  # no finite seed: no weights, no phase
        W[row.importance_index, row.feature_probability_index] = np.nan
    for row in best.itertuples():
        i, j = row.importance_index, row.feature_probability_index
        W[i, j] = data.weights(int(row.run))["W"]
        loss[i, j], error[i, j], seed_of[i, j] = row.loss, row.loss_standard_error, row.seed
    summary = cells_from_weights(chosen, densities, importances, W, loss, seed_of, error)
    summary.update(preset=name, seeds=seeds, store=str(store), densities=densities.tolist(),
                   relative_importances=importances.tolist(), sweep=done.to_dict())
    return summary


def honest_best(data: sweeps.SweepResults, *, seed: int = 0) -> Any:
    """The best done run of each cell (rows of ``data.runs``, in cell order), its ``loss`` honest.

    As :func:`toylab.experiments.tms.summarize`: the seeds of a cell are compared on one shared
    held-out set (``tms.SELECTION_EXAMPLES``, the same examples for every seed), not on the
    store's per-run losses (the trainer's ``EVAL_BATCHES`` batches, different for each seed);
    the winner's ``loss`` is measured again on an independent set, grown until its standard
    error (``loss_standard_error``) is at most 1% of the loss.
    """
    done = data.runs[data.runs["status"] == "done"].sort_values(["cell", "seed"]).reset_index(drop=True)
    if done.empty:
        return done.assign(loss_standard_error=[])
    task = data.task(done["task_params"].iloc[0])
    ids = [int(run) for run in done["run"]]
    params = {name: data.stack(name, ids) for name in data.weights(ids[0])}
    hyper = jax.tree.map(lambda *leaves: np.stack(leaves), *[task.hyper(config) for config in done["config"]])
    selection = tms.selection_losses(task, params, hyper, seed=seed).loss
    winners = done.assign(selection_loss=selection).groupby("cell")["selection_loss"].idxmin().to_numpy()
    report = tms.report_losses(task, jax.tree.map(lambda leaf: leaf[winners], params),
                               jax.tree.map(lambda leaf: leaf[winners], hyper), seed=seed)
    return done.loc[winners].assign(loss=report.loss, loss_standard_error=report.standard_error,
                                    selection_loss=selection[winners]).reset_index(drop=True)


def cells_from_weights(chosen: Preset, densities: np.ndarray, importances: np.ndarray,
                       best_W: np.ndarray, best_loss: np.ndarray, best_seed: np.ndarray,
                       best_loss_standard_error: np.ndarray | None = None) -> dict[str, Any]:
    """Classify every cell's best model and compare with the closed form where there is one.

    Args:
      densities, importances: the grid's axes, shapes (P,) and (R,).
      best_W: the best seed's weights per cell, shape (R, P, m, n) (row = importance); NaN
        for a cell whose every seed diverged.
      best_loss, best_seed: its loss and seed index, shape (R, P).
      best_loss_standard_error: the loss's standard error, shape (R, P), if known.

    Returns:
      ``{"cells": [...], "phases": (R, P) names or None, "closed_form": (R, P) names or
      None}`` plus, with a closed form, :func:`agreement`'s fields (a diverged cell counts as
      a disagreement: it found no phase). Each cell is ``{"density", "relative_importance",
      "diverged", "phase", "closed_form_phase" (n2m1 only), "loss", "seed",
      "feature_norms"}`` (and ``"loss_standard_error"`` when given); a diverged cell's phase,
      loss, seed and norms are None.
    """
    lost = ~np.isfinite(best_W).all(axis=(-2, -1))  # (R, P)
    trained = classify_phase(np.where(lost[..., None, None], 0.0, best_W), extra=-1)  # (R, P)
    trained[lost] = None
    expected = closed_form.closed_form_phase(densities[None, :], importances[:, None]) \
        if chosen.has_closed_form else None
    norms = np.linalg.norm(best_W, axis=-2)  # (R, P, n)
    cells = []
    for i, r in enumerate(importances):
        for j, p in enumerate(densities):
            cell = {"density": float(p), "relative_importance": float(r), "diverged": bool(lost[i, j]),
                    "phase": None if lost[i, j] else str(trained[i, j])}
            if expected is not None:
                cell["closed_form_phase"] = str(expected[i, j])
            if lost[i, j]:
                cell.update(loss=None, seed=None, feature_norms=None)
            else:
                cell.update(loss=float(best_loss[i, j]), seed=int(best_seed[i, j]),
                            feature_norms=[float(v) for v in norms[i, j]])
                if best_loss_standard_error is not None:
                    cell["loss_standard_error"] = float(best_loss_standard_error[i, j])
            cells.append(cell)
    summary: dict[str, Any] = {"cells": cells, "phases": trained, "closed_form": expected}
    if expected is not None:
        summary.update(agreement(trained, expected))
    return summary


def default_store(name: str, grid: int, seeds: int, steps: int, seed: int = 0) -> Path:
    """``runs/phase-<preset>-g<G>-k<K>-s<N>[-seed<S>].sqlite``: the same command finds its own
    store again (to resume or read back), and another grid gets another store."""
    return default_path(f"phase-{name}", g=grid, k=seeds, s=steps, seed=seed)


def public(summary: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready part of :func:`run`'s summary (``summary.json``, ``--json``): all but the
    phase grids as numpy arrays, which ``cells`` lists one by one."""
    return {k: v for k, v in summary.items() if k not in ("phases", "closed_form")}


def warning(summary: dict[str, Any]) -> str | None:
    """The line ``toylab phase`` prints when runs diverged, else None."""
    sweep = summary["sweep"]
    lost = sum(cell["diverged"] for cell in summary["cells"])
    consequence = "each cell keeps its best finite seed"
    if lost:
        consequence += f"; {lost} of {len(summary['cells'])} cells had none and have a null phase"
    return divergence_warning(sweep["diverged"], sweep["runs"], "runs", consequence)


def tables(summary: dict[str, Any]) -> list[Table | str]:
    """The diagram as a grid of phase letters (trained/closed form), and the agreement."""
    names = {"not_represented": "·", "dedicated": "D", "superposition": "S", None: "×"}
    closed = summary["closed_form"]
    table = Table(title=f"{summary['preset']}: phase of the extra feature, best of {summary['seeds']} seeds "
                        "per cell" + ("; trained/closed form" if closed is not None else ""),
                  caption="· not represented, D dedicated, S superposition, × every seed diverged")
    table.add_column("r \\ p", justify="right")
    for p in summary["densities"]:
        table.add_column(f"{p:.3g}", justify="center")
    for i, r in enumerate(summary["relative_importances"]):
        row = [names[name] + ("" if closed is None else "/" + names[closed[i, j]])
               for j, name in enumerate(summary["phases"][i])]
        table.add_row(f"{r:.3g}", *row)
    if closed is None:
        return [table]
    return [table, f"agreement with the closed form: {summary['agreement']:.1%} of {len(summary['cells'])} "
                   f"cells; away from a boundary: {summary['agreement_away_from_boundary']:.1%} of "
                   f"{summary['cells_away_from_boundary']}"]


def write_run(folder: str | Path, summary: dict[str, Any]) -> list[Path]:
    """Save ``summary.json`` (cells, agreement, the sweep) and the ``phase_<preset>`` figure."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chosen = preset(summary["preset"])
    written = [atomic_write(folder / "summary.json",
                            lambda f: f.write(json.dumps(json_safe(public(summary)), indent=1).encode()))]
    written += write_figure(folder, summary["preset"], chosen, np.asarray(summary["densities"]),
                            np.asarray(summary["relative_importances"]), summary)
    return written


def write_figure(folder: str | Path, name: str, chosen: Preset, densities: np.ndarray,
                 importances: np.ndarray, summary: dict[str, Any]) -> list[Path]:
    """The heatmap, with the closed-form boundaries and disagreements where there is a closed form."""
    title = f"n = {chosen.n_features}, m = {chosen.n_hidden}: best seed per cell"
    if summary.get("closed_form") is not None:
        title += f"\n{summary['agreement']:.0%} agree with the closed form"
    figure = figures.phase_diagram(densities, importances, summary["phases"],
                                   closed_form=summary.get("closed_form"),
                                   boundaries=chosen.has_closed_form, title=title)
    return figures.save(figure, folder, f"phase_{name}")


# -- `toylab reproduce phase-n2m1` / `phase-n3m2`: the diagrams as studies of `reproduce all` -------
# n2m1 at the `toylab phase` defaults; n3m2 on a 6 × 6 grid (its 8 × 8 diagram takes ~4.5 min on
# 2 cores, and 6 log-spaced values per axis still put 3 importances on each side of r = 1).
STUDY_GRID = {"n2m1": GRID, "n3m2": 6}


def study_describe(name: str) -> dict[str, Any]:
    """The settings of the study ``phase-<name>``, for the run folder and ``--json`` output."""
    chosen = preset(name)
    densities, importances = grid_axes(chosen, STUDY_GRID[name])
    return {"study": f"phase-{name}", "paper": "Elhage et al. 2022, Toy Models of Superposition, §4",
            "n_features": chosen.n_features, "n_hidden": chosen.n_hidden, "grid": STUDY_GRID[name],
            "densities": densities.tolist(), "relative_importances": importances.tolist(),
            "closed_form": chosen.has_closed_form,
            "train": {"steps": STEPS, "batch_size": BATCH, "optimizer": "adamw", "lr": LR, "weight_decay": 0.0}}


def study_run(name: str, *, seeds: int = SEEDS, steps: int = STEPS, seed: int = 0, progress: bool | None = None,
              store: str | Path | None = None) -> dict[str, Any]:
    """:func:`run` at the study's grid; ``store`` defaults to :func:`study_store`'s."""
    store = store if store is not None else study_store(name, seeds=seeds, steps=steps, seed=seed)
    return run(name, grid=STUDY_GRID[name], seeds=seeds, steps=steps, seed=seed, store=store, progress=progress)


def study_store(name: str, *, seeds: int = SEEDS, steps: int = STEPS, seed: int = 0) -> Path:
    """The study's default store: :func:`default_store` at its grid."""
    return default_store(name, STUDY_GRID[name], seeds, steps, seed)


def study_write_run(folder: str | Path, result: dict[str, Any], summary: dict[str, Any]) -> list[Path]:
    """``summary.json`` (``summary``: the study's settings and :func:`public` of ``result``) and the figure."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [atomic_write(folder / "summary.json",
                            lambda f: f.write(json.dumps(json_safe(summary), indent=1).encode()))]
    return written + write_figure(folder, result["preset"], preset(result["preset"]),
                                  np.asarray(result["densities"]), np.asarray(result["relative_importances"]), result)


def grids(summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` (:func:`public`'s JSON form) with ``phases`` and ``closed_form`` rebuilt as
    (importances, densities) arrays from its ``cells``, as :func:`tables` reads them."""
    rows, cols = len(summary["relative_importances"]), len(summary["densities"])
    phases = np.array([cell["phase"] for cell in summary["cells"]], dtype=object).reshape(rows, cols)
    closed = None
    if "closed_form_phase" in summary["cells"][0]:
        closed = np.array([cell["closed_form_phase"] for cell in summary["cells"]], dtype=object).reshape(rows, cols)
    return {**summary, "phases": phases, "closed_form": closed}


def study_tables(summary: dict[str, Any]) -> list[Table | str]:
    """:func:`tables` from the JSON summary."""
    return tables(grids(summary))
