"""What a finished sweep reports: its counts, the selection rule and the best seed of every grid point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from toylab.sweeps.load import load
from toylab.sweeps.runner import SweepSummary

__all__ = ["summarize", "tables"]


def summarize(summary: SweepSummary, store: str | Path) -> dict[str, Any]:
    """``summary``'s fields, the spec's ``select`` and ``best``: per grid point, in grid order,
    its axis values, the chosen ``run`` and ``seed`` and the selection metric's value."""
    data = load(store)
    metric, axes = data.spec["select"]["metric"], [name for name, _ in data.spec["axes"]]
    best = [{**{a: row[a] for a in axes}, "run": int(row["run"]), "seed": int(row["seed"]),
             metric: float(row[metric])} for _, row in data.best().iterrows()]
    return {**summary.to_dict(), "axes": axes, "select": data.spec["select"], "best": best}


def tables(report: dict[str, Any]) -> list[Any]:
    """The best seed of each grid point as a table, and a line of counts."""
    metric, axes = report["select"]["metric"], report["axes"]
    table = Table(title=f"Best seed per grid point ({report['select']['mode']} {metric})")
    for column in (*axes, "seed", metric):
        table.add_column(column, justify="right")
    for cell in report["best"]:
        table.add_row(*(str(cell[a]) for a in axes), str(cell["seed"]), f"{cell[metric]:.4g}")
    repaired = f", {report['repaired']} of them for a missing or damaged weight file" if report["repaired"] else ""
    counts = (f"{report['done']} done, {report['diverged']} diverged, {report['failed']} failed of "
              f"{report['runs']} runs ({report['trained']} trained now{repaired} in {report['seconds']:.1f} s); "
              f"store: {report['store']}")
    return [table, counts]
