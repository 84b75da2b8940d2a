"""The command line: JSON envelope, run folder, one-line errors for bad input, Ctrl-C."""

import contextlib
import signal
import sqlite3
import subprocess
import sys
import time
import typing

import numpy as np
import pytest
from cli_json import outputs_of, result_of
from typer.testing import CliRunner

from toylab import cli
from toylab.cli import app

runner = CliRunner()
QUICK = ["--steps", "40", "--batch", "32", "--elicit-steps", "3"]


def test_tms_json_is_exactly_one_object_with_instances_and_best(tmp_path):
    result = runner.invoke(app, ["tms", "--n-features", "5", "--n-hidden", "2",
                                 "--feature-probability", "0.1,1", "--importance", "0.9",
                                 "--seeds", "2", "--out", str(tmp_path), "--json", *QUICK])
    payload = result_of(result, "tms")
    assert set(payload) == {"instances", "best"} and outputs_of(result) == {"folder": str(tmp_path)}
    assert len(payload["instances"]) == 4 and len(payload["best"]) == 2
    instance = payload["instances"][0]
    for field in ("feature_probability", "importance", "seed", "loss", "features_per_dimension",
                  "feature_dimensionality", "feature_norms", "geometry"):
        assert field in instance
    assert len(instance["feature_dimensionality"]) == 5 and len(instance["feature_norms"]) == 5
    assert {"features", "dims", "name", "D"} <= set(instance["geometry"][0])
    for best in payload["best"]:  # the lowest loss among that config's seeds
        same = [i["loss"] for i in payload["instances"]
                if i["feature_probability"] == best["feature_probability"]]
        assert best["loss"] == min(same)
    written = {p.name for p in tmp_path.iterdir()}
    assert {"summary.json", "weights.npz", "feature_vectors.png", "feature_vectors.svg",
            "norms_and_interference.png", "dimensions_per_feature.png",
            "feature_dimensionality.png", "loss_history.png"} <= written


@pytest.mark.parametrize("flags", [["--output", "linear"], ["--untied"],
                                   ["--optimizer", "sgd", "--lr", "0.05", "--schedule", "cosine"],
                                   ["--optimizer", "adam", "--schedule", "linear", "--eval-every", "10"]])
def test_tms_variants_run(tmp_path, flags):
    result = runner.invoke(app, ["tms", "--n-hidden", "3", "--out", str(tmp_path), "--json",
                                 "--compute-factor", "2", *QUICK, *flags])
    history = result_of(result, "tms")["instances"][0]["history"]
    steps = [row["step"] for row in history]
    assert steps[:4] == [0, 1, 2, 4] and steps[-1] == 40


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--n-hidden", "0"], "n_hidden=0"),
        (["--n-hidden", "-3"], "n_hidden=-3"),
        (["--n-features", "0"], "n_features=0"),
        (["--feature-probability", "0.1,1.5"], "feature_probability=1.5"),
        (["--feature-probability", "0"], "feature_probability=0.0"),
        (["--lr", "-0.1"], "lr=-0.1"),
        (["--importance", "1,0.5"], "importance has 2 values, expected n_features=5"),
        (["--optimizer", "rmsprop"], "'--optimizer': 'rmsprop' is not one of 'adamw', 'adam', 'sgd'"),
        (["--feature-probability", "dense"], "'--feature-probability': 'dense'"),
        (["--seeds", "0"], "seeds=0: need at least 1 seed"),
        (["--bogus"], "No such option: --bogus"),
    ],
)
def test_bad_input_gives_one_line_naming_the_value(tmp_path, flags, needle):
    out = tmp_path / "run"
    result = runner.invoke(app, ["tms", "--out", str(out), *QUICK, *flags])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert "Traceback" not in result.output and not out.exists()


