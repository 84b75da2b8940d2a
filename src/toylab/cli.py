"""``toylab``: a thin command line over the Python API (no logic lives only here).

Each command reads its options, calls one library function and prints what it returns: a
table on stdout, or with ``--json`` exactly one JSON object. Progress and messages go to stderr.

Errors, the same for every command:

- a toylab error (:class:`toylab.errors.ToylabError`: bad settings, a foreign store, a broken
  task) or a bad flag prints one ``error: ...`` line on stderr and exits with status 2;
- Ctrl-C prints one line and exits with status 130; where a sweep runs (``sweep``, ``phase``,
  ``reproduce intro|importance|dimensionality``) the line names the store, which keeps every finished run and resumes
  when the same command runs again.

Outputs, the same for every command that writes a run folder (``--out``): the folder is
checked before anything trains (a file, a place that cannot be written, or a folder that
already holds files is refused with status 2, and nothing is created) and made when the run
is written; ``--overwrite`` writes into a folder that already holds files. Without ``--out``
a new ``runs/<command>-<UTC time>`` is made (``-2``, ``-3``, ... when that name is taken).

Diverged runs (a non-finite loss or weights) do not fail a command: each is reported with
``"diverged": true`` and null metrics, every other run is reported and saved as usual, and
one ``warning: K of N ... diverged ...`` line goes to stderr; the status stays 0.

The ``--json`` envelope, the same for every command::

    {"command": "tms",                 # the subcommand
     "ok": true,                       # false: it finished, but part of its work failed
                                       #   (sweep: failed runs; exit status 1)
     "result": {...},                  # the command's payload, as its library call returns it
     "outputs": {"folder": "runs/tms-20250101-120000", "store": "runs/x.sqlite"}}

``outputs`` holds the paths a command wrote (``folder``: a run folder; ``store``: a results
store), ``{}`` when it wrote none. NaN and infinities are written as ``null``. An error prints
nothing on stdout.

``result`` per command: ``tms`` and ``reproduce intro``: ``instances`` and ``best`` (see
:func:`toylab.experiments.tms.summarize`; ``reproduce`` adds ``study``); ``reproduce importance``
and ``reproduce dimensionality``: ``rows`` (one per probability) and ``instances`` (see
:func:`toylab.experiments.notebook.summarize`) and ``study``; ``scurve``:
``runs`` (:func:`toylab.experiments.scurve.summarize`); ``reproduce scurves``:
:func:`toylab.experiments.scurves_paper.summarize` and ``study``; ``reproduce capability``:
:func:`toylab.experiments.capability.summarize` (``rows``, one per model) and ``study``; ``phase``:
:func:`toylab.experiments.phase.public`; ``measure``: :func:`toylab.arrays.measure_file`;
``rescale-check``: :func:`toylab.experiments.rescale.summarize`; ``sae``: :func:`toylab.sae.summarize`
(``saes``, one per seed, and ``best``); ``myopia`` and ``reproduce myopia``:
:func:`toylab.experiments.myopia.summarize` (``arms``, ``oracle``, ``findings``); ``reproduce all``:
:func:`toylab.report.run_all` (``findings``, each with ``id``, ``claim``, ``source``, ``expected``,
``measured``, ``passed``, ``figure``, ``command``, ``seconds``; ``ok`` false and exit status 1 when a
check failed or a study errored); ``reproduce linear``: as ``reproduce intro``; ``reproduce phase-n2m1``
and ``phase-n3m2``: as ``phase``, and ``study``; ``reproduce rescale``: as ``rescale-check``, and ``study``; ``sweep``:
:class:`toylab.sweeps.SweepSummary` fields, ``select`` and ``best`` (one cell per grid point).
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

try:  # typer 0.2x vendors click as typer._click; earlier releases use click itself
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, NoArgsIsHelpError

from toylab.errors import ConfigError, Interrupted, ToylabError, validated

# Heavy imports (jax, matplotlib, toylab.experiments, pandas) happen inside the commands: `toylab
# --help` and a mistyped flag answer at once instead of after seconds of importing.

stderr = Console(stderr=True)


class _Toylab(TyperGroup):
    """The one error handler: every command's toylab errors, bad flags and Ctrl-C end here."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # A sweep turns Ctrl-C into Interrupted naming its store; elsewhere nothing resumes.
            raise Interrupted("interrupted") from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except Interrupted as exc:
            code = _say(str(exc), 130)
        except ToylabError as exc:
            code = _say(f"error: {exc}", 2)
        except NoArgsIsHelpError as exc:
            exc.show()
            code = exc.exit_code
        except ClickException as exc:
            hint = f" (see {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) else ""
            _name_the_value(exc)
            # typer words a bad choice "Value error, 'x' is not one of ...": the prefix is noise.
            message = exc.format_message().replace("Value error, ", "")
            code = _say(f"error: {message}{hint}", exc.exit_code)
        except typer.Abort:
            code = _say("interrupted", 130)
        code = code if isinstance(code, int) else 0  # a command returns None when it succeeds
        if standalone_mode:
            sys.exit(code)
        return code


