"""``toylab``: a thin command line over the Python API (no logic lives only here).

Bad input prints one ``error: ...`` line on stderr and exits with status 2. With ``--json``
stdout holds exactly one JSON object; progress and messages go to stderr.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from toylab.errors import ConfigError, validated
from toylab.experiments.runs import default_run_folder

app = typer.Typer(
    help="Train thousands of toy models at once, measure what they learned, reproduce papers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stderr = Console(stderr=True)


def _enable_compilation_cache() -> None:
    """Keep XLA's compiled programs on disk: a repeated command skips seconds of compiling."""
    import os

    import jax

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "toylab" / "jax"
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@app.callback()
def _setup() -> None:
    _enable_compilation_cache()


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code=2)


def _print_json(payload: Any, folder: Path | None = None) -> None:
    """``--json``: exactly one object on stdout (NaN as null); the run folder goes to stderr."""
    from toylab.io import json_safe

    sys.stdout.write(json.dumps(json_safe(payload)) + "\n")
    if folder is not None:
        stderr.print(f"run folder: {folder}")


def _wide_console() -> Console:
    # Rows are wide (a value per feature or per rank); when piped, rich would wrap them at 80.
    return Console(width=max(shutil.get_terminal_size((160, 24)).columns, 100))


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        _fail(f"{option}={text!r}: expected a number or a comma-separated list of numbers")


@app.command()
def tms(
    n_features: Annotated[int, typer.Option("--n-features", "-n", help="n: input features")] = 5,
    n_hidden: Annotated[int, typer.Option("--n-hidden", "-m", help="m: hidden dimensions")] = 2,
    feature_probability: Annotated[str, typer.Option(
        help="p = 1 − S; a comma-separated list trains one config per value")] = "0.05",
    importance: Annotated[str, typer.Option(
        help="ratio r for I_i = r^i (1 = equal), or n comma-separated weights")] = "1",
    output: Annotated[str, typer.Option(help="relu | linear")] = "relu",
    untied: Annotated[bool, typer.Option("--untied", help="separate decoder matrix")] = False,
    correlated_groups: Annotated[int, typer.Option(help="groups of features that are on together")] = 0,
    anticorrelated_groups: Annotated[int, typer.Option(help="groups with at most one feature on")] = 0,
    group_size: Annotated[int, typer.Option(help="features per (anti)correlated group")] = 2,
    optimizer: Annotated[str, typer.Option(help="adamw | adam | sgd")] = "adamw",
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 1e-3,
    weight_decay: Annotated[float | None, typer.Option(help="default: 0.01 for adamw, 0 for sgd")] = None,
    schedule: Annotated[str, typer.Option(help="constant | linear | cosine")] = "constant",
    warmup: Annotated[int, typer.Option(help="linear warmup steps")] = 0,
    steps: Annotated[int, typer.Option(help="optimizer steps")] = 10_000,
    batch: Annotated[int, typer.Option(help="examples per step")] = 1024,
    seeds: Annotated[int, typer.Option(help="seeds per config; the best is reported")] = 1,
    seed: Annotated[int, typer.Option(help="base seed")] = 0,
    eval_every: Annotated[int | None, typer.Option(help="also evaluate every N steps")] = None,
    eval_every_seconds: Annotated[float | None, typer.Option(help="also evaluate every T seconds")] = None,
    compute_factor: Annotated[float, typer.Option(help="evaluate at every K× of compute")] = 4.0,
    elicit_steps: Annotated[int, typer.Option(help="bias-refit steps per elicited evaluation")] = 100,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/tms-<time>)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")] = False,
) -> None:
    """Train superposition toy models (Elhage et al. 2022) and report what they learned."""
    from toylab.experiments import tms as study
    from toylab.train import TrainConfig

    probabilities = _floats(feature_probability, "--feature-probability")
    weights = _floats(importance, "--importance")
    try:
        train_config = validated(
            TrainConfig, steps=steps, batch_size=batch, optimizer=optimizer, lr=lr,
            weight_decay=weight_decay, schedule=schedule, warmup_steps=warmup,
            compute_factor=compute_factor, eval_every_steps=eval_every,
            eval_every_seconds=eval_every_seconds, elicit_steps=elicit_steps)
        if seeds < 1:
            raise ConfigError(f"--seeds={seeds}: need at least 1 seed per config")
        result = study.run(
            n_features=n_features, n_hidden=n_hidden, feature_probability=probabilities,
            importance=weights[0] if len(weights) == 1 else weights, output=output,
            tied=not untied, correlated_groups=correlated_groups,
            anticorrelated_groups=anticorrelated_groups, group_size=group_size,
            seeds=seeds, seed=seed, train_config=train_config)
    except ConfigError as exc:
        _fail(str(exc))
    summary = study.summarize(result)
    folder = out or default_run_folder("tms")
    study.write_run(folder, result, summary)
    _report(summary, folder, as_json)


