"""``toylab reproduce all``: run the studies the findings need, check each finding, write the report.

Layout of the output folder ``DIR``::

    DIR/report.html              the report (see toylab.report.html)
    DIR/findings.json            one entry per finding: id, claim, source, expected, measured, passed, ...
    DIR/studies/<study>/         the study's run folder (summary.json, figures as SVG and PNG)
    DIR/studies/<study>/run.json written last: settings, seconds, command, machine; present = done
    DIR/stores/                  results stores of the studies that train as sweeps (intro)

Resuming: a study whose ``run.json`` holds the same settings is read back, not retrained; one
interrupted midway reruns (the intro study resumes inside its store, run by run). A study that
raises is recorded as failed (its findings fail with the error) and the others still run.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
from rich.table import Table

from toylab.errors import ConfigError, Interrupted
from toylab.experiments import studies
from toylab.experiments.findings import Finding, evaluate, select
from toylab.experiments.runs import check_writable
from toylab.io import atomic_write, json_safe
from toylab.report import html

__all__ = ["NOMINAL_SECONDS", "run_all", "machine", "tables"]

# Each study's run time on 2 CPU cores with its own settings (the study modules' docstrings):
# the progress line's ETA before any study has been timed.
NOMINAL_SECONDS = {"intro": 90.0, "scurves": 90.0, "capability": 230.0, "myopia": 108.0}
NOMINAL_SECONDS.update({"linear": 20.0, "phase-n2m1": 90.0, "phase-n3m2": 120.0, "rescale": 15.0})
# importance, dimensionality (one seed per probability): far from the 3 minutes asked (see the README).
NOMINAL_SECONDS.update({"importance": 240.0, "dimensionality": 480.0})
RUN_FILE = "run.json"


def machine() -> str:
    """One line naming where the studies ran: host, CPU cores, Python, JAX and its backend."""
    return (f"{platform.node()}: {os.cpu_count()} CPU cores ({platform.machine()}), Python "
            f"{platform.python_version()}, JAX {jax.__version__} on {jax.default_backend()}")


def _command(name: str, settings: dict[str, Any]) -> str:
    flags = [f"--{key} {value}" for key, value in settings.items() if value is not None and key != "seed"]
    if settings.get("seed"):
        flags.append(f"--seed {settings['seed']}")
    return " ".join(["toylab reproduce", name, *flags])


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _eta(remaining: Sequence[str], spent: dict[str, float]) -> str:
    """Seconds left: the remaining studies' nominal times, scaled by how the timed ones compared."""
    nominal = sum(NOMINAL_SECONDS[name] for name in spent)
    pace = sum(spent.values()) / nominal if nominal else 1.0
    seconds = pace * sum(NOMINAL_SECONDS.get(name, 60.0) for name in remaining)
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def run_all(out: str | Path, *, only: Sequence[str] | None = None, store: str | Path | None = None,
            seeds: int | None = None, steps: int | None = None, seed: int = 0, progress: bool | None = None,
            findings: Sequence[Finding] | None = None) -> dict[str, Any]:
    """Run every study the chosen findings need into ``out``, check them, write the report.

    Args:
      out: the output folder (see the module docstring); reused, so that a rerun resumes.
      only: finding ids (default: every registered finding).
      store: the folder for results stores (default ``out/stores``).
      seeds, steps, seed: passed to every study (``None`` keeps each study's own).
      findings: the findings to check instead of the registry's (a test plants a failing one).

    Returns:
      ``{"findings": [...], "studies": [...], "passed", "failed", "errors", "seconds", "report",
      "findings_file"}``; each finding has ``id``, ``claim``, ``source``, ``study``, ``expected``,
      ``measured``, ``passed``, ``agrees``, ``disagreement``, ``numbers``, ``figure`` (relative to
      ``out``), ``command`` and ``seconds`` (its study's run time).

    Raises:
      ConfigError: an unknown finding id, or an ``out`` or ``store`` that cannot be written.
    """
    chosen = list(findings) if findings is not None else select(only)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; give a folder (it is reused, so a rerun resumes)")
    check_writable(out, f"--out {out}")
    stores = Path(store) if store is not None else out / "stores"
    check_writable(stores, f"--store {stores}")
    names = [name for name in studies.STUDIES if any(f.study == name for f in chosen)]
    settings = {"seeds": seeds, "steps": steps, "seed": seed}
    started = time.perf_counter()
    done: dict[str, dict[str, Any]] = {}
    spent: dict[str, float] = {}
    for index, name in enumerate(names):
        try:
            done[name] = _run_study(name, out, stores, settings, progress, f"[{index + 1}/{len(names)}] {name}",
                                    f"about {_eta(names[index:], spent)} left in all")
        except (KeyboardInterrupt, Interrupted):
            kept = ", ".join(done) or "none"
            raise Interrupted(f"interrupted during {name}; finished studies ({kept}) are kept in {out}: "
                              "rerun the same command to resume") from None
        spent[name] = done[name]["seconds"]
    rows = []
    for finding in chosen:
        record = done[finding.study]
        measured = evaluate(finding, record["summary"]) if record["summary"] is not None else None
        figure = record["figures"].get(finding.figure)
        rows.append({
            "id": finding.id, "claim": finding.claim, "source": finding.source, "study": finding.study,
            "expected": finding.expected,
            "measured": measured.value if measured else f"study failed: {record['error']}",
            "passed": bool(measured and measured.passed), "agrees": finding.agrees,
            "disagreement": finding.disagreement, "numbers": measured.numbers if measured else {},
            "figure": figure, "command": record["command"], "seconds": record["seconds"],
        })
    result = {
        "findings": rows,
        "studies": [{key: value for key, value in record.items() if key != "summary"} for record in done.values()],
        "passed": sum(row["passed"] for row in rows), "failed": sum(not row["passed"] for row in rows),
        "errors": sum(record["error"] is not None for record in done.values()),
        "seconds": round(time.perf_counter() - started, 1),
        "report": str(out / "report.html"), "findings_file": str(out / "findings.json"),
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "findings.json", lambda f: f.write(json.dumps(json_safe(result), indent=1).encode()))
    html.write(out / "report.html", result)
    _say(f"{result['passed']} of {len(rows)} findings passed, {result['errors']} studies failed; "
         f"report: {result['report']}")
    return result