def _name_the_value(exc: ClickException) -> None:
    """Put the rejected text into a bad flag's message: typer checks flag types with pydantic,
    whose message ("Input should be a valid integer") does not say what was typed."""
    errors = getattr(exc.__cause__, "errors", None)
    if not (callable(errors) and hasattr(exc, "message")):
        return
    try:
        typed = errors()[0]["input"]
    except (LookupError, TypeError):
        return
    if repr(typed) not in exc.message:
        exc.message = f"{typed!r}: {exc.message}"


@contextlib.contextmanager
def _loading():
    """Import a command's modules with Ctrl-C held until they have loaded, then answer it.

    A KeyboardInterrupt raised while jaxlib's extension module initialises crashes the
    process (SIGSEGV, measured: 2 of 4 interrupts sent as jaxlib's library was mapped). Held
    here, a Ctrl-C during the 1–3 s of importing JAX costs that wait, then the usual one line.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # signals are not ours to handle here (a test runner's thread, an embedding app)
        return
    pressed: list[int] = []
    signal.signal(signal.SIGINT, lambda number, frame: pressed.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt


def _say(line: str, code: int) -> int:
    print(" ".join(line.splitlines()), file=sys.stderr)  # one line, whatever the message holds
    return code


app = typer.Typer(
    cls=_Toylab,
    help="Train thousands of toy models at once, measure what they learned, reproduce papers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _setup() -> None:
    # Keep XLA's compiled programs on disk: a repeated command skips seconds of compiling. This
    # runs before a subcommand parses its flags, so it leaves JAX unimported (JAX reads the
    # variables when it loads) unless it is loaded already, as in tests.
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "toylab" / "jax"
    settings = {"jax_compilation_cache_dir": str(cache), "jax_persistent_cache_min_compile_time_secs": 0.5}
    for name, value in settings.items():
        os.environ.setdefault(name.upper(), str(value))
    if "jax" in sys.modules:
        for name, value in settings.items():
            sys.modules["jax"].config.update(name, value)


# -- choices: --help lists them; tests/test_cli.py checks each against the library's own list --


class Output(enum.StrEnum):
    relu = "relu"
    linear = "linear"


class WeightInit(enum.StrEnum):
    xavier = "xavier"
    notebook = "notebook"


class DataRng(enum.StrEnum):
    hash = "hash"
    threefry = "threefry"


class Optimizer(enum.StrEnum):
    adamw = "adamw"
    adam = "adam"
    sgd = "sgd"


class Schedule(enum.StrEnum):
    constant = "constant"
    linear = "linear"
    cosine = "cosine"


class CurveOptimizer(enum.StrEnum):
    gd = "gd"
    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"


class Loss(enum.StrEnum):
    mse = "mse"
    ce = "ce"
    ce_rows = "ce-rows"
    ce_prob = "ce-prob"


class Init(enum.StrEnum):
    random = "random"
    aligned = "aligned"


class TimeAxis(enum.StrEnum):
    linear = "linear"
    log = "log"


class Preset(enum.StrEnum):
    n2m1 = "n2m1"
    n3m2 = "n3m2"


class Backend(enum.StrEnum):
    local = "local"
    ray = "ray"


class StudyName(enum.StrEnum):
    intro = "intro"
    scurves = "scurves"
    capability = "capability"
    myopia = "myopia"
    linear = "linear"
    phase_n2m1 = "phase-n2m1"
    phase_n3m2 = "phase-n3m2"
    rescale = "rescale"
    importance = "importance"
    dimensionality = "dimensionality"
    all = "all"  # every registered finding: toylab.report.run_all


class Learner(enum.StrEnum):
    reinforce = "reinforce"
    ppo = "ppo"
    q = "q"


class PbtSelect(enum.StrEnum):
    last = "last"
    lifetime = "lifetime"


class Floats(tuple):
    """A comma-separated list of numbers, read when the flags are parsed."""


class Ints(tuple):
    """A comma-separated list of integers, read when the flags are parsed."""


def _items(text: str, kind: str) -> list[str]:
    parts = [part.strip() for part in text.split(",")]
    # "0.1,,0.2" or a trailing comma is a typo; dropping the empty item would train a config less.
    if "" in parts:
        raise typer.BadParameter(f"{text!r}: an empty item in the list; expected {kind}")
    return parts


def _floats(text: str) -> Floats:
    expected = "a number or a comma-separated list of numbers"
    parts = _items(text, expected)
    try:
        return Floats(float(part) for part in parts)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected {expected}") from None


def _ints(text: str) -> Ints:
    expected = "an integer or a comma-separated list of integers"
    values = []
    for part in _items(text, expected):
        try:
            values.append(int(part))
        except ValueError:
            # int("1.5") fails, where int(1.5) would quietly train rank 1.
            raise typer.BadParameter(f"{part!r} in {text!r}: expected {expected}" if part != text
                                     else f"{text!r}: expected {expected}") from None
    return Ints(values)


def _numbers(help: str) -> Any:
    return typer.Option(parser=_floats, metavar="X[,Y,...]", help=help)


def _integers(help: str) -> Any:
    return typer.Option(parser=_ints, metavar="K[,L,...]", help=help)


JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout (see toylab --help)")]
OverwriteFlag = Annotated[bool, typer.Option(
    "--overwrite", help="write into an --out folder that already holds files (replacing those of the same name)")]


# -- commands ------------------------------------------------------------------------------------


@app.command()
def tms(
    n_features: Annotated[int, typer.Option("--n-features", "-n", help="n: input features")] = 5,
    n_hidden: Annotated[int, typer.Option("--n-hidden", "-m", help="m: hidden dimensions")] = 2,
    feature_probability: Annotated[Floats, _numbers("p = 1 − S; a comma-separated list trains one config per value")] = "0.05",
    importance: Annotated[Floats, _numbers("ratio r for I_i = r^i (1 = equal), or n comma-separated weights")] = "1",
    output: Annotated[Output, typer.Option(help="the decoder's output")] = Output.relu,
    untied: Annotated[bool, typer.Option("--untied", help="separate decoder matrix")] = False,
    correlated_groups: Annotated[int, typer.Option(help="groups of features that are on together")] = 0,
    anticorrelated_groups: Annotated[int, typer.Option(help="groups with at most one feature on")] = 0,
    group_size: Annotated[int, typer.Option(help="features per (anti)correlated group")] = 2,
    init: Annotated[WeightInit, typer.Option(
        help="initial weight std: xavier √(2/(n+m)) per model, or the reference notebook's √(2/(m(n+I))), "
             "I = configs × seeds")] = WeightInit.xavier,
    rng: Annotated[DataRng, typer.Option(
        help="the data's random numbers: toylab's counter hash (fast), or JAX's threefry (reproduces "
             "runs made before the hash)")] = DataRng.hash,
    optimizer: Annotated[Optimizer, typer.Option()] = Optimizer.adamw,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 1e-3,
    weight_decay: Annotated[float | None, typer.Option(help="default: 0.01 for adamw, 0 for sgd")] = None,
    schedule: Annotated[Schedule, typer.Option(help="learning-rate decay after warmup")] = Schedule.constant,
    warmup: Annotated[int, typer.Option(help="linear warmup steps")] = 0,
    steps: Annotated[int, typer.Option(help="optimizer steps")] = 10_000,
    batch: Annotated[int, typer.Option(help="examples per step")] = 1024,
    seeds: Annotated[int, typer.Option(help="seeds per config; the best is reported")] = 1,
    seed: Annotated[int, typer.Option(help="base seed")] = 0,
    eval_every: Annotated[int | None, typer.Option(help="also evaluate every N steps")] = None,
    eval_every_seconds: Annotated[float | None, typer.Option(help="also evaluate every T seconds")] = None,
    compute_factor: Annotated[float, typer.Option(help="evaluate at every K× of compute")] = 4.0,
    elicit_steps: Annotated[int, typer.Option(help="most bias-refit steps per elicited evaluation")] = 100,
    elicit_fraction: Annotated[float, typer.Option(
        help="each evaluation refits for at most this fraction of the steps trained since the last one")] = 0.25,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/tms-<time>)")] = None,
    overwrite: OverwriteFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Train superposition toy models (Elhage et al. 2022) and report what they learned."""
    with _loading():
        from toylab.experiments import tms as study
        from toylab.experiments.runs import prepare_run_folder
        from toylab.train import TrainConfig

    train_config = validated(
        TrainConfig, steps=steps, batch_size=batch, optimizer=optimizer.value, lr=lr,
        weight_decay=weight_decay, schedule=schedule.value, warmup_steps=warmup,
        compute_factor=compute_factor, eval_every_steps=eval_every,
        eval_every_seconds=eval_every_seconds, elicit_steps=elicit_steps, elicit_fraction=elicit_fraction)
    target = prepare_run_folder(out, "tms", overwrite=overwrite)
    result = study.run(
        n_features=n_features, n_hidden=n_hidden, feature_probability=feature_probability,
        importance=importance[0] if len(importance) == 1 else list(importance), output=output.value,
        tied=not untied, correlated_groups=correlated_groups, anticorrelated_groups=anticorrelated_groups,
        group_size=group_size, init=init.value, rng=rng.value, seeds=seeds, seed=seed,
        train_config=train_config)
    summary = study.summarize(result)
    folder = target.create()
    study.write_run(folder, result, summary)
    _finish("tms", summary, study.tables(summary), folder=folder, warning=study.warning(summary), as_json=as_json)