@app.command()
def scurve(
    d: Annotated[int, typer.Option("--d", help="target and model are d × d")] = 100,
    rank: Annotated[str, typer.Option(help="target rank; a comma-separated list sweeps ranks")] = "1",
    singular_values: Annotated[str | None, typer.Option(
        help="e.g. 3,2,1: the target's singular values (their count is the rank)")] = None,
    components: Annotated[int, typer.Option(help="N: Z is a product of N matrices")] = 2,
    width: Annotated[int | None, typer.Option(help="inner width of the product (default d)")] = None,
    loss: Annotated[str, typer.Option(help="mse | ce | ce-rows | ce-prob")] = "mse",
    optimizer: Annotated[str, typer.Option(help="gd | sgd | adam | adamw")] = "gd",
    lr: Annotated[float, typer.Option(help="learning rate; time is t = lr × step")] = 0.01,
    steps: Annotated[int, typer.Option(help="optimizer steps")] = 2000,
    init_scale: Annotated[str, typer.Option(help="ε; a comma-separated list sweeps scales")] = "1e-3",
    init: Annotated[str, typer.Option(help="random | aligned")] = "random",
    weight_decay: Annotated[float, typer.Option(help="decoupled weight decay (sgd, adamw)")] = 0.0,
    batch: Annotated[int | None, typer.Option(help="target entries per step (sgd: default 1000)")] = None,
    seeds: Annotated[int, typer.Option(help="random inits per config")] = 1,
    seed: Annotated[int, typer.Option(help="base seed")] = 0,
    eval_every: Annotated[int | None, typer.Option(help="steps between evaluations (default steps/200)")] = None,
    time_axis: Annotated[str, typer.Option(help="plateau detection on a linear | log time axis")] = "linear",
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/scurve-<time>)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")] = False,
) -> None:
    """Multi-component learning: S-curves and plateaus on a matrix target (Jermyn & Shlegeris 2022)."""
    from toylab.experiments import scurve as study

    if time_axis not in ("linear", "log"):
        _fail(f"--time-axis={time_axis!r}: choose linear or log")
    ranks = [int(k) for k in _floats(rank, "--rank")]
    scales = _floats(init_scale, "--init-scale")
    values = _floats(singular_values, "--singular-values") if singular_values else None
    try:
        if seeds < 1:
            raise ConfigError(f"--seeds={seeds}: need at least 1 seed per config")
        result = study.run(
            d=d, rank=ranks, singular_values=values, components=components, width=width,
            loss=loss, optimizer=optimizer, lr=lr, steps=steps, init_scale=scales, init=init,
            weight_decay=weight_decay, entries_per_step=batch, seeds=seeds, seed=seed,
            eval_every=eval_every)
    except ConfigError as exc:
        _fail(str(exc))
    summary = study.summarize(result, time_axis=time_axis)
    folder = out or default_run_folder("scurve")
    study.write_run(folder, result, summary)
    if as_json:
        _print_json(summary, folder)
        return
    console = _wide_console()
    table = Table(title=f"S-curves: {loss}, {optimizer}, lr {lr:g}, {components} components (t = lr × step)")
    for column in ("seed", "rank", "ε", "final loss", "plateaus", "drops at t", "theory drops at t", "bumps"):
        table.add_column(column, justify="left" if "drops" in column else "right")
    for run in summary["runs"]:
        table.add_row(
            str(run["seed"]), str(run["rank"]), f"{run['init_scale']:.2g}", f"{run['loss_final']:.3g}",
            str(len(run["plateaus"])), " ".join(f"{x['time']:.3g}" for x in run["drops"]) or "—",
            " ".join(f"{x:.3g}" for x in run["theory_drops"]) or "—", str(len(run["bumps"])))
    console.print(table)
    console.print(f"run folder: {folder}")


