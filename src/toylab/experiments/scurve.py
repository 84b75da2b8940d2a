"""Train multi-component models on matrix targets and read their S-curves.

The Python counterpart of ``toylab scurve`` (Jermyn & Shlegeris 2022): :func:`run`
trains every (config, seed) side by side, :func:`summarize` finds each run's plateaus and drops,
the Saxe et al. (2014) predictions where they apply, and competing learned directions
("bumps"); :func:`write_run` saves the summary and the figures.

Time is ``t = lr × step``: gradient descent with step size lr follows the gradient flow of
``L`` at that time, so curves trained with different learning rates share one axis.

Example:
    >>> from toylab.experiments import scurve
    >>> result = scurve.run(d=6, singular_values=[3.0, 1.0], init="aligned", lr=0.05, steps=300)
    >>> summary = scurve.summarize(result)
    >>> [len(run["drops"]) for run in summary["runs"]]
    [2]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.table import Table

from toylab import figures
from toylab.errors import ConfigError, validated
from toylab.experiments.runs import divergence_warning, diverged, history_end
from toylab.io import atomic_write, json_safe
from toylab.metrics import lowrank as lowrank_metrics
from toylab.metrics.plateaus import Drop, Plateau, Plateaus, find_plateaus
from toylab.tasks.lowrank import lowrank
from toylab.theory import saxe
from toylab.train import TrainConfig, TrainResult, train

__all__ = ["run", "summarize", "warning", "found", "theory_applies", "write_run", "tables", "OPTIMIZERS", "TIME_AXES",
           "MIN_EVALUATIONS"]

OPTIMIZERS = ("gd", "sgd", "adam", "adamw")
TIME_AXES = ("linear", "log")  # the plateau detector's axis: t, or log t
MIN_EVALUATIONS = 200  # the default interval gives at least this many points per curve
SGD_ENTRIES = 1000  # target entries per step for "sgd" when no minibatch size is given


def run(
    *,
    d: int = 100,
    rank: int | Sequence[int] | None = 1,
    singular_values: Sequence[float] | Sequence[Sequence[float]] | None = None,
    components: int = 2,
    width: int | None = None,
    loss: Literal["mse", "ce", "ce-rows", "ce-prob"] = "mse",
    optimizer: Literal["gd", "sgd", "adam", "adamw"] = "gd",
    lr: float = 0.01,
    steps: int = 2000,
    init_scale: float | Sequence[float] = 1e-3,
    init: Literal["random", "aligned"] = "random",
    weight_decay: float = 0.0,
    entries_per_step: int | None = None,
    target: Any = None,
    seeds: int = 1,
    seed: int = 0,
    eval_every: int | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train multi-component models; one config per (rank or target, init scale).

    Args:
      rank: target rank, or several ranks (one config each); ignored when
        ``singular_values`` (whose length sets the rank) or ``target`` is given.
      singular_values: the target's singular values, or several lists (one config each).
      optimizer: ``gd`` full-batch gradient descent; ``sgd`` minibatches of
        ``entries_per_step`` target entries (default 1000); ``adam``/``adamw`` full batch
        unless ``entries_per_step`` is given.
      init_scale: ε, or several (one config each).
      eval_every: evaluation interval in steps; default ``steps // 200``.
    """
    if seeds < 1:
        raise ConfigError(f"seeds={seeds}: need at least 1 seed per config")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer={optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    if optimizer == "sgd" and entries_per_step is None:
        entries_per_step = SGD_ENTRIES
    if optimizer == "gd" and entries_per_step is not None:
        raise ConfigError("optimizer='gd' is full-batch: use optimizer='sgd' for minibatches")
    task = lowrank(d, components=components, width=width, loss=loss, init=init,
                   entries_per_step=entries_per_step)
    scales = [init_scale] if np.ndim(init_scale) == 0 else list(init_scale)
    if target is not None:
        targets = [{"target": np.asarray(target).tolist()}]
    elif singular_values is not None:
        if not len(singular_values):
            raise ConfigError("singular_values=[]: need at least one (their count is the rank)")
        spectra = singular_values if np.ndim(singular_values[0]) else [singular_values]
        targets = [{"singular_values": [float(s) for s in spectrum]} for spectrum in spectra]
    else:
        targets = [{"rank": _rank(k)} for k in ([rank] if np.ndim(rank) == 0 else rank)]
    configs = [{**t, "init_scale": float(eps)} for t in targets for eps in scales]
    if eval_every is None and isinstance(steps, int) and not isinstance(steps, bool):
        eval_every = max(1, steps // MIN_EVALUATIONS)
    elif isinstance(eval_every, int) and eval_every < 1:
        raise ConfigError(f"eval_every={eval_every}: expected at least 1 step between evaluations")
    config = validated(
        TrainConfig, steps=steps, lr=lr, weight_decay=weight_decay,
        optimizer="sgd" if optimizer in ("gd", "sgd") else optimizer, elicit_steps=0,
        eval_every_steps=eval_every)
    return train(task, configs, seeds=seeds, seed=seed, config=config, progress=progress)


def _rank(k: Any) -> int:
    # int(1.5) would train rank 1 without a word; a float that is a whole number (2.0) is fine.
    whole = (isinstance(k, (int, np.integer)) and not isinstance(k, bool)) or (
        isinstance(k, (float, np.floating)) and math.isfinite(k) and float(k).is_integer())
    if not whole:
        raise ConfigError(f"rank={k!r}: expected a whole number of target modes")
    return int(k)


def theory_applies(result: TrainResult) -> bool:
    """Saxe et al.'s solution is exact for MSE, full-batch gradient descent, aligned init."""
    spec = result.task.spec
    return (spec["loss"] == "mse" and spec["init"] == "aligned"
            and spec["entries_per_step"] is None and result.config.optimizer == "sgd"
            and not result.config.momentum and not result.config.weight_decay
            and result.config.schedule == "constant" and not result.config.warmup_steps)


def summarize(result: TrainResult, *, time_axis: Literal["linear", "log"] = "linear") -> dict[str, Any]:
    """Plateaus, drops, theory and bumps of every run.

    Returns:
      ``{"runs": [...]}``, each with ``seed``, ``rank``, ``init_scale``, ``singular_values``
      (the target's), ``loss_final``, ``diverged`` (a NaN or inf loss or weights: then
      ``loss_final`` and ``final_mode_strength`` are None, plateaus, drops and bumps are read
      from the history before it, and ``history`` stops at the first non-finite loss,
      included), ``plateaus`` ``[{"start","end","level"}]``, ``drops``
      ``[{"time","size"}]``, ``theory_drops`` (where theory applies, else ``[]``: the times at
      which Saxe et al.'s solution has each mode's loss falling fastest, the same definition
      the detector dates a drop by; the half-way times of :func:`saxe.drop_time` come
      ``ln 2/(2s)`` later for two components), ``bumps``, ``final_mode_strength`` and ``history``
      ``[{"t","loss"}]``.
    """
    if time_axis not in TIME_AXES:
        raise ConfigError(f"time_axis={time_axis!r}: choose {' or '.join(TIME_AXES)}")
    t = result.steps * result.config.lr
    loss = result.history("loss")  # (evals, models)
    overlaps = result.history("overlaps")  # (evals, models, k, k)
    components = result.task.spec["components"]
    exact = theory_applies(result)
    bad = diverged(result) | ~np.isfinite(loss).all(axis=0)
    runs = []
    for index, instance in enumerate(result.instances):
        hyper = result.task.hyper(instance.config)
        s = hyper["s"][hyper["s"] > 0].astype(np.float64)
        u0 = instance.config["init_scale"] ** components
        # A diverged run keeps its history; plateaus and bumps are read from the part before it blew up.
        end = history_end(loss[:, index])
        good = end - 1 if bad[index] and not np.isfinite(loss[end - 1, index]) else end
        usable = np.count_nonzero(t[:good] > 0) if time_axis == "log" else good
        plateaus, drops = find_plateaus(t[:good], loss[:good, index], axis=time_axis) \
            if usable >= 3 else ([], [])
        runs.append({
            "seed": instance.seed,
            "rank": int(s.size),
            "init_scale": instance.config["init_scale"],
            "singular_values": s.tolist(),
            "loss_final": None if bad[index] else float(loss[-1, index]),
            "diverged": bool(bad[index]),
            "plateaus": [p.to_dict() for p in plateaus],
            "drops": [drop.to_dict() for drop in drops],
            "theory_drops": np.atleast_1d(saxe.steepest_drop_time(s, u0, components)).tolist() if exact else [],
            "bumps": [b.to_dict() for b in lowrank_metrics.find_bumps(t[:good], overlaps[:good, index])],
            "final_mode_strength": None if bad[index] else result.final.raw["mode_strength"][index][: s.size].tolist(),
            "history": [{"t": float(time), "loss": float(value)}
                        for time, value in zip(t[:end], loss[:end, index], strict=True)],
        })
    return {"runs": runs}


def warning(summary: dict[str, Any]) -> str | None:
    """The line ``toylab scurve`` prints when runs diverged, else None."""
    runs = summary["runs"]
    return divergence_warning(sum(run["diverged"] for run in runs), len(runs), "runs",
                              "their final loss and mode strengths are null")


def found(run: Mapping[str, Any]) -> Plateaus:
    """The plateau detector's result for one run of :func:`summarize`, rebuilt from its JSON form.

    Example:
      >>> found({"plateaus": [{"start": 0.0, "end": 1.0, "level": 2.0}], "drops": []})
      Plateaus(plateaus=[Plateau(start=0.0, end=1.0, level=2.0)], drops=[])
    """
    return Plateaus([Plateau(**p) for p in run["plateaus"]], [Drop(**d) for d in run["drops"]])


def write_run(folder: str | Path, result: TrainResult, summary: dict[str, Any]) -> list[Path]:
    """Save ``summary.json``, ``history.npz`` (every recorded metric) and the figures."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [atomic_write(folder / "summary.json",
                             lambda f: f.write(json.dumps(json_safe(summary), indent=1).encode()))]
    arrays = {"t": result.steps * result.config.lr,
              **{name: result.history(name) for name in result.final.raw}}
    written.append(atomic_write(folder / "history.npz", lambda f: np.savez(f, **arrays)))
    for name, figure in scurve_figures(result, summary).items():
        written += figures.save(figure, folder, name)
    return written


def tables(result: TrainResult, summary: dict[str, Any]) -> list[Table]:
    """Every run's plateaus, drops (found and predicted) and bumps, as a table for a terminal."""
    spec, config = result.task.spec, result.config
    optimizer = "gd" if config.optimizer == "sgd" and spec["entries_per_step"] is None else config.optimizer
    table = Table(title=f"S-curves: {spec['loss']}, {optimizer}, lr {config.lr:g}, "
                        f"{spec['components']} components (t = lr × step)")
    for column in ("seed", "rank", "ε", "final loss", "plateaus", "drops at t", "theory drops at t", "bumps"):
        table.add_column(column, justify="left" if "drops" in column else "right")
    for run in summary["runs"]:
        table.add_row(
            str(run["seed"]), str(run["rank"]), f"{run['init_scale']:.2g}",
            "diverged" if run["diverged"] else f"{run['loss_final']:.3g}",
            str(len(run["plateaus"])), " ".join(f"{x['time']:.3g}" for x in run["drops"]) or "—",
            " ".join(f"{x:.3g}" for x in run["theory_drops"]) or "—", str(len(run["bumps"])))
    return [table]


def scurve_figures(result: TrainResult, summary: dict[str, Any]) -> dict[str, Any]:
    """Loss curves with plateaus and theory, mode strengths, and a panel per rank."""
    t = result.steps * result.config.lr
    loss = result.history("loss").T  # (models, evals)
    runs = summary["runs"]
    components = result.task.spec["components"]
    labels = [f"rank {r['rank']}, ε={r['init_scale']:.2g}, seed {r['seed']}" for r in runs]
    theory_t = np.linspace(0.0, t[-1], 600) if theory_applies(result) else None

    def theory_loss(run):
        return saxe.loss_curve(theory_t, np.asarray(run["singular_values"]),
                               run["init_scale"] ** components, components)

    # One theory curve, when every run shares it: other targets or init scales follow other curves.
    one = theory_t is not None and len({(tuple(r["singular_values"]), r["init_scale"]) for r in runs}) == 1
    curves = figures.LossCurves(t, loss, found=[found(r) for r in runs], labels=labels,
                                theory_t=theory_t if one else None,
                                theory_loss=theory_loss(runs[0]) if one else None)
    out = {"loss_curves": figures.loss_curves(curves)}
    first = runs[0]
    k = first["rank"]
    strengths = result.history("mode_strength")[:, 0, :k]
    theory = None
    if theory_t is not None:
        theory = saxe.mode_strength(theory_t[:, None], np.asarray(first["singular_values"])[None, :],
                                    first["init_scale"] ** components, components)
    out["mode_strengths"] = figures.mode_strengths(
        t, strengths, np.asarray(first["singular_values"]), theory_t=theory_t, theory=theory)
    ranks = sorted({r["rank"] for r in runs})
    if len(ranks) > 1:
        panels = []
        for rank in ranks:
            members = [i for i, r in enumerate(runs) if r["rank"] == rank]
            panels.append(figures.LossCurves(t, loss[members], found=[found(runs[i]) for i in members],
                                             title=f"rank {rank}"))
        out["rank_sweep"] = figures.rank_sweep(panels)
    return out
