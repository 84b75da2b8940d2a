"""Output folders are checked before anything trains, and a refused command leaves nothing behind."""

from __future__ import annotations

import datetime
import json
import types
from pathlib import Path

import pytest
from cli_json import outputs_of, result_of
from typer.testing import CliRunner

from toylab.cli import app
from toylab.errors import ConfigError
from toylab.experiments import phase, runs
from toylab.train import trainer

runner = CliRunner()
TMS = ["tms", "--steps", "20", "--batch", "32", "--elicit-steps", "0"]
# Every command with --out, at settings that would train in seconds if the check let them.
COMMANDS = {
    "tms": TMS,
    "scurve": ["scurve", "--d", "4", "--steps", "20"],
    "reproduce": ["reproduce", "scurves", "--steps", "20", "--seeds", "1"],
    "phase": ["phase", "--grid", "2", "--seeds", "1", "--steps", "20"],
    "rescale-check": ["rescale-check", "--steps", "20", "--tms-steps", "20", "--tms-seeds", "1"],
}


@pytest.fixture
def no_training(monkeypatch):
    """Every training in this process (tms, scurve, studies, a local sweep) fails the test."""
    def trained(*_, **__):
        raise AssertionError("a refused command trained")

    monkeypatch.setattr(trainer, "_train", trained)


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", ["existing file", "under a file", "/proc"])
def test_a_bad_out_is_refused_before_training_in_one_line_naming_it(tmp_path, monkeypatch, no_training, command, case):
    monkeypatch.chdir(tmp_path)  # default stores go under ./runs: none may appear
    (tmp_path / "afile").write_text("mine")
    if case == "/proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    out, message = {
        "existing file": ("afile", "--out afile: afile is a file, not a folder"),
        "under a file": ("afile/sub", "--out afile/sub: afile is a file, not a folder"),
        # Root may write anywhere, but not create a folder in /proc: the probe sees what
        # permission bits would not.
        "/proc": ("/proc/toylab-x", "--out /proc/toylab-x: cannot create a folder in /proc"),
    }[case]
    before = _tree(tmp_path)
    result = runner.invoke(app, [*COMMANDS[command], "--out", out])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {message}"), line
    assert _tree(tmp_path) == before and (tmp_path / "afile").read_text() == "mine"


def test_a_folder_holding_a_run_is_refused_unless_overwrite(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text('{"old": true}')
    (out / "notes.txt").write_text("mine")
    with monkeypatch.context() as patched:
        patched.setattr(trainer, "_train", lambda *_, **__: pytest.fail("a refused command trained"))
        refused = runner.invoke(app, [*TMS, "--out", str(out)])
    assert refused.exit_code == 2 and refused.stderr.splitlines() == [
        f"error: --out {out}: already holds a run (summary.json); give a new folder or --overwrite"]
    assert (out / "summary.json").read_text() == '{"old": true}'

    written = runner.invoke(app, [*TMS, "--out", str(out), "--overwrite", "--json"])
    assert len(result_of(written, "tms")["instances"]) == 1 and outputs_of(written) == {"folder": str(out)}
    assert "instances" in json.loads((out / "summary.json").read_text())
    assert (out / "notes.txt").read_text() == "mine"  # --overwrite replaces the run's files, nothing else


def test_a_non_empty_folder_without_a_run_is_refused_too(tmp_path, no_training):
    (tmp_path / "data.csv").write_text("1,2")
    result = runner.invoke(app, [*TMS, "--out", str(tmp_path)])
    assert result.exit_code == 2 and result.stderr.splitlines() == [
        f"error: --out {tmp_path}: is not empty (holds 1 entry, e.g. data.csv); give a new folder or --overwrite"]


def test_an_empty_existing_folder_is_used(tmp_path):
    result = runner.invoke(app, [*TMS, "--out", str(tmp_path), "--json"])
    assert outputs_of(result) == {"folder": str(tmp_path)} and (tmp_path / "weights.npz").exists()


def test_the_default_folder_takes_a_free_name_when_two_runs_start_in_the_same_second(tmp_path, monkeypatch):
    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(runs, "datetime", types.SimpleNamespace(datetime=Frozen, UTC=datetime.UTC))
    first = runs.prepare_run_folder(None, "tms", root=tmp_path / "runs")
    second = runs.prepare_run_folder(None, "tms", root=tmp_path / "runs")
    assert first.path == second.path == tmp_path / "runs" / "tms-20250102-030405"
    assert not (tmp_path / "runs").exists()  # checked, not created
    # Both were checked before either wrote; the second to write moves on to the next name.
    assert first.create() == tmp_path / "runs" / "tms-20250102-030405"
    assert second.create() == tmp_path / "runs" / "tms-20250102-030405-2"
    assert runs.prepare_run_folder(None, "tms", root=tmp_path / "runs").path.name == "tms-20250102-030405-3"


def test_refused_phase_commands_leave_no_runs_folder(tmp_path, monkeypatch, no_training):
    monkeypatch.chdir(tmp_path)
    for args, message in ((["--grid", "0"], "error: grid=0: expected an integer ≥ 2"),
                          (["--seeds", "0"], "error: seeds=0"),
                          (["--grid", "2", "--out", "x/y", "--store", "/proc/toylab.sqlite"],
                           "error: --store /proc/toylab.sqlite: cannot create a folder in /proc")):
        result = runner.invoke(app, ["phase", *args])
        assert result.exit_code == 2 and result.stderr.startswith(message), result.stderr
        assert list(tmp_path.iterdir()) == []


def test_a_sweep_refused_after_its_store_folder_was_made_takes_the_folder_back(tmp_path, monkeypatch):
    # sweeps.run checks its backend only after phase made the store's folder: the folder goes.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="--backend='bogus'"):
        phase.run("n2m1", grid=2, seeds=1, steps=5, backend="bogus")
    assert list(tmp_path.iterdir()) == []
    kept = tmp_path / "mine"
    kept.mkdir()
    with pytest.raises(ConfigError, match="--backend='bogus'"):
        phase.run("n2m1", grid=2, seeds=1, steps=5, backend="bogus", store=kept / "a" / "b" / "s.sqlite")
    assert _tree(tmp_path) == ["mine"]  # only what this call made is removed