@app.command()
def reproduce(
    study: Annotated[str, typer.Argument(help="which study: intro (Elhage et al. §1), scurves (Jermyn & Shlegeris)")],
    seeds: Annotated[int | None, typer.Option(help="seeds per config (default: the study's)")] = None,
    steps: Annotated[int | None, typer.Option(help="optimizer steps (default: the study's)")] = None,
    seed: Annotated[int, typer.Option(help="base seed")] = 0,
    store: Annotated[Path | None, typer.Option(
        help="intro: its results store (default: runs/intro-k<seeds>-s<steps>.sqlite); rerun to resume")] = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/<study>-<time>)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")] = False,
) -> None:
    """Reproduce a published finding with its paper's settings."""
    from toylab.experiments import STUDIES
    from toylab.experiments import tms as tms_study

    if study not in STUDIES:
        _fail(f"unknown study {study!r}; available: {', '.join(sorted(STUDIES))}")
    module = STUDIES[study]
    options = {k: v for k, v in {"seeds": seeds, "steps": steps, "store": store}.items() if v is not None}
    if store is not None and study != "intro":
        _fail(f"--store {store}: only the intro study trains as a sweep into a store")
    try:
        result = module.run(seed=seed, **options)
    except ConfigError as exc:
        _fail(str(exc))
    folder = out or default_run_folder(study)
    if study == "scurves":
        summary = {"study": module.describe(), **module.summarize(result)}
        module.write_run(folder, result, summary)
        _report_scurves_study(summary, folder, as_json)
        return
    summary = {"study": module.describe(), **tms_study.summarize(result)}
    tms_study.write_run(folder, result, summary)
    _report(summary, folder, as_json)


def _report_scurves_study(summary: dict[str, Any], folder: Path, as_json: bool) -> None:
    if as_json:
        _print_json(summary, folder)
        return
    console = _wide_console()
    table = Table(title="S-curves at d = 100: drops in the loss | steps to half-learn the strongest–weakest mode",
                  caption="drops: one count per seed (plateau detector, log time); modes: seed 0; "
                          "— = not half learned")
    table.add_column("loss, optimizer, lr")
    for rank in summary["study"]["ranks"]:
        table.add_column(f"rank {rank}", justify="right")

    def steps(value: float) -> str:
        return "—" if math.isnan(value) else f"{value:.0f}"

    for sweep in summary["sweeps"].values():
        cells = []
        for entry in sweep["ranks"]:
            modes = entry["mode_half_steps"][0]
            learned = steps(modes[0]) if len(modes) == 1 else f"{steps(modes[0])}–{steps(modes[-1])}"
            cells.append(f"{'/'.join(map(str, entry['drops']))} | {learned}")
        table.add_row(f"{sweep['loss']}, {sweep['optimizer']}, {sweep['lr']:g}", *cells)
    console.print(table)
    table = Table(title="Full rank, MSE: first plateau (steps) against the init scale ε")
    table.add_column("optimizer, lr")
    first = next(iter(summary["init"].values()))
    for eps in first["init_scales"]:
        table.add_column(f"ε = {eps:g}", justify="right")
    for entry in summary["init"].values():
        table.add_row(f"{entry['optimizer']}, {entry['lr']:g}", *(
            " ".join("none" if math.isnan(x) else f"{x:.0f}" for x in row) for row in entry["plateau_steps"]))
    console.print(table)
    console.print(f"run folder: {folder}")