@app.command()
def scurve(
    d: Annotated[int, typer.Option("--d", help="target and model are d × d")] = 100,
    rank: Annotated[Ints, _integers("target rank; a comma-separated list sweeps ranks")] = "1",
    singular_values: Annotated[Floats | None, _numbers(
        "e.g. 3,2,1: the target's singular values (their count is the rank)")] = None,
    components: Annotated[int, typer.Option(help="N: Z is a product of N matrices")] = 2,
    width: Annotated[int | None, typer.Option(help="inner width of the product (default d)")] = None,
    loss: Annotated[Loss, typer.Option()] = Loss.mse,
    optimizer: Annotated[CurveOptimizer, typer.Option(help="gd: full-batch gradient descent")] = CurveOptimizer.gd,
    lr: Annotated[float, typer.Option(help="learning rate; time is t = lr × step")] = 0.01,
    steps: Annotated[int, typer.Option(help="optimizer steps")] = 2000,
    init_scale: Annotated[Floats, _numbers("ε; a comma-separated list sweeps scales")] = "1e-3",
    init: Annotated[Init, typer.Option()] = Init.random,
    weight_decay: Annotated[float, typer.Option(help="decoupled weight decay (sgd, adamw)")] = 0.0,
    batch: Annotated[int | None, typer.Option(help="target entries per step (sgd: default 1000)")] = None,
    seeds: Annotated[int, typer.Option(help="random inits per config")] = 1,
    seed: Annotated[int, typer.Option(help="base seed")] = 0,
    eval_every: Annotated[int | None, typer.Option(help="steps between evaluations (default steps/200)")] = None,
    time_axis: Annotated[TimeAxis, typer.Option(help="plateau detection on a linear or log time axis")] = TimeAxis.linear,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/scurve-<time>)")] = None,
    overwrite: OverwriteFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Multi-component learning: S-curves and plateaus on a matrix target (Jermyn & Shlegeris 2022)."""
    with _loading():
        from toylab.experiments import scurve as study
        from toylab.experiments.runs import prepare_run_folder

    target = prepare_run_folder(out, "scurve", overwrite=overwrite)
    result = study.run(
        d=d, rank=list(rank), singular_values=singular_values, components=components, width=width,
        loss=loss.value, optimizer=optimizer.value, lr=lr, steps=steps, init_scale=init_scale, init=init.value,
        weight_decay=weight_decay, entries_per_step=batch, seeds=seeds, seed=seed, eval_every=eval_every)
    summary = study.summarize(result, time_axis=time_axis.value)
    folder = target.create()
    study.write_run(folder, result, summary)
    _finish("scurve", summary, study.tables(result, summary), folder=folder, warning=study.warning(summary),
            as_json=as_json)


@app.command()
def reproduce(
    study: Annotated[StudyName, typer.Argument(
        help="intro (Elhage et al. §1), importance (§2: n = 100, m = 20), dimensionality (§6: n = 200, m = 20), "
             "scurves (Jermyn & Shlegeris), capability (SAEs on toy models), myopia (Krueger et al. 2020), linear "
             "(intro with a linear output), phase-n2m1 and phase-n3m2 (Elhage et al. §4), rescale (W → cW on "
             "digits), or all: every finding checked, with an HTML report")],
    seeds: Annotated[int | None, typer.Option(help="seeds per config (default: the study's)")] = None,
    steps: Annotated[int | None, typer.Option(help="optimizer steps (default: the study's)")] = None,
    seed: Annotated[int, typer.Option(help="base seed")] = 0,
    store: Annotated[Path | None, typer.Option(
        help="intro, importance, dimensionality, linear, phase-*: its results store (default: "
             "runs/<study>-...-k<seeds>-s<steps>.sqlite); all: the folder of stores (default: DIR/stores); rerun to "
             "resume")] = None,
    only: Annotated[str | None, typer.Option(
        help="all: comma-separated finding ids (default: every one; see toylab.experiments.findings)")] = None,
    out: Annotated[Path | None, typer.Option(
        help="run folder (default: runs/<study>-<time>); all: DIR, reused so that a rerun resumes "
             "(default: runs/reproduce-all)")] = None,
    overwrite: OverwriteFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Reproduce a published finding with its paper's settings; `all`: every finding, as one report.

    `reproduce all` runs the studies the findings need (finished ones are read back), writes DIR/report.html
    and DIR/findings.json, and exits with status 1 when a check fails or a study errors.
    """
    if study is StudyName.all:
        _reproduce_all(only, seeds=seeds, steps=steps, seed=seed, store=store, out=out, as_json=as_json)
        return
    if only is not None:
        raise ConfigError(f"--only {only}: picks findings of `reproduce all`, not of one study")
    with _loading():
        from toylab.experiments.studies import reproduce as run_study

    done = run_study(study.value, out, overwrite=overwrite, seeds=seeds, steps=steps, seed=seed, store=store)
    _finish("reproduce", done.summary, done.tables(), folder=done.folder, store=done.store,
            warning=done.warning(), as_json=as_json)


