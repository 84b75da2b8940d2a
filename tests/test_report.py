"""``toylab reproduce all``: the findings registry, the report, and the report opened in a real browser.

One small report (two intro findings, 200 steps, 1 seed) is built once for the module; every
later call reuses its folder, which is also what resuming is: a finished study is read back.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import jax
import pytest
from typer.testing import CliRunner

from cli_json import result_of
from toylab.cli import app
from toylab.errors import ConfigError
from toylab.experiments import findings, studies
from toylab.experiments.findings import FINDINGS, Measured, select
from toylab.report import run_all

SMALL = {"steps": 200, "seeds": 1}
ONLY = ["intro-pentagon", "intro-elicitation-gap"]
ENTRY = {"id", "claim", "source", "expected", "measured", "passed", "figure", "command", "seconds"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce-all")
    return out, run_all(out, only=ONLY, progress=False, **SMALL)


def test_every_finding_names_a_study_a_figure_and_a_one_sentence_claim():
    assert len({f.id for f in FINDINGS}) == len(FINDINGS)
    for finding in FINDINGS:
        assert finding.study in studies.STUDIES, finding.id
        assert finding.claim.endswith(".") and finding.claim.count(". ") == 0, finding.id
        assert finding.source and finding.expected and finding.figure, finding.id
        assert finding.agrees == (finding.disagreement is None), finding.id
    with pytest.raises(ConfigError, match="unknown finding 'nope'; available: intro-pentagon, "):
        select(["intro-pentagon", "nope"])


def test_the_report_lists_each_chosen_finding_with_its_figure_and_command(report):
    out, result = report
    assert [row["id"] for row in result["findings"]] == ONLY
    on_disk = json.loads((out / "findings.json").read_text())
    assert [row["id"] for row in on_disk["findings"]] == ONLY
    for row in on_disk["findings"]:
        assert ENTRY <= set(row)
        assert (out / row["figure"]).is_file() and row["figure"].endswith(".svg")
        assert row["command"] == "toylab reproduce intro --seeds 1 --steps 200"
        assert row["seconds"] > 0
    page = (out / "report.html").read_text()
    assert page.count('class="badge ') == 2 * len(ONLY)  # the summary table and the study's table
    assert "<script" not in page
    # 200 steps are too few for the pentagon: the report says so instead of passing it.
    pentagon = result["findings"][0]
    assert pentagon["passed"] is False and "pentagon" not in pentagon["measured"].split(";")[0]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Chromium: apt-get install -y chromium")
def test_the_report_loads_in_headless_chromium_with_every_image_and_no_error(report):
    import browser

    out, _ = report
    shot = out / "first-screen.png"
    seen = browser.inspect(out / "report.html", shot, width=1280, height=900)
    figures = sorted(str(p.relative_to(out)) for p in (out / "studies" / "intro").glob("*.svg"))
    assert sorted(image["src"] for image in seen.images) == figures
    assert all(image["complete"] and image["naturalWidth"] > 0 for image in seen.images), seen.images
    assert seen.errors == []
    assert seen.title == "toylab findings: 1/2 passed" or seen.title.startswith("toylab findings: ")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (1280, 900)
    # The same inspection catches a broken page: a missing figure and a console error.
    broken = out / "broken.html"
    broken.write_text('<html><body><img src="studies/none.svg"><script>console.error("planted")</script>')
    bad = browser.inspect(broken, out / "broken.png")
    assert bad.images[0]["naturalWidth"] == 0
    assert any("none.svg" in e for e in bad.errors) and any("planted" in e for e in bad.errors)


def test_a_failing_check_fails_the_report_and_the_exit_status_without_retraining(report, monkeypatch):
    out, _ = report
    planted = dataclasses.replace(FINDINGS[0], id="planted-failure", check=lambda summary: Measured("planted", False))
    monkeypatch.setattr(findings, "FINDINGS", (*FINDINGS, planted))
    before = (out / "studies" / "intro" / "run.json").read_text()
    invoked = CliRunner().invoke(app, ["reproduce", "all", "--only", "planted-failure", "--out", str(out),
                                       "--steps", "200", "--seeds", "1", "--json"])
    result = result_of(invoked, "reproduce", ok=False)
    (row,) = result["findings"]
    assert ENTRY <= set(row) and row["id"] == "planted-failure"
    assert row["measured"] == "planted" and row["passed"] is False
    assert json.loads((out / "findings.json").read_text())["findings"][0]["passed"] is False
    assert 'planted-failure</a></td>' in (out / "report.html").read_text()
    (study,) = result["studies"]
    assert study["resumed"] is True and (out / "studies" / "intro" / "run.json").read_text() == before


def test_a_study_that_fails_is_reported_and_the_others_still_run(report, monkeypatch):
    out, _ = report

    def broken(**settings):
        raise RuntimeError("planted study failure")

    monkeypatch.setitem(studies.STUDIES, "scurves", dataclasses.replace(studies.STUDIES["scurves"], train=broken))
    result = run_all(out, only=["intro-elicitation-gap", "scurves-staircase"], progress=False, **SMALL)
    intro, scurves = result["findings"]
    assert scurves["measured"] == "study failed: RuntimeError: planted study failure" and not scurves["passed"]
    assert not intro["measured"].startswith("study failed") and result["errors"] == 1
    assert "study failed: RuntimeError: planted study failure" in (out / "report.html").read_text()
    assert not (out / "studies" / "scurves" / "run.json").exists()  # a rerun tries it again


def _finding(id_):
    return next(f for f in FINDINGS if f.id == id_)


def test_checks_read_constructed_summaries_exactly():
    def intro(values):
        return {"best": [{"feature_probability": 1 / (i + 1), "diverged": False, "dimensions_per_feature": v}
                         for i, v in enumerate(values)]}

    sticky = _finding("intro-sticky-dimensions").check
    assert sticky(intro([1.0, 0.98, 0.52, 0.49, 0.4])).passed
    # The intro study's own curve (seed 0): p = 0.72 has left the PCA solution, 0.044 below 1.
    measured = sticky(intro([1.0, 0.956, 0.549, 0.495, 0.489, 0.492, 0.351]))
    assert not measured.passed and (measured.numbers["run_at_1"], measured.numbers["run_at_half"]) == (1, 3)
    smooth = sticky(intro([1.0, 0.9, 0.8, 0.5, 0.3]))
    assert not smooth.passed and smooth.numbers["run_at_1"] == 1 and smooth.numbers["run_at_half"] == 1

    def row(m, ic):
        return {"n_features": 20, "n_hidden": m, "feature_probability": 0.1, "interpretable_capability": {"geometry": ic}}

    valley = _finding("capability-no-valley").check({"rows": [row(1, 0.2), row(2, 0.05), row(3, 0.3)]})
    assert not valley.passed and valley.numbers["largest_fall"] == pytest.approx(0.15)
    assert valley.numbers["at"] == (20, 0.1, 2)
    assert _finding("capability-no-valley").check({"rows": [row(1, 0.0), row(2, 0.0), row(3, 0.3)]}).passed
    # A smaller run that lacks what a check reads fails that finding, with the reason.
    missing = findings.evaluate(_finding("myopia-swap-removes"), {"arms": []})
    assert not missing.passed and missing.value.startswith("not measured: StopIteration")


@pytest.mark.slow
def test_killed_after_its_first_study_a_rerun_reads_that_study_back_and_completes_the_report(tmp_path):
    """SIGKILL `reproduce all` (a real process) once its first study is written; the rerun trains only the second."""
    out = tmp_path / "all"
    only = ["intro-pentagon", "linear-never-superposes"]  # intro, then linear: STUDIES order
    src = Path(findings.__file__).parent.parent.parent
    env = {**os.environ, "PYTHONPATH": str(src), "JAX_PLATFORMS": "cpu",
           "JAX_COMPILATION_CACHE_DIR": str(jax.config.jax_compilation_cache_dir),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    victim = subprocess.Popen([sys.executable, "-m", "toylab", "reproduce", "all", "--only", ",".join(only),
                               "--out", str(out), "--steps", "200", "--seeds", "1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first, second = (out / "studies" / name / "run.json" for name in ("intro", "linear"))
    deadline = time.monotonic() + 300
    try:
        while not first.exists():  # written atomically, last: present = the study is done
            assert victim.poll() is None, "reproduce all exited before its first study finished"
            assert time.monotonic() < deadline, "the first study did not finish in 300 s"
            time.sleep(0.02)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    assert victim.returncode == -signal.SIGKILL and not second.exists()  # killed midway, not after the end
    written = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in (out / "studies" / "intro").iterdir()}
    store = next((out / "stores").glob("intro-*.sqlite"))
    runs_before = _store_runs(store)

    result = run_all(out, only=only, progress=False, **SMALL)
    intro, linear = result["studies"]
    assert (intro["study"], intro["resumed"], linear["study"], linear["resumed"]) == ("intro", True, "linear", False)
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in written} == written
    assert _store_runs(store) == runs_before  # not one run of the store retrained either
    assert second.is_file() and [row["id"] for row in result["findings"]] == only
    page = (out / "report.html").read_text()
    for row in result["findings"]:
        assert (out / row["figure"]).is_file() and f'id="{row["study"]}"' in page
        assert not row["measured"].startswith(("study failed", "not measured"))


def _store_runs(store: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(store)) as db:
        return db.execute("SELECT * FROM runs ORDER BY 1").fetchall()


def test_the_new_checks_read_constructed_summaries_exactly():
    # n2m1: a disagreement next to a boundary is allowed, one away from it is not.
    expected = [["not_represented"] * 4, ["not_represented"] * 4, ["superposition"] * 4, ["superposition"] * 4]

    def n2m1(trained):
        cells = [{"phase": t, "closed_form_phase": e} for trow, erow in zip(trained, expected, strict=True)
                 for t, e in zip(trow, erow, strict=True)]
        return {"cells": cells, "densities": [0.1] * 4, "agreement": 0.0, "agreement_away_from_boundary": 0.0,
                "cells_away_from_boundary": 8}

    near = [row[:] for row in expected]
    near[1][2] = "superposition"  # row 1 borders row 2
    checked = _finding("phase-n2m1-closed-form").check(n2m1(near))
    assert checked.passed and checked.numbers["disagreeing_cells"] == [(1, 2)]
    assert checked.numbers["disagreeing_superposed"] == 1
    away = [row[:] for row in expected]
    away[0][0] = "dedicated"
    assert _finding("phase-n2m1-closed-form").check(n2m1(away)).numbers["disagreeing_away_from_boundary"] == [(0, 0)]
    assert not _finding("phase-n2m1-closed-form").check(n2m1(away)).passed

    # n3m2: rows are importances 0.5 and 2, columns densities 0.01 and 1.
    def n3m2(phases):
        return {"densities": [0.01, 1.0], "relative_importances": [0.5, 2.0],
                "cells": [{"phase": p} for row in phases for p in row]}

    predicted = [["superposition", "not_represented"], ["dedicated", "dedicated"]]
    assert _finding("phase-n3m2-diagram").check(n3m2(predicted)).passed
    dropped = _finding("phase-n3m2-diagram").check(n3m2([predicted[0], ["not_represented", "dedicated"]]))
    assert not dropped.passed and dropped.numbers["misses"] == ["p = 0.01, r = 2: dropped"]
    # A miss names the trained loss beside the candidates': (1 + r)p²/18 and min(v/3, p²/9), v = p/3 − p²/4.
    sparse = n3m2([["dedicated", "not_represented"], predicted[1]])
    sparse["cells"][0]["loss"] = 2e-5
    (line,) = _finding("phase-n3m2-diagram").check(sparse).numbers["misses"]
    assert line == "p = 0.01, r = 0.5: dedicated, not superposition (loss 2e-05; candidates: superposition " \
                   "8.33e-06, dedicated 1.11e-05)"

    # The schedule: the planned evaluations of a 100-step run, and one that skipped 16.
    def schedule(steps):
        history = [{"step": s, "trigger": t, "flops": 10.0 * s, "elicited_loss": 0.1, "loss": 0.1} for s, t in steps]
        return {"study": {"train": {"compute_factor": 4.0}}, "best": [{"feature_probability": 1.0, "history": history}]}

    planned = [(0, "init"), (1, "compute"), (4, "compute"), (16, "compute"), (64, "compute"), (100, "end")]
    on_time = _finding("intro-compute-schedule").check(schedule(planned))
    assert on_time.passed and on_time.numbers["compute_ratios"] == [4.0, 4.0, 4.0]
    assert not _finding("intro-compute-schedule").check(schedule(planned[:3] + planned[4:])).passed