@app.command()
def phase(
    preset: Annotated[str, typer.Option(help="n2m1 (2 features, 1 dimension; closed form) or n3m2")] = "n2m1",
    grid: Annotated[int, typer.Option(help="cells per axis: densities in [0.01, 1] × importances in [0.1, 10]")] = 8,
    seeds: Annotated[int, typer.Option(help="seeds per cell; the lowest final loss is kept")] = 8,
    steps: Annotated[int, typer.Option(help="optimizer steps per model")] = 5000,
    seed: Annotated[int, typer.Option(help="base seed")] = 0,
    store: Annotated[Path | None, typer.Option(
        help="results store (default: runs/phase-<preset>-g<G>-k<K>-s<N>.sqlite); rerun to resume")] = None,
    backend: Annotated[str, typer.Option(help="local or ray")] = "local",
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/phase-<preset>-<time>)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")] = False,
) -> None:
    """Phase diagram of superposition over density × relative importance (Elhage et al. §4), as a resumable sweep."""
    from toylab.experiments import phase as study

    try:
        path = store or study.default_store(preset, grid, seeds, steps, seed)
        study.preset(preset)  # an unknown preset fails before a store is created
        path.parent.mkdir(parents=True, exist_ok=True)
        summary = study.run(preset, grid=grid, seeds=seeds, steps=steps, seed=seed, store=path, backend=backend)
    except ConfigError as exc:
        _fail(str(exc))
    folder = out or default_run_folder(f"phase-{preset}")
    study.write_run(folder, summary)
    if as_json:
        keys = ("preset", "cells", "agreement", "agreement_away_from_boundary", "cells_away_from_boundary")
        _print_json({k: summary[k] for k in keys if k in summary} | {"store": str(path)}, folder)
        return
    console = _wide_console()
    names = {"not_represented": "·", "dedicated": "D", "superposition": "S"}
    closed = summary["closed_form"]
    table = Table(title=f"{preset}: phase of the extra feature, best of {seeds} seeds per cell"
                        + ("; trained/closed form" if closed is not None else ""),
                  caption="· not represented, D dedicated, S superposition")
    table.add_column("r \\ p", justify="right")
    for p in summary["densities"]:
        table.add_column(f"{p:.3g}", justify="center")
    for i, r in enumerate(summary["relative_importances"]):
        row = [names[name] + ("" if closed is None else "/" + names[closed[i, j]])
               for j, name in enumerate(summary["phases"][i])]
        table.add_row(f"{r:.3g}", *row)
    console.print(table)
    if closed is not None:
        console.print(f"agreement with the closed form: {summary['agreement']:.1%} of {len(summary['cells'])} "
                      f"cells; away from a boundary: {summary['agreement_away_from_boundary']:.1%} of "
                      f"{summary['cells_away_from_boundary']}")
    console.print(f"store: {path}\nrun folder: {folder}")


def _report(summary: dict[str, Any], folder: Path, as_json: bool) -> None:
    if as_json:
        _print_json({k: summary[k] for k in ("instances", "best")}, folder)
        return
    console = _wide_console()
    table = Table(title="Best seed per feature probability (lowest final loss)")
    for column in ("p", "1/(1−S)", "loss", "elicited", "gap", "feat/dim", "D_i", "geometry"):
        table.add_column(column, justify="left" if column in ("D_i", "geometry") else "right",
                         no_wrap=column == "D_i")
    from toylab.metrics import describe_dicts

    for best in summary["best"]:
        p = best["feature_probability"]
        elicited = best["elicited_loss"]
        table.add_row(
            f"{p:.3g}", f"{1 / p:.3g}", f"{best['loss']:.4g}",
            "—" if elicited is None else f"{elicited:.4g}",
            "—" if elicited is None else f"{best['elicitation_gap']:+.1e}",
            f"{best['features_per_dimension']:.2f}",
            " ".join(f"{d:.2f}" for d in best["feature_dimensionality"]),
            describe_dicts(best["geometry"]),
        )
    console.print(table)
    console.print(f"run folder: {folder}")


