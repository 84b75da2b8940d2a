"""The command line: JSON contract, run folder, and one-line errors for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from toylab.cli import app

runner = CliRunner()
QUICK = ["--steps", "40", "--batch", "32", "--elicit-steps", "3"]


def test_tms_json_is_exactly_one_object_with_instances_and_best(tmp_path):
    result = runner.invoke(app, ["tms", "--n-features", "5", "--n-hidden", "2",
                                 "--feature-probability", "0.1,1", "--importance", "0.9",
                                 "--seeds", "2", "--out", str(tmp_path), "--json", *QUICK])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == {"instances", "best"}
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
    assert result.exit_code == 0, result.stderr
    history = json.loads(result.stdout)["instances"][0]["history"]
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
        (["--optimizer", "rmsprop"], "optimizer='rmsprop'"),
        (["--feature-probability", "dense"], "--feature-probability='dense'"),
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
    assert result.exit_code == 2 and "unknown study 'nonexistent'" in result.stderr


@pytest.mark.slow
def test_reproduce_scurves_writes_every_sweep_and_its_figures(tmp_path):
    result = runner.invoke(app, ["reproduce", "scurves", "--steps", "60", "--seeds", "1",
                                 "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
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
    assert picked.exit_code == 0 and alone.exit_code == 0, picked.stderr + alone.stderr
    picked, alone = json.loads(picked.stdout), json.loads(alone.stdout)
    assert picked["index"] == 1 and picked["features_per_dimension_invariant"] == pytest.approx(2.5)
    for key in ("features_per_dimension", "feature_dimensionality", "feature_norms", "geometry"):
        assert picked[key] == alone[key]
    for flags, message in ((["--index", "3"], "--index 3: "), ([], "pick one with --index I")):
        result = runner.invoke(app, ["measure", str(tmp_path / "weights.npz"), *flags])
        assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_reproduce_intro_trains_into_a_store_and_reads_it_back(tmp_path):
    args = ["reproduce", "intro", "--seeds", "2", "--steps", "100", "--store", str(tmp_path / "intro.sqlite"),
            "--out", str(tmp_path / "out"), "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.stderr
    payload = json.loads(first.stdout)
    assert len(payload["instances"]) == 20 and len(payload["best"]) == 10
    assert (tmp_path / "intro.sqlite").exists() and (tmp_path / "out" / "feature_vectors.png").exists()
    again = runner.invoke(app, args)  # a finished store: read back, nothing trained
    assert again.exit_code == 0 and json.loads(again.stdout)["best"] == payload["best"]
    refused = runner.invoke(app, ["reproduce", "scurves", "--store", str(tmp_path / "x.sqlite")])
    assert refused.exit_code == 2 and "only the intro study" in refused.stderr