def tables(result: dict[str, Any]) -> list[Any]:
    """What ``toylab reproduce all`` prints: one row per finding, and where the report is."""
    table = Table(title=f"Findings: {result['passed']} of {len(result['findings'])} passed")
    for column in ("finding", "expected", "measured", ""):
        table.add_column(column)
    for row in result["findings"]:
        table.add_row(row["id"], row["expected"], row["measured"], "pass" if row["passed"] else "FAIL")
    return [table, f"report: {result['report']}"]


def _run_study(name: str, out: Path, stores: Path, settings: dict[str, Any], progress: bool | None,
               line: str, eta: str) -> dict[str, Any]:
    """Run one study into ``out/studies/<name>`` (or read back a finished one); never raises
    for the study's own failure, which is returned as ``error``."""
    folder = out / "studies" / name
    command = _command(name, settings)
    marker = folder / RUN_FILE
    if marker.is_file():
        record = json.loads(marker.read_text())
        if record.get("settings") == settings and (folder / "summary.json").is_file():
            _say(f"{line}: done before, read back ({record['seconds']:.0f} s when it ran)")
            return {**record, "summary": json.loads((folder / "summary.json").read_text()), "resumed": True}
    _say(f"{line}: running {command} ({eta})")
    options: dict[str, Any] = {}
    if studies.STUDIES[name].store is not None:
        defaults = {k: v for k, v in settings.items() if k != "seed" and v is not None}
        options["store"] = stores / studies.STUDIES[name].store(**defaults, seed=settings["seed"]).name
    started = time.perf_counter()
    error = None
    try:
        studies.reproduce(name, folder, overwrite=True, seeds=settings["seeds"], steps=settings["steps"],
                          seed=settings["seed"], progress=progress, **options)
    except (KeyboardInterrupt, Interrupted, ConfigError):
        raise  # Ctrl-C resumes on the next run; a bad setting is the caller's, not the study's
    except Exception as exc:  # noqa: BLE001 - one study's failure must not stop the others
        error = f"{type(exc).__name__}: {exc}"
        _say(f"{name} failed: {error}")
        traceback.print_exc(file=sys.stderr)
    seconds = round(time.perf_counter() - started, 1)
    figures = {path.stem: str(path.relative_to(out)) for path in sorted(folder.glob("*.svg"))} if error is None else {}
    record = {"study": name, "settings": settings, "seconds": seconds, "command": command, "machine": machine(),
              "folder": str(folder.relative_to(out)), "figures": figures, "error": error,
              "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "describe": studies.STUDIES[name].describe()}
    summary = None
    if error is None:
        summary = json.loads((folder / "summary.json").read_text())  # what the checks read, also on resume
        atomic_write(marker, lambda f: f.write(json.dumps(json_safe(record), indent=1).encode()))
    return {**record, "summary": summary, "resumed": False}
