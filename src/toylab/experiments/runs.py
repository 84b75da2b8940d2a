"""What every study shares about its outputs: run folders, store folders, diverged instances.

A run folder is checked before anything trains (:func:`prepare_run_folder`) and created only
when the run is written (:meth:`RunFolder.create`): a refused command leaves nothing behind,
and a run never trains for minutes only to find it cannot be saved.

A *diverged* instance ended with a non-finite loss or non-finite weights. Studies keep it in
their summaries, flagged ``"diverged": true`` with its metrics null, and report every other
instance as if it had trained alone; :func:`divergence_warning` is the one line a command
prints about them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np

from toylab.errors import ConfigError
from toylab.io import nearest_creatable_folder
from toylab.train import TrainResult

__all__ = ["RunFolder", "prepare_run_folder", "default_run_folder", "check_writable", "created_parents",
           "diverged", "history_end", "divergence_warning"]

RUN_FILE = "summary.json"  # every study writes it: a folder holding one holds a run


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """A checked place for a run's files; nothing exists on disk until :meth:`create`.

    Attributes:
      path: the folder; for a default folder, the first free name when it was checked.
      overwrite: write into a folder that already holds files (replacing those of the same name).
      default: the name was chosen here, not given: :meth:`create` moves to the next free
        suffix if another run took this one in the meantime.
    """

    path: Path
    overwrite: bool = False
    default: bool = False

    def create(self) -> Path:
        """Create the folder (and its missing parents) and return it: call it when writing."""
        if not self.default:
            self.path.mkdir(parents=True, exist_ok=True)
            return self.path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # mkdir is atomic: of two runs that started in the same second, one gets each name.
        for candidate in _suffixed(self.path):
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return candidate
        raise AssertionError("unreachable: _suffixed never ends")  # pragma: no cover


def prepare_run_folder(out: str | Path | None, study: str, *, overwrite: bool = False,
                       root: str | Path = "runs") -> RunFolder:
    """Check where a run will be written, before it trains; create nothing.

    Args:
      out: the folder asked for (``--out``); ``None``: ``<root>/<study>-<UTC time>``, with a
        ``-2``, ``-3``, ... suffix when that name is taken.
      overwrite: accept a folder that already holds files (``--overwrite``).

    Raises:
      ConfigError: ``out`` is a file, or under one; a folder cannot be created or written
        there; or it already holds files and ``overwrite`` is off. The message names ``out``.
    """
    if out is None:
        path = default_run_folder(study, root)
        check_writable(path, f"run folder {path}")
        return RunFolder(path, overwrite=overwrite, default=True)
    path = Path(out)
    name = f"--out {path}"
    if path.is_dir():
        held = sorted(entry.name for entry in path.iterdir())
        if held and not overwrite:
            what = (f"already holds a run ({RUN_FILE})" if RUN_FILE in held else
                    f"is not empty (holds {len(held)} entr{'y' if len(held) == 1 else 'ies'}, e.g. {held[0]})")
            raise ConfigError(f"{name}: {what}; give a new folder or --overwrite")
    check_writable(path, name)
    return RunFolder(path, overwrite=overwrite)


def default_run_folder(study: str, root: str | Path = "runs") -> Path:
    """``runs/<study>-<UTC timestamp>``, or with ``-2``, ``-3``, ... when that name is taken."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return next(p for p in _suffixed(Path(root) / f"{study}-{stamp}") if not os.path.lexists(p))


def _suffixed(path: Path) -> Iterator[Path]:
    yield path
    k = 2
    while True:
        yield path.with_name(f"{path.name}-{k}")
        k += 1


def check_writable(path: str | Path, name: str) -> None:
    """Check that ``path`` is, or could be created as, a writable folder; leave nothing behind.

    The nearest existing folder on the way (``path`` itself, or a parent) must be a directory
    where a new entry can be made: a probe directory is created there and removed at once,
    which catches what permission bits do not (a read-only or special file system, ``/proc``).

    Raises:
      ConfigError: ``"<name>: ..."`` naming the file in the way or the folder that refuses.
    """
    try:
        nearest_creatable_folder(Path(path))
    except NotADirectoryError as exc:
        raise ConfigError(f"{name}: {exc.filename} is a file, not a folder") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot create a folder in {exc.filename} ({exc.strerror or exc})") from None


@contextlib.contextmanager
def created_parents(path: str | Path, name: str) -> Iterator[Path]:
    """Create the missing folders above ``path`` (a store's file) for the body of a ``with``.

    If the body raises and a folder made here is still empty (the command was refused before
    it wrote anything), the folder is removed again: a refused command leaves nothing behind.

    Raises:
      ConfigError: the folders cannot be created (named by ``name``, e.g. ``"--store x"``).
    """
    path = Path(path)
    check_writable(path.parent, name)
    missing = []
    parent = path.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        for folder in missing:  # deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty: it holds what the command did write
                break
        raise


# -- diverged instances ---------------------------------------------------------------------------


def diverged(result: TrainResult) -> np.ndarray:
    """Which instances diverged: a non-finite final loss or any non-finite weight, shape (models,)."""
    bad = ~np.isfinite(np.asarray(result.final.raw["loss"], dtype=float))
    for leaf in jax.tree.leaves(result.params):
        leaf = np.asarray(leaf)
        bad |= ~np.isfinite(leaf.reshape(leaf.shape[0], -1)).all(axis=1)
    return bad


def history_end(losses: np.ndarray) -> int:
    """How many evaluations of one instance's history to keep: up to and including its first
    non-finite loss (all of them when every loss is finite).

    Example:
      >>> history_end(np.array([1.0, 0.5, np.nan, np.nan])), history_end(np.array([1.0, 0.5]))
      (3, 2)
    """
    finite = np.isfinite(np.asarray(losses, dtype=float))
    return len(finite) if finite.all() else int(np.argmin(finite)) + 1


def divergence_warning(count: int, total: int, what: str = "instances",
                       consequence: str = "their metrics are null") -> str | None:
    """The one line a command prints on stderr when ``count`` of ``total`` diverged; ``None`` if none did.

    Example:
      >>> divergence_warning(1, 4)
      'warning: 1 of 4 instances diverged (non-finite loss or weights); their metrics are null'
      >>> divergence_warning(0, 4) is None
      True
    """
    if not count:
        return None
    return f"warning: {count} of {total} {what} diverged (non-finite loss or weights); {consequence}"