def test_real_entry_point_prints_no_traceback(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "toylab", "tms", "--n-hidden", "0", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [process.stderr.strip()]
    assert "n_hidden=0" in process.stderr and "Traceback" not in process.stderr


def test_unknown_study_is_refused():
    result = runner.invoke(app, ["reproduce", "nonexistent"])
    assert result.exit_code == 2 and "'nonexistent' is not one of 'intro', 'scurves', 'capability', 'myopia'" in result.stderr


@pytest.mark.slow
def test_reproduce_scurves_writes_every_sweep_and_its_figures(tmp_path):
    result = runner.invoke(app, ["reproduce", "scurves", "--steps", "60", "--seeds", "1",
                                 "--out", str(tmp_path), "--json"])
    payload = result_of(result, "reproduce")
    assert set(payload["sweeps"]) == {"mse-gd", "mse-adam", "ce-gd", "ce-adam"}
    for sweep in payload["sweeps"].values():
        assert [entry["rank"] for entry in sweep["ranks"]] == [1, 2, 4, 10, 100]
        assert len(sweep["runs"]) == 5
    for entry in payload["init"].values():  # NaN (no drop in 60 steps) is written as null
        assert len(entry["plateau_steps"]) == 4 and all(len(row) == 1 for row in entry["plateau_steps"])
    written = {p.name for p in tmp_path.iterdir()}
    assert {"summary.json", "plateau_vs_init.png", "rank_sweep_mse_gd.png", "rank_sweep_ce_adam.png"} <= written


def test_measure_picks_one_matrix_of_a_stack_by_index(tmp_path):
    angles = 2 * np.pi * np.arange(5) / 5
    pentagon = np.stack([np.cos(angles), np.sin(angles)])
    stack = np.stack([np.eye(2, 5), 2.0 * pentagon, np.eye(2, 5)])  # (3, 2, 5), like weights.npz's W
    np.savez(tmp_path / "weights.npz", W=stack)
    np.save(tmp_path / "one.npy", 2.0 * pentagon)
    picked = runner.invoke(app, ["measure", str(tmp_path / "weights.npz"), "--index", "1", "--json"])
    alone = runner.invoke(app, ["measure", str(tmp_path / "one.npy"), "--json"])
    picked, alone = result_of(picked, "measure"), result_of(alone, "measure")
    assert picked["index"] == 1 and picked["features_per_dimension_invariant"] == pytest.approx(2.5)
    for key in ("features_per_dimension", "feature_dimensionality", "feature_norms", "geometry"):
        assert picked[key] == alone[key]
    for flags, message in ((["--index", "3"], "--index 3: "), ([], "pick one with --index I")):
        result = runner.invoke(app, ["measure", str(tmp_path / "weights.npz"), *flags])
        assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_reproduce_intro_trains_into_its_default_store_and_reads_it_back(tmp_path, monkeypatch):
    from toylab.experiments import intro, tms
    from toylab.io import json_safe
    from toylab.sweeps import backends

    monkeypatch.chdir(tmp_path)  # the default store is under ./runs
    args = ["reproduce", "intro", "--seeds", "2", "--steps", "100", "--seed", "3", "--out", str(tmp_path / "out"),
            "--json"]
    first = runner.invoke(app, args)
    payload = result_of(first, "reproduce")
    assert len(payload["instances"]) == 20 and len(payload["best"]) == 10 and payload["study"]["study"] == "intro"
    store = intro.default_store(seeds=2, steps=100, seed=3)
    assert outputs_of(first) == {"folder": str(tmp_path / "out"), "store": str(store)}
    assert store.exists() and (tmp_path / "out" / "feature_vectors.png").exists()
    # A finished store is read back, nothing trained (the library call the command makes,
    # without writing the figures a second time).
    monkeypatch.setattr(backends, "train_chunk", lambda *_: pytest.fail("a finished store trained again"))
    again = tms.summarize(intro.run(seeds=2, steps=100, seed=3, progress=False))
    assert json_safe(again["best"]) == payload["best"]
    refused = runner.invoke(app, ["reproduce", "scurves", "--store", str(tmp_path / "x.sqlite")])
    assert refused.exit_code == 2 and "only the intro, linear, phase-n2m1, phase-n3m2, importance and dimensionality studies" \
        in refused.stderr


# -- choices, start-up, the envelope of the commands no other test runs ------------------------


def test_every_choice_is_the_librarys_own_list():
    from toylab.experiments import STUDIES, phase, scurve
    from toylab.sweeps.backends import BACKENDS
    from toylab.tasks.myopia import LEARNERS, SELECTIONS
    from toylab.tasks.lowrank import LOSSES, LowRankSpec
    from toylab.tasks.superposition import SuperpositionSpec
    from toylab.train import TrainConfig

    def literal(model, field):
        return list(typing.get_args(model.model_fields[field].annotation))

    expected = {cli.Output: literal(SuperpositionSpec, "output"), cli.Optimizer: literal(TrainConfig, "optimizer"),
                cli.Schedule: literal(TrainConfig, "schedule"), cli.CurveOptimizer: list(scurve.OPTIMIZERS),
                cli.Loss: list(LOSSES), cli.Init: literal(LowRankSpec, "init"), cli.TimeAxis: list(scurve.TIME_AXES),
                cli.Preset: list(phase.PRESETS), cli.Backend: list(BACKENDS), cli.StudyName: [*STUDIES, "all"],
                cli.Learner: list(LEARNERS), cli.PbtSelect: list(SELECTIONS)}
    for choice, values in expected.items():
        assert [member.value for member in choice] == values, choice


def test_help_and_bad_flags_answer_without_importing_jax():
    script = """
import sys
from toylab.cli import app
for args in (["--help"], ["tms", "--help"], ["tms", "--optimizer", "rmsprop"], ["reproduce", "nope"],
             ["scurve", "--init-scale", "tiny"], ["bogus"]):
    try:
        app(args, prog_name="toylab")
    except SystemExit as exit:
        print("exit", exit.code, file=sys.stderr)
print("jax imported:", "jax" in sys.modules)
"""
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert process.stdout.splitlines()[-1] == "jax imported: False", process.stderr
    assert [line.split()[1] for line in process.stderr.splitlines() if line.startswith("exit")] == \
        ["0", "0", "2", "2", "2", "2"]
    assert "--optimizer" in process.stdout and "adamw|adam|sgd" in process.stdout  # --help lists the choices


def test_scurve_json_envelope_and_time_axis(tmp_path):
    args = ["scurve", "--d", "6", "--singular-values", "3,1", "--init", "aligned", "--lr", "0.05",
            "--steps", "300", "--out", str(tmp_path), "--json"]
    linear = result_of(runner.invoke(app, args), "scurve")
    log = result_of(runner.invoke(app, [*args, "--time-axis", "log", "--overwrite"]), "scurve")
    assert [len(run["drops"]) for run in linear["runs"]] == [2] and len(log["runs"]) == 1
    refused = runner.invoke(app, [*args, "--time-axis", "sqrt"])
    assert refused.exit_code == 2 and "'sqrt' is not one of 'linear', 'log'" in refused.stderr


# -- the one error handler ----------------------------------------------------------------------


def test_ctrl_c_outside_a_sweep_is_one_line_and_status_130(tmp_path, monkeypatch):
    from toylab.experiments import tms

    def interrupted(**_):
        raise KeyboardInterrupt

    monkeypatch.setattr(tms, "run", interrupted)
    result = runner.invoke(app, ["tms", "--out", str(tmp_path / "x")])
    assert result.exit_code == 130 and result.stderr.strip() == "interrupted"


def test_every_toylab_error_is_one_line_and_status_2(monkeypatch):
    from toylab import arrays
    from toylab.errors import StoreError, TaskError, ToylabError

    for error in (ToylabError("a\nb"), StoreError("s"), TaskError("t")):
        def fail(*_, error=error, **__):
            raise error

        monkeypatch.setattr(arrays, "measure_file", fail)
        result = runner.invoke(app, ["measure", "W.npy", "--json"])
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr.splitlines() == [f"error: {' '.join(str(error).splitlines())}"]


def _from_a_terminal(command: list[str]) -> subprocess.Popen:
    """Start ``command`` with Ctrl-C's default action, as a shell's foreground job has it.

    A background job of a non-interactive shell (how CI may start the suite) inherits SIGINT
    ignored, and Python then installs no KeyboardInterrupt handler: the child resets it before
    exec (a preexec_fn would fork a multithreaded JAX process).
    """
    reset = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
             "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
    return subprocess.Popen([sys.executable, "-c", reset, *command[1:]], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _interrupt_when(process: subprocess.Popen, ready, timeout: float = 120) -> None:
    """SIGINT ``process`` once ``ready()`` holds (polled), as Ctrl-C in a terminal would."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and not ready():
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)


def _count(store, status: str) -> int:
    if not store.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)) as db, db:
            return db.execute("SELECT COUNT(*) FROM runs WHERE status = ?", (status,)).fetchone()[0]
    except sqlite3.OperationalError:  # created, but its tables not yet committed
        return 0


@pytest.mark.slow
def test_ctrl_c_in_a_sweep_exits_130_in_one_line_and_the_rerun_resumes(tmp_path):
    spec = tmp_path / "spec.toml"
    # 3000 steps a run: with a warm compile cache 300 steps let all chunks finish between two
    # polls of the store, and the interrupt came after the sweep had ended. 4 chunks: 3 are
    # left to interrupt, and the rerun trains only those.
    spec.write_text('task = "superposition"\nseeds = 2\n[task_params]\nn_features = 5\nn_hidden = 2\n'
                    "[axes]\nfeature_probability = [0.05, 0.2, 0.5, 1.0]\n"
                    "[train]\nsteps = 3000\nbatch_size = 64\nlr = 0.01\nelicit_steps = 5\n")
    store = tmp_path / "s.sqlite"
    command = [sys.executable, "-m", "toylab", "sweep", str(spec), "--store", str(store), "--chunk-size", "2"]
    process = _from_a_terminal(command)
    _interrupt_when(process, lambda: _count(store, "done") >= 2)
    done = _count(store, "done")
    assert process.returncode == 130 and done < 8, f"the interrupt should land mid-sweep (done={done})"
    assert process.stderr.read().splitlines() == [
        f"interrupted: finished runs are in {store}; rerun the same command to resume"]
    resumed = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=300)
    summary = result_of(resumed, "sweep")
    assert summary["done"] == 8 and summary["trained"] == 8 - done


def test_ctrl_c_in_phase_exits_130_in_one_line_and_the_rerun_resumes_with_the_json_envelope(tmp_path, monkeypatch):
    # The real signal reaches a real process in the sweep test above; here Ctrl-C lands (as
    # KeyboardInterrupt) while phase's one chunk trains, in this process: no second start-up.
    from toylab.sweeps import backends

    def pressed_ctrl_c(*_, **__):
        raise KeyboardInterrupt

    store = tmp_path / "phase.sqlite"
    args = ["phase", "--grid", "2", "--seeds", "2", "--steps", "50", "--store", str(store),
            "--out", str(tmp_path / "out")]
    with monkeypatch.context() as patched:
        patched.setattr(backends, "train_chunk", pressed_ctrl_c)
        interrupted = runner.invoke(app, args)
    assert interrupted.exit_code == 130 and interrupted.stdout == ""
    assert interrupted.stderr.splitlines() == [
        f"interrupted: finished runs are in {store}; rerun the same command to resume"]
    assert _count(store, "pending") + _count(store, "running") == 8 and not (tmp_path / "out").exists()
    resumed = runner.invoke(app, [*args, "--json"])
    payload = result_of(resumed, "phase")
    assert len(payload["cells"]) == 4 and payload["preset"] == "n2m1" and payload["store"] == str(store)
    assert (payload["sweep"]["done"], payload["sweep"]["trained"]) == (8, 8)
    assert outputs_of(resumed) == {"folder": str(tmp_path / "out"), "store": str(store)}