@app.command()
def measure(
    file: Annotated[Path, typer.Argument(help="a .npy, .npz or .safetensors file holding a weight matrix")],
    array: Annotated[str | None, typer.Option(help="the array's name in an .npz or .safetensors file")] = None,
    feature_axis: Annotated[int, typer.Option(help="1: features are columns (h = W x); 0: rows")] = 1,
    index: Annotated[int | None, typer.Option(
        help="for a stack of matrices (e.g. a run's weights.npz, one per instance): which one")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")] = False,
) -> None:
    """Measure superposition in any weight matrix: scale-dependent and scale-invariant measures side by side."""
    from toylab import metrics
    from toylab.arrays import load_weight_matrix

    try:
        W = load_weight_matrix(file, array=array, feature_axis=feature_axis)  # errors name the file
    except ConfigError as exc:
        _fail(str(exc))
    label = f"{file}[{array}]" if array else str(file)
    if index is not None:
        stack = W.reshape(-1, *W.shape[-2:])  # leading axes flattened, row-major
        if W.ndim < 3 or not -stack.shape[0] <= index < stack.shape[0]:
            _fail(f"--index {index}: {label} holds {stack.shape[0] if W.ndim > 2 else 'a single'} "
                  f"matri{'ces' if W.ndim > 2 else 'x'} of shape {tuple(W.shape[-2:])} (array shape {tuple(W.shape)})")
        W = stack[index]
        label += f" #{index}"
    elif W.ndim > 2:
        _fail(f"{label} holds a stack of {math.prod(W.shape[:-2])} matrices of shape {tuple(W.shape[-2:])} "
              f"(array shape {tuple(W.shape)}): pick one with --index I")
    try:
        result = metrics.measure(W)
    except ConfigError as exc:
        _fail(f"{label}: {exc}")
    if as_json:
        _print_json({"file": str(file), "array": array, "feature_axis": feature_axis, "index": index, **result})
        return
    console = _wide_console()
    power = {0: "unchanged", 1: "× c", 2: "× c²", -2: "× c⁻²"}
    scaling = result["scaling"]

    def number(name: str) -> str:
        value = result[name]
        return "∞" if value is None else f"{value:.4g}"

    table = Table(title=f"{label}: {result['n_features']} features in {result['d_hidden']} dimensions "
                        "(under W → cW)")
    for column in ("measure", "value", "W → cW", "scale-invariant counterpart", "value ", "W → cW "):
        table.add_column(column, justify="right" if "value" in column else "left")
    for name, invariant in (("features_per_dimension", "features_per_dimension_invariant"),
                            ("dimensions_per_feature", "dimensions_per_feature_invariant"),
                            ("feature_scale", None), ("mean_feature_dimensionality", None),
                            ("sum_feature_dimensionality", None)):
        table.add_row(name, number(name), power[scaling[name]], invariant or "",
                      number(invariant) if invariant else "", power[scaling[invariant]] if invariant else "")
    table.add_row("n_represented", f"{result['n_represented']} of {result['n_features']}", "unchanged", "", "", "")
    table.add_row("geometry", result["geometry_description"], "unchanged", "", "", "")
    console.print(table)
    features = Table(title="per feature (s = feature_scale)")
    for column in ("i", "‖W_i‖", "‖W_i‖/s", "D_i", "interference", "interference/s²", "represented"):
        features.add_column(column, justify="right")
    for i in range(result["n_features"]):
        features.add_row(
            str(i), *(f"{result[name][i]:.4g}" for name in (
                "feature_norms", "feature_norms_relative", "feature_dimensionality", "interference",
                "interference_relative")),
            "yes" if result["represented"][i] else "no")
    console.print(features)


@app.command("rescale-check")
def rescale_check(
    scales: Annotated[str | None, typer.Option(
        help="comma-separated factors c > 0 (default: 9 values from 0.1 to 10 on a log grid)")] = None,
    n_hidden: Annotated[int, typer.Option(help="hidden units of the digits classifier")] = 32,
    steps: Annotated[int, typer.Option(help="optimizer steps for the classifier")] = 1000,
    tms_steps: Annotated[int, typer.Option(help="optimizer steps for the autoencoder")] = 3000,
    tms_seeds: Annotated[int, typer.Option(help="autoencoder seeds; the lowest-loss one is rescaled")] = 4,
    seed: Annotated[int, typer.Option(help="base seed (training and the train/test split)")] = 0,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/rescale-check-<time>)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")] = False,
) -> None:
    """The seed's sanity check (SPEC S2): multiply a layer's weights by c, in a classifier and in the autoencoder."""
    from toylab.experiments import rescale as study

    factors = _floats(scales, "--scales") if scales is not None else study.SCALES
    try:
        result = study.run(scales=factors, n_hidden=n_hidden, steps=steps, tms_steps=tms_steps,
                           tms_seeds=tms_seeds, seed=seed)
    except ConfigError as exc:
        _fail(str(exc))
    summary = study.summarize(result)
    folder = out or default_run_folder("rescale-check")
    study.write_run(folder, result, summary)
    if as_json:
        _print_json(summary, folder)
        return
    console = _wide_console()
    classifier = summary["settings"]["classifier"]
    table = Table(title=f"W → cW. Classifier: digits, bias-free ReLU, {classifier['n_hidden']} hidden units, "
                        "measures of c·W_in; autoencoder: n = 5, m = 2, p = 0.05")
    for column in ("c", "accuracy", "changed", "feat/dim", "invariant", "mean D_i",
                   "TMS loss", "TMS feat/dim", "TMS invariant"):
        table.add_column(column, justify="right")
    for k, c in enumerate(summary["scales"]):
        table.add_row(
            f"{c:.3g}", f"{summary['accuracy'][k]:.4f}", str(summary["predictions_changed"][k]),
            f"{summary['features_per_dimension'][k]:.4g}", f"{summary['features_per_dimension_invariant'][k]:.4g}",
            f"{summary['mean_feature_dimensionality'][k]:.4g}", f"{summary['tms_loss'][k]:.4g}",
            f"{summary['tms_features_per_dimension'][k]:.4g}",
            f"{summary['tms_features_per_dimension_invariant'][k]:.4g}")
    console.print(table)
    console.print(f"run folder: {folder}")



