"""Sweeps: spec validation, resume after SIGKILL, divergence, extending a store, one-line errors."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cli_json import result_of
import numpy as np
import pytest
from typer.testing import CliRunner

import toylab
from toylab import sweeps
from toylab.cli import app
from toylab.errors import ConfigError
from toylab.store.files import arrays_folder

runner = CliRunner()
EXAMPLE = Path(__file__).parent.parent / "examples" / "sweep_tms.toml"

SPEC = """\
task = "superposition"
seeds = 2

[task_params]
n_features = 5
n_hidden = 2

[axes]
feature_probability = {probabilities}

[train]
steps = {steps}
batch_size = 64
lr = 0.01
elicit_steps = 5
"""


def write_spec(folder: Path, probabilities=(0.05, 0.3), steps=200, name="spec.toml") -> Path:
    path = folder / name
    path.write_text(SPEC.format(probabilities=list(probabilities), steps=steps))
    return path


def store_rows(path: Path) -> dict:
    """Everything a store holds that must not depend on interruptions, row for row.

    Left out: when things happened (specs.created, evaluations.wall_time) and how many tries a
    run took (runs.attempts).
    """
    with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db, db:
        return {
            "specs": db.execute("SELECT version, digest, spec FROM specs ORDER BY version").fetchall(),
            "runs": db.execute("SELECT id, key, cell, task_params, config, train, seed, chunk, status, loss, "
                               "metrics, diverged_step, error, arrays, arrays_size, arrays_sha256 "
                               "FROM runs ORDER BY id").fetchall(),
            "evaluations": db.execute("SELECT run, step, trigger, flops, compute, raw, elicited "
                                      "FROM evaluations ORDER BY run, step").fetchall(),
            "arrays": {p.name: p.read_bytes() for p in sorted(arrays_folder(path).iterdir())},
        }


# -- the spec -----------------------------------------------------------------------------------


def test_the_example_spec_loads_and_equals_the_same_spec_built_in_python():
    from_toml = sweeps.load_spec(EXAMPLE)
    in_python = sweeps.SweepSpec(
        task="superposition", seeds=3, seed=0, task_params={"n_features": 5, "n_hidden": 2},
        axes={"feature_probability": [0.03, 0.1, 0.3, 1.0], "importance": [0.8, [1.0] * 5]},
        train={"steps": 1000, "batch_size": 256, "lr": 0.01, "elicit_steps": 20},
        select={"metric": "loss", "mode": "min"})
    assert from_toml.digest == in_python.digest
    runs = in_python.runs()
    assert len(runs) == 4 * 2 * 3 and len({r.key for r in runs}) == len(runs)
    assert runs[3].config == {"feature_probability": 0.03, "importance": [1.0] * 5}


def test_train_and_task_axes_resolve_per_grid_point():
    spec = sweeps.SweepSpec(task="superposition", axes={"train.lr": [0.01, 0.1], "task.n_hidden": [1, 2],
                                                        "feature_probability": [0.5]})
    runs = spec.runs()
    assert [(r.train.lr, r.task_params["n_hidden"]) for r in runs] == [(0.01, 1), (0.01, 2), (0.1, 1), (0.1, 2)]
    assert len({r.group for r in runs}) == 4 and all(r.config == {"feature_probability": 0.5} for r in runs)


@pytest.mark.parametrize("fields, needle", [
    ({"task": "autoencoder"}, "unknown task 'autoencoder'; registered: lowrank, superposition"),
    ({"axes": {"feature_probability": [0.1, 1.5]}}, "feature_probability=1.5"),
    ({"axes": {"feature_probability": [0.1, 0.1]}}, "lists 0.1 twice"),
    ({"axes": {"feature_probability": []}}, "axes.feature_probability is empty"),
    ({"axes": {"train.lrate": [0.1]}, "fixed": {"feature_probability": 0.1}}, "TrainConfig has no field 'lrate'"),
    ({"axes": {"train.lr": [0.1, -1.0]}, "fixed": {"feature_probability": 0.1}}, "grid point train.lr=-1.0: lr=-1.0"),
    ({"task_params": {"n_feature": 5}}, "n_feature"),
    ({"task_params": {"n_hidden": 0}}, "n_hidden=0"),
    ({"seeds": 0}, "seeds=0"),
    ({"fixed": {"importance": 0.9}, "axes": {"feature_probability": [0.1], "importance": [0.5]}},
     "importance is both in [fixed] and an axis"),
    ({"select": {"metric": "accuracy"}}, "select.metric='accuracy'"),
    ({"axes": {"feature_probability": [0.1], "importance": [[1.0, 0.5]]}},
     "grid point feature_probability=0.1, importance=[1.0, 0.5]: importance has 2 values, expected n_features=5"),
])
def test_a_bad_spec_is_one_line_naming_the_value(fields, needle):
    base = {"task": "superposition", "axes": {"feature_probability": [0.1]}}
    with pytest.raises(ConfigError) as info:
        sweeps.SweepSpec(**{**base, **fields})
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text, needle", [
    ('task = "superposition"\nseeds = \n', "not valid TOML"),
    ('task = "nope"\n', "unknown task 'nope'"),
    ('task = "superposition"\n[axes]\nfeature_probability = [0.1, "dense"]\n', "dense"),
    ('task = "superposition"\ncolour = "red"\n[axes]\nfeature_probability = [0.1]\n', "colour"),
])
def test_cli_bad_spec_is_one_error_line_and_creates_no_store(tmp_path, text, needle):
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    result = runner.invoke(app, ["sweep", str(spec), "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert not (tmp_path / "s.sqlite").exists()


def test_cli_bad_options_are_one_error_line(tmp_path):
    spec = write_spec(tmp_path)
    for flags, needle in ((["--backend", "spark"], "'spark' is not one of 'local', 'ray'"),
                          (["--chunk-size", "0"], "--chunk-size=0"),
                          (["--address", "10.0.0.1:6379"], "needs --backend ray")):
        result = runner.invoke(app, ["sweep", str(spec), "--store", str(tmp_path / "s.sqlite"), *flags])
        assert result.exit_code == 2 and needle in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("address, needle", [
    ("127.0.0.1:1", "--address 127.0.0.1:1: nothing answers"),  # refused at once; ray.init retries for minutes
    ("nonsense", "--address nonsense: expected HOST:PORT"),
])
def test_a_bad_or_unreachable_ray_address_fails_in_one_line_before_any_store(tmp_path, address, needle):
    spec, store = write_spec(tmp_path), tmp_path / "s.sqlite"
    result = runner.invoke(app, ["sweep", str(spec), "--store", str(store), "--backend", "ray", "--address", address])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and needle in lines[0], result.stderr
    assert not store.exists()


# -- running, resuming ----------------------------------------------------------------------------


def test_sweep_cli_json_then_rerun_trains_nothing(tmp_path):
    spec, store = write_spec(tmp_path), tmp_path / "s.sqlite"
    first = runner.invoke(app, ["sweep", str(spec), "--store", str(store), "--json"])
    payload = result_of(first, "sweep")
    assert (payload["runs"], payload["done"], payload["trained"], payload["added"]) == (4, 4, 4, 4)
    assert [cell["feature_probability"] for cell in payload["best"]] == [0.05, 0.3]
    before = store_rows(store)
    again = result_of(runner.invoke(app, ["sweep", str(spec), "--store", str(store), "--json"]), "sweep")
    assert (again["trained"], again["chunks"], again["done"]) == (0, 0, 4)
    assert store_rows(store) == before

    data = toylab.load(store, arrays=True)
    assert list(data.runs["status"]) == ["done"] * 4 and data.runs["best"].sum() == 2
    best = data.best()
    for _, row in best.iterrows():  # the lowest loss of its grid point
        assert row["loss"] == data.runs[data.runs["cell"] == row["cell"]]["loss"].min()
    assert data.stack("W", best["run"]).shape == (2, 2, 5)
    assert set(data.arrays) == set(data.runs["run"]) and data.arrays[1]["b"].shape == (5,)
    history = data.evaluations[data.evaluations["run"] == 1]
    assert list(history["step"])[0] == 0 and list(history["step"])[-1] == 200
    assert {"loss", "elicited_loss", "features_per_dimension"} <= set(data.evaluations.columns)
    assert history["loss"].iloc[-1] == data.runs.set_index("run").at[1, "loss"]


def test_a_diverged_run_keeps_its_history_and_the_others_finish(tmp_path):
    spec = sweeps.SweepSpec(task="superposition", task_params={"n_features": 5, "n_hidden": 2},
                            fixed={"feature_probability": 0.1}, axes={"train.lr": [0.01, 100.0]}, seeds=2,
                            train={"steps": 200, "batch_size": 64, "optimizer": "sgd", "elicit_steps": 0})
    summary = sweeps.run(spec, store=tmp_path / "s.sqlite", progress=False)
    assert (summary.done, summary.diverged, summary.failed) == (2, 2, 0)
    data = toylab.load(tmp_path / "s.sqlite")
    diverged = data.runs[data.runs["status"] == "diverged"]
    assert list(diverged["train.lr"]) == [100.0, 100.0] and diverged["loss"].isna().all()
    assert diverged["arrays_file"].isna().all() and not diverged["best"].any()
    for _, run in diverged.iterrows():
        history = data.evaluations[data.evaluations["run"] == run["run"]]
        assert 0 < len(history) and history["step"].max() < run["diverged_step"] <= 200
        assert np.isfinite(history["loss"]).all()
    done = data.runs[data.runs["status"] == "done"]
    assert list(done["train.lr"]) == [0.01, 0.01] and done["best"].sum() == 1


def test_a_changed_spec_is_refused_unless_extended_and_then_only_new_runs_train(tmp_path):
    store = tmp_path / "s.sqlite"
    first = write_spec(tmp_path, probabilities=(0.05, 0.3))
    sweeps.run(first, store=store, progress=False)
    before = store_rows(store)

    more = write_spec(tmp_path, probabilities=(0.05, 0.3, 1.0), name="more.toml")
    result = runner.invoke(app, ["sweep", str(more), "--store", str(store)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert f"error: store {store} holds a different sweep (axes.feature_probability [0.05,0.3] → " \
           "[0.05,0.3,1.0]); use --extend to add runs or a new store" in result.stderr
    assert store_rows(store) == before

    longer = write_spec(tmp_path, probabilities=(0.05, 0.3, 1.0), steps=300, name="longer.toml")
    result = runner.invoke(app, ["sweep", str(longer), "--store", str(store), "--extend"])
    assert result.exit_code == 2 and "train.steps 200 → 300" in result.stderr and "new store" in result.stderr
    assert store_rows(store) == before

    summary = sweeps.run(more, store=store, extend=True, progress=False)
    assert (summary.added, summary.trained, summary.runs) == (2, 2, 6)
    after = store_rows(store)
    assert after["runs"][:4] == before["runs"] and after["evaluations"][: len(before["evaluations"])] == before["evaluations"]
    assert {k: after["arrays"][k] for k in before["arrays"]} == before["arrays"]
    assert sweeps.run(more, store=store, progress=False).trained == 0  # the extended spec resumes

    data = toylab.load(store)
    assert list(data.runs["feature_probability"]) == [0.05, 0.05, 0.3, 0.3, 1.0, 1.0]
    assert list(data.runs["cell"]) == [0, 0, 1, 1, 2, 2]


def test_more_seeds_extend_every_grid_point_in_new_chunks(tmp_path):
    store = tmp_path / "s.sqlite"
    base = dict(task="superposition", fixed={"feature_probability": 0.2}, axes={"importance": [1.0, 0.7]},
                train={"steps": 50, "batch_size": 64, "elicit_steps": 0})
    sweeps.run(sweeps.SweepSpec(**base, seeds=2), store=store, progress=False)
    summary = sweeps.run(sweeps.SweepSpec(**base, seeds=3), store=store, extend=True, progress=False)
    assert (summary.added, summary.trained) == (2, 2)
    runs = toylab.load(store).runs
    assert sorted(zip(runs["cell"], runs["seed"], strict=True)) == [(c, s) for c in (0, 1) for s in range(3)]
    assert set(runs.loc[runs["seed"] == 2, "chunk"]).isdisjoint(runs.loc[runs["seed"] < 2, "chunk"])


def test_lowrank_task_sweeps_too(tmp_path):
    spec = sweeps.SweepSpec(task="lowrank", task_params={"d": 6}, fixed={"rank": 2},
                            axes={"init_scale": [1e-3, 1e-1]},
                            train={"steps": 100, "optimizer": "sgd", "lr": 0.05, "elicit_steps": 0})
    summary = sweeps.run(spec, store=tmp_path / "s.sqlite", progress=False)
    assert summary.done == 2
    data = toylab.load(tmp_path / "s.sqlite", arrays=True)
    assert data.arrays[1]["factors/0"].shape == (6, 6)
    assert data.evaluations["singular_values"].iloc[0].shape == (6,)



def test_the_sweep_bar_moves_while_a_chunk_trains(tmp_path, monkeypatch):
    from toylab.sweeps import runner as sweep_runner

    fractions: list[float] = []
    original = sweep_runner._SweepProgress.training

    def spy(self, job, fraction):
        fractions.append(fraction)
        original(self, job, fraction)

    monkeypatch.setattr(sweep_runner._SweepProgress, "training", spy)
    summary = sweeps.run(write_spec(tmp_path), store=tmp_path / "s.sqlite", progress=False)
    assert summary.chunks == 1 and len(fractions) >= 2
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
