"""Run folders: where a study writes (atomically, through :mod:`toylab.io`)."""

from __future__ import annotations

import datetime
from pathlib import Path

__all__ = ["default_run_folder"]


def default_run_folder(study: str, root: str | Path = "runs") -> Path:
    """``runs/<study>-<UTC timestamp>``: a new folder name for every run."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{study}-{stamp}"