@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="the sweep spec, a TOML file (see examples/sweep_tms.toml)")],
    store: Annotated[Path, typer.Option(help="the results store, an SQLite file (created if missing)")],
    backend: Annotated[str, typer.Option(help="local | ray")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: a local Ray)")] = None,
    extend: Annotated[bool, typer.Option("--extend", help="add this spec's new grid values or seeds to the store")] = False,
    chunk_size: Annotated[int | None, typer.Option(help="runs per vectorized chunk (default: from memory)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")] = False,
) -> None:
    """Run a sweep (grid × seeds) into a resumable store; rerun the same command to resume."""
    from toylab import sweeps
    from toylab.store import load

    try:
        summary = sweeps.run(spec, store=store, backend=backend, address=address, extend=extend,
                             chunk_size=chunk_size)
        data = load(store)
    except ConfigError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        print(f"interrupted: finished runs are in {store}; rerun the same command to resume",
              file=sys.stderr)
        raise typer.Exit(code=130) from None
    best = data.best()
    metric = data.spec["select"]["metric"]
    axes = [name for name, _ in data.spec["axes"]]
    if as_json:
        cells = [{**{a: row[a] for a in axes}, "run": int(row["run"]), "seed": int(row["seed"]),
                  metric: float(row[metric])} for _, row in best.iterrows()]
        _print_json({**summary.to_dict(), "select": data.spec["select"], "best": cells})
    else:
        console = _wide_console()
        table = Table(title=f"Best seed per grid point ({data.spec['select']['mode']} {metric})")
        for column in (*axes, "seed", metric):
            table.add_column(column, justify="right")
        for _, row in best.iterrows():
            table.add_row(*(str(row[a]) for a in axes), str(row["seed"]), f"{row[metric]:.4g}")
        console.print(table)
        console.print(f"{summary.done} done, {summary.diverged} diverged, {summary.failed} failed of "
                      f"{summary.runs} runs ({summary.trained} trained now in {summary.seconds:.1f} s); "
                      f"store: {store}")
    for failure in summary.failures:
        print(f"failed: {failure}", file=sys.stderr)
    if summary.failed:
        raise typer.Exit(code=1)

def main() -> None:  # pragma: no cover - console entry point
    app()