def _reproduce_all(only: str | None, *, seeds: int | None, steps: int | None, seed: int, store: Path | None,
                   out: Path | None, as_json: bool) -> None:
    with _loading():
        from toylab.report import run_all, tables

    ids = None if only is None else _items(only, "finding ids")
    folder = out if out is not None else Path("runs") / "reproduce-all"
    result = run_all(folder, only=ids, store=store, seeds=seeds, steps=steps, seed=seed)
    ok = not result["failed"] and not result["errors"]
    _finish("reproduce", result, tables(result), folder=folder, ok=ok, as_json=as_json)
    if not ok:
        raise typer.Exit(code=1)


@app.command()
def myopia(
    epochs: Annotated[int, typer.Option(help="T: epochs in a life")] = 20,
    horizon: Annotated[int, typer.Option(help="E*: the first epoch that costs --penalty")] = 10,
    beta: Annotated[float, typer.Option(help="β: the immediate cost (negative) of cooperating")] = -0.5,
    penalty: Annotated[float, typer.Option(help="c: the cost of every epoch from E* on (0: no tail)")] = 3.0,
    hide_epoch: Annotated[bool, typer.Option("--hide-epoch", help="observe s_t alone, not the epoch index")] = False,
    no_shutdown: Annotated[bool, typer.Option("--no-shutdown", help="remove the shutdown action")] = False,
    learner: Annotated[Learner, typer.Option(help="reinforce (γ = 0), ppo, or tabular Q-learning")] = Learner.reinforce,
    gamma: Annotated[float, typer.Option(help="the learner's discount γ in [0, 1]")] = 0.0,
    hide_state: Annotated[bool, typer.Option(
        "--hide-state", help="the policy does not read s_t (with --hide-epoch: nothing, Krueger's unit-test agent)")] = False,
    pbt_interval: Annotated[int | None, typer.Option(help="K: population-based training every K steps (off if unset)")] = None,
    pbt_select: Annotated[PbtSelect, typer.Option(help="PBT selects on the last epoch's reward or the lifetime return")] = PbtSelect.lifetime,
    swap: Annotated[bool, typer.Option("--swap", help="environment swapping: lives move between members every step")] = False,
    population: Annotated[int, typer.Option(help="P: members per population")] = 20,
    lives: Annotated[int, typer.Option(help="lives each member plays side by side")] = 32,
    lr: Annotated[float | None, typer.Option(help="learning rate (default 0.05; Q-learning's step size 0.5)")] = None,
    steps: Annotated[int, typer.Option(help="training steps (one epoch of every life each)")] = 2000,
    seeds: Annotated[int, typer.Option(help="independent populations")] = 1,
    seed: Annotated[int, typer.Option(help="base seed")] = 0,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/myopia-<time>)")] = None,
    overwrite: OverwriteFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Train one arm of the myopia experiment and compare it with the exact oracles."""
    with _loading():
        from toylab.experiments import myopia as study
        from toylab.experiments.runs import prepare_run_folder

    arm = study.Arm(name="arm", epochs=epochs, horizon=horizon, beta=beta, penalty=penalty, hide_epoch=hide_epoch,
                    allow_shutdown=not no_shutdown, learner=learner.value, gamma=gamma, hide_state=hide_state,
                    pbt_interval=pbt_interval, pbt_select=pbt_select.value, swap=swap, population=population,
                    lives=lives, lr=lr, steps=steps, seeds=seeds).validate()
    target = prepare_run_folder(out, "myopia", overwrite=overwrite)
    done = study.run_arm(arm, seed=seed)
    summary = study.summarize([done])
    folder = target.create()
    study.write_run(folder, [done], summary)
    _finish("myopia", summary, study.tables(summary), folder=folder, warning=study.warning(summary), as_json=as_json)


@app.command()
def phase(
    preset: Annotated[Preset, typer.Option(help="n2m1: 2 features in 1 dimension (closed form); n3m2")] = Preset.n2m1,
    grid: Annotated[int, typer.Option(help="cells per axis: densities in [0.01, 1] × importances in [0.1, 10]")] = 8,
    seeds: Annotated[int, typer.Option(help="seeds per cell; the lowest held-out loss is kept")] = 8,
    steps: Annotated[int, typer.Option(help="optimizer steps per model")] = 5000,
    seed: Annotated[int, typer.Option(help="base seed")] = 0,
    store: Annotated[Path | None, typer.Option(
        help="results store (default: runs/phase-<preset>-g<G>-k<K>-s<N>.sqlite); rerun to resume")] = None,
    backend: Annotated[Backend, typer.Option()] = Backend.local,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/phase-<preset>-<time>)")] = None,
    overwrite: OverwriteFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Phase diagram of superposition over density × relative importance (Elhage et al. §4), as a resumable sweep."""
    with _loading():
        from toylab.experiments import phase as study
        from toylab.experiments.runs import prepare_run_folder

    target = prepare_run_folder(out, f"phase-{preset.value}", overwrite=overwrite)
    summary = study.run(preset.value, grid=grid, seeds=seeds, steps=steps, seed=seed, store=store,
                        backend=backend.value)
    folder = target.create()
    study.write_run(folder, summary)
    _finish("phase", study.public(summary), [*study.tables(summary), f"store: {summary['store']}"],
            folder=folder, store=summary["store"], warning=study.warning(summary), as_json=as_json)


