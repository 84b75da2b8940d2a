"""Reproduce the S-curve observations of "Multi-Component Learning and S-Curves" (Jermyn &
Shlegeris 2022) and its comments.

Command::

    toylab reproduce scurves [--seeds K] [--steps N] [--out DIR] [--json]

Setting (the post's reference sizes): d = 100 targets of rank 1, 2, 4, 10 and 100 with
singular values evenly spaced from 4 down to 1 (4 alone at rank 1; 4 and 1 at rank 2; every
mode at least 1 so that all are learned within the run) and random singular vectors, fitted by
a product of two 100×100 components from a random init of scale ε = 1e-3, trained

- with MSE ``½‖C − Z‖²`` by full-batch gradient descent (lr 0.02) and by Adam (lr 1e-3);
- with the offset cross-entropy (one softmax over all d² entries, ``KL(p_C ‖ p_Z)``) by the same
  two optimizers. For singular values of order 1 the logits ``C_ij`` are of order ``s/d``, where
  the KL is ``‖(C − Z) − mean‖² / (2d²)`` to second order: gradient descent sees the MSE
  problem slowed down d² times, so it runs at lr ``0.02·d²`` (Adam does not see the scale);
- and, at full rank, over init scales ε = 1e-1 … 1e-4 with both optimizers, to measure how the
  first plateau's length depends on ε.

Each sweep's loss curves are read by the plateau detector on a log time axis.

What the post reported and what this study measures (tests/test_scurves.py checks the same on
small targets):

- Ranks > 1 learn one singular value at a time (gradient descent, MSE): each mode's strength
  reaches half its value in turn (``mode_half_steps``); the loss shows a drop for each mode
  that removes at least 5% of its range (both at rank 2; at higher ranks the later modes are
  too small a share of the loss to be drops).
- "With cross-entropy loss I see two plateaus" at rank 2: in the small-logit regime gradient
  descent on the offset cross-entropy gives MSE's staircase, plateau before each drop.
- "At full rank the plateau is short or absent" with gradient descent, and "with Adam it
  returns": gradient descent's first plateau lasts ``ln(s_max/u₀)/(2 s_max)``, so it is short
  when the init is large and absent at ε = 0.1 (and, for random targets whose largest singular
  value grows with the rank, shorter at full rank); Adam's lasts a number of steps set by its
  learning rate, the same from ε = 1e-1 to 1e-4. Adam also learns the modes of a rank-2 target
  almost together: one drop where gradient descent has two.

Runtime: about 1.5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from toylab import figures
from toylab.experiments import scurve
from toylab.experiments.runs import divergence_warning, diverged
from toylab.io import atomic_write, json_safe
from toylab.metrics.plateaus import plateau_length
from toylab.train import TrainResult

D = 100
RANKS = (1, 2, 4, 10, 100)
INIT_SCALE = 1e-3
INIT_SCALES = (1e-1, 1e-2, 1e-3, 1e-4)  # the full-rank plateau-length sweep
SEEDS = 2
STEPS = 1500
SPECTRA = tuple(tuple(float(s) for s in np.linspace(4.0, 1.0, rank)) for rank in RANKS)
GD_LR = 0.02  # t = 30 at 1500 steps: every mode with s ≥ 1 is learned by t ≈ 7
ADAM_LR = 1e-3
TIME_AXIS = "log"  # plateaus span decades of t, and Adam's whole curve sits in the first 10%

# name → (loss, optimizer, learning rate). Cross-entropy at small logits is MSE / d² (see above).
SWEEPS = {
    "mse-gd": ("mse", "gd", GD_LR),
    "mse-adam": ("mse", "adam", ADAM_LR),
    "ce-gd": ("ce", "gd", GD_LR * D * D),
    "ce-adam": ("ce", "adam", ADAM_LR),
}
INIT_SWEEPS = {"init-gd": ("gd", GD_LR), "init-adam": ("adam", ADAM_LR)}
LABELS = {"gd": "gradient descent", "adam": "Adam", "mse": "MSE", "ce": "offset cross-entropy"}


def run(*, seeds: int = SEEDS, seed: int = 0, steps: int = STEPS,
        progress: bool | None = None) -> dict[str, TrainResult]:
    """Train every sweep; returns name → :class:`toylab.train.TrainResult`."""
    results = {}
    for name, (loss, optimizer, lr) in SWEEPS.items():
        results[name] = scurve.run(d=D, singular_values=SPECTRA, loss=loss, optimizer=optimizer, lr=lr,
                                   steps=steps, init_scale=INIT_SCALE, seeds=seeds, seed=seed,
                                   progress=progress)
    for name, (optimizer, lr) in INIT_SWEEPS.items():
        results[name] = scurve.run(d=D, singular_values=SPECTRA[-1], optimizer=optimizer, lr=lr, steps=steps,
                                   init_scale=list(INIT_SCALES), seeds=seeds, seed=seed,
                                   progress=progress)
    return results


def summarize(results: dict[str, TrainResult]) -> dict[str, Any]:
    """Per sweep and rank: drops found and the first plateau; per optimizer and ε at full rank:
    the first plateau's length in steps.

    The loss shows what the plateau detector sees (a drop must remove 5% of the loss's
    range); the mode strengths show every mode's own S-curve, however small its share of the
    loss: ``mode_half_steps`` is when each target mode reached half its singular value.

    Returns:
      ``{"sweeps": {name: {"loss", "optimizer", "lr", "ranks": [{"rank", "drops",
      "first_drop_step", "mode_half_steps"}], "runs": [...]}}, "init": {name: {"optimizer",
      "lr", "init_scales", "plateau_steps", "diverged"}}}``; ``drops``, ``first_drop_step`` and
      ``mode_half_steps`` (a list per mode, strongest first; None for a diverged run) have one
      entry per seed, ``runs`` is :func:`toylab.experiments.scurve.summarize`'s list (with
      ``diverged`` flags), ``plateau_steps`` is (scales, seeds) with NaN where no drop was
      found or the run diverged, ``diverged`` how many of the sweep's runs diverged.
    """
    sweeps = {}
    for name, (loss, optimizer, lr) in SWEEPS.items():
        result = results[name]
        runs = scurve.summarize(result, time_axis=TIME_AXIS)["runs"]
        strengths = result.history("mode_strength")  # (evals, models, d)
        for index, run_summary in enumerate(runs):
            run_summary["mode_half_steps"] = None if run_summary["diverged"] else mode_half_steps(
                result.steps, strengths[:, index], np.asarray(run_summary["singular_values"]))
        ranks = []
        for rank in RANKS:
            members = [r for r in runs if r["rank"] == rank]
            ranks.append({
                "rank": rank,
                "drops": [len(r["drops"]) for r in members],
                "first_drop_step": [r["drops"][0]["time"] / lr if r["drops"] else None for r in members],
                "mode_half_steps": [r["mode_half_steps"] for r in members],
            })
        sweeps[name] = {"loss": loss, "optimizer": optimizer, "lr": lr, "ranks": ranks, "runs": runs}
    init = {}
    for name, (optimizer, lr) in INIT_SWEEPS.items():
        result = results[name]
        t, loss = result.steps * lr, result.history("loss")
        lengths: dict[float, list[float]] = {eps: [] for eps in INIT_SCALES}
        bad = diverged(result) | ~np.isfinite(loss).all(axis=0)
        for index, instance in enumerate(result.instances):
            steps = float("nan") if bad[index] else plateau_length(t, loss[:, index], axis=TIME_AXIS) / lr
            lengths[instance.config["init_scale"]].append(steps)
        init[name] = {"optimizer": optimizer, "lr": lr, "init_scales": list(INIT_SCALES),
                      "plateau_steps": [lengths[eps] for eps in INIT_SCALES], "diverged": int(bad.sum())}
    return {"sweeps": sweeps, "init": init}


def warning(summary: dict[str, Any]) -> str | None:
    """The line ``toylab reproduce scurves`` prints when runs diverged, else None."""
    runs = [run for sweep in summary["sweeps"].values() for run in sweep["runs"]]
    count = sum(run["diverged"] for run in runs) + sum(entry["diverged"] for entry in summary["init"].values())
    total = len(runs) + sum(len(row) for entry in summary["init"].values() for row in entry["plateau_steps"])
    return divergence_warning(count, total, "runs", "their final losses, mode timings and plateau lengths are null")


def mode_half_steps(steps: np.ndarray, strengths: np.ndarray, singular_values: np.ndarray) -> list[float]:
    """The first evaluated step at which each mode's strength ``u_k`` reached ``s_k / 2``.

    Args:
      steps: the evaluation steps, shape (evals,).
      strengths: ``u_k`` at each evaluation, shape (evals, ≥ rank), modes strongest first.
      singular_values: the target's ``s_k``, shape (rank,).

    Returns:
      One step per mode; NaN for a mode not half learned by the end (or a diverged run).

    Example:
      >>> mode_half_steps(np.arange(4), np.array([[0, 0], [2, 0], [3, 1], [3, 2]]), np.array([3.0, 2.0]))
      [1.0, 2.0]
    """
    reached = strengths[:, : singular_values.size] >= singular_values / 2  # (evals, rank)
    return [float(steps[np.argmax(column)]) if column.any() else float("nan") for column in reached.T]


def write_run(folder: str | Path, results: dict[str, TrainResult], summary: dict[str, Any]) -> list[Path]:
    """Save ``summary.json`` and the figures: a rank-sweep panel per loss and optimizer
    (``rank_sweep_<loss>_<optimizer>``) and ``plateau_vs_init``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [atomic_write(folder / "summary.json",
                            lambda f: f.write(json.dumps(json_safe(summary), indent=1).encode()))]
    for name, (loss, optimizer, lr) in SWEEPS.items():
        result, runs = results[name], summary["sweeps"][name]["runs"]
        t, curves = result.steps * lr, result.history("loss").T
        panels = []
        for rank in RANKS:
            members = [i for i, r in enumerate(runs) if r["rank"] == rank]
            panels.append(figures.LossCurves(t, curves[members], title=f"rank {rank}",
                                             found=[scurve.found(runs[i]) for i in members]))
        figure = figures.rank_sweep(panels, log_time=True,
                                    suptitle=f"{LABELS[optimizer]} (lr {lr:g}), {LABELS[loss]}, d = {D}")
        written += figures.save(figure, folder, f"rank_sweep_{loss}_{optimizer}")
    lengths = {f"{LABELS[entry['optimizer']]}, lr {entry['lr']:g}": np.asarray(entry["plateau_steps"], float)
               for entry in summary["init"].values()}
    figure = figures.plateau_vs_init(INIT_SCALES, lengths,
                                     title=f"full rank (d = {D}), MSE: first plateau")
    written += figures.save(figure, folder, "plateau_vs_init")
    return written