@app.command()
def measure(
    file: Annotated[Path, typer.Argument(help="a .npy, .npz or .safetensors file holding a weight matrix")],
    array: Annotated[str | None, typer.Option(help="the array's name in an .npz or .safetensors file")] = None,
    feature_axis: Annotated[int, typer.Option(help="1: features are columns (h = W x); 0: rows")] = 1,
    index: Annotated[int | None, typer.Option(
        help="for a stack of matrices (e.g. a run's weights.npz, one per instance): which one")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Measure superposition in any weight matrix: scale-dependent and scale-invariant measures side by side."""
    with _loading():
        from toylab.arrays import measure_file, measure_tables

    measured = measure_file(file, array=array, feature_axis=feature_axis, index=index)
    _finish("measure", measured, measure_tables(measured), as_json=as_json)


@app.command()
def sae(
    file: Annotated[Path, typer.Argument(help="activations (rows, d_in): a .npy, .npz or .safetensors file")],
    array: Annotated[str | None, typer.Option(help="the array's name in an .npz or .safetensors file")] = None,
    d_sae: Annotated[int | None, typer.Option("--d-sae", help="latents per SAE (default 4 × d_in)")] = None,
    l1: Annotated[float | None, typer.Option(
        "--l1", help="l1_coefficient λ ≥ 0 (default 0.3 × the activations' RMS norm)")] = None,
    k: Annotated[int | None, typer.Option("--k", help="TopK SAEs with k active latents per row (instead of --l1)")] = None,
    steps: Annotated[int, typer.Option(help="optimizer steps per SAE")] = 5000,
    seeds: Annotated[int, typer.Option(help="SAEs trained side by side, one per seed")] = 4,
    seed: Annotated[int, typer.Option(help="base seed")] = 0,
    lr: Annotated[float, typer.Option(help="Adam's learning rate")] = 3e-3,
    features: Annotated[Path | None, typer.Option(
        help="true feature directions (a .npy, .npz or .safetensors file): adds MMCS, MCC, matched")] = None,
    feature_axis: Annotated[int, typer.Option(help="1: features are columns (d_in, n); 0: rows (n, d_in)")] = 1,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/sae-<time>)")] = None,
    overwrite: OverwriteFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Train sparse autoencoders on your activations and measure them (L0, FVU, dead latents; MMCS, MCC)."""
    with _loading():
        from toylab import sae as sae_api
        from toylab.experiments.runs import prepare_run_folder

    target = prepare_run_folder(out, "sae", overwrite=overwrite)
    fitted = sae_api.fit_file(file, array=array, features=features, feature_axis=feature_axis, d_sae=d_sae,
                              l1_coefficient=l1, k=k, steps=steps, seeds=seeds, seed=seed, lr=lr)
    summary = sae_api.summarize(fitted)
    folder = target.create()
    sae_api.write_run(folder, fitted, summary)
    _finish("sae", summary, sae_api.tables(summary), folder=folder, as_json=as_json)


@app.command("rescale-check")
def rescale_check(
    scales: Annotated[Floats | None, _numbers(
        "factors c > 0 (default: 9 values from 0.1 to 10 on a log grid)")] = None,
    n_hidden: Annotated[int, typer.Option(help="hidden units of the digits classifier")] = 32,
    steps: Annotated[int, typer.Option(help="optimizer steps for the classifier")] = 1000,
    tms_steps: Annotated[int, typer.Option(help="optimizer steps for the autoencoder")] = 3000,
    tms_seeds: Annotated[int, typer.Option(help="autoencoder seeds; the lowest-loss one is rescaled")] = 4,
    seed: Annotated[int, typer.Option(help="base seed (training and the train/test split)")] = 0,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/rescale-check-<time>)")] = None,
    overwrite: OverwriteFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Sanity check of the measures: multiply a layer's weights by c, in a classifier and in the autoencoder."""
    with _loading():
        from toylab.experiments import rescale as study
        from toylab.experiments.runs import prepare_run_folder

    target = prepare_run_folder(out, "rescale-check", overwrite=overwrite)
    result = study.run(scales=study.SCALES if scales is None else scales, n_hidden=n_hidden, steps=steps,
                       tms_steps=tms_steps, tms_seeds=tms_seeds, seed=seed)
    summary = study.summarize(result)
    folder = target.create()
    study.write_run(folder, result, summary)
    _finish("rescale-check", summary, study.tables(summary), folder=folder, warning=study.warning(summary),
            as_json=as_json)


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="the sweep spec, a TOML file (see examples/sweep_tms.toml)")],
    store: Annotated[Path, typer.Option(help="the results store, an SQLite file (created if missing)")],
    backend: Annotated[Backend, typer.Option()] = Backend.local,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: a local Ray)")] = None,
    extend: Annotated[bool, typer.Option("--extend", help="add this spec's new grid values or seeds to the store")] = False,
    chunk_size: Annotated[int | None, typer.Option(help="runs per vectorized chunk (default: from memory)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a sweep (grid × seeds) into a resumable store; rerun the same command to resume."""
    with _loading():
        from toylab import sweeps
        from toylab.sweeps import report

    summary = sweeps.run(spec, store=store, backend=backend.value, address=address, extend=extend,
                         chunk_size=chunk_size)
    result = report.summarize(summary, store)
    _finish("sweep", result, report.tables(result), store=store, ok=not summary.failed, as_json=as_json)
    for failure in summary.failures:
        print(f"failed: {failure}", file=sys.stderr)
    if summary.failed:
        raise typer.Exit(code=1)


# -- output --------------------------------------------------------------------------------------


def _finish(command: str, result: dict[str, Any], tables: list[Any], *, as_json: bool, ok: bool = True,
            folder: Path | None = None, store: Path | str | None = None, warning: str | None = None) -> None:
    """Print the command's tables, or with ``--json`` its envelope (see the module docstring),
    and the library's warning line (diverged runs) on stderr."""
    outputs = {name: str(path) for name, path in (("folder", folder), ("store", store)) if path is not None}
    if as_json:
        from toylab.io import json_safe  # loaded by every command that reaches here

        envelope = {"command": command, "ok": ok, "result": result, "outputs": outputs}
        sys.stdout.write(json.dumps(json_safe(envelope)) + "\n")
        if folder is not None:
            stderr.print(f"run folder: {folder}", soft_wrap=True)  # a path stays on one line, to copy
    else:
        # Rows are wide (a value per feature or per rank); when piped, rich would wrap them at 80.
        console = Console(width=max(shutil.get_terminal_size((160, 24)).columns, 120))
        for table in tables:
            console.print(table)
        if folder is not None:
            console.print(f"run folder: {folder}", soft_wrap=True)
    if warning is not None:
        print(warning, file=sys.stderr)


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="toylab")