def tables(summary: dict[str, Any]) -> list[Table]:
    """Drops and mode timings per sweep and rank, and the first plateau against ε, for a terminal."""
    table = Table(title=f"S-curves at d = {D}: drops in the loss | steps to half-learn the strongest–weakest mode",
                  caption="drops: one count per seed (plateau detector, log time); modes: seed 0; "
                          "— = not half learned")
    table.add_column("loss, optimizer, lr")
    for rank in RANKS:
        table.add_column(f"rank {rank}", justify="right")

    def steps(value: float) -> str:
        return "—" if math.isnan(value) else f"{value:.0f}"

    for sweep in summary["sweeps"].values():
        cells = []
        for entry in sweep["ranks"]:
            modes = entry["mode_half_steps"][0]
            if modes is None:  # seed 0 diverged
                cells.append(f"{'/'.join(map(str, entry['drops']))} | diverged")
                continue
            learned = steps(modes[0]) if len(modes) == 1 else f"{steps(modes[0])}–{steps(modes[-1])}"
            cells.append(f"{'/'.join(map(str, entry['drops']))} | {learned}")
        table.add_row(f"{sweep['loss']}, {sweep['optimizer']}, {sweep['lr']:g}", *cells)
    init = Table(title="Full rank, MSE: first plateau (steps) against the init scale ε")
    init.add_column("optimizer, lr")
    for eps in INIT_SCALES:
        init.add_column(f"ε = {eps:g}", justify="right")
    for entry in summary["init"].values():
        init.add_row(f"{entry['optimizer']}, {entry['lr']:g}", *(
            " ".join("none" if math.isnan(x) else f"{x:.0f}" for x in row) for row in entry["plateau_steps"]))
    return [table, init]


def describe() -> dict[str, Any]:
    """The study's settings, for the run folder and ``--json`` output."""
    return {"study": "scurves", "paper": "Jermyn & Shlegeris 2022, Multi-Component Learning and S-Curves",
            "d": D, "ranks": list(RANKS), "singular_values": "evenly spaced from 4 down to 1", "init_scale": INIT_SCALE, "init_scales": list(INIT_SCALES),
            "sweeps": {name: {"loss": loss, "optimizer": opt, "lr": lr} for name, (loss, opt, lr) in SWEEPS.items()},
            "time_axis": TIME_AXIS}

