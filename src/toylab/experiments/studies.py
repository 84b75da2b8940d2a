"""The reproducible studies by name, each able to run, summarize, save and report itself.

``toylab reproduce NAME`` is :func:`reproduce` with a study from :data:`STUDIES`; the Python
equivalent is the same call::

    from toylab.experiments.studies import reproduce
    done = reproduce("intro", "runs/intro", seeds=2, steps=500)
    done.summary["best"]  # what the command prints with --json

A study is one file (``experiments/intro.py``, ``experiments/scurves_paper.py``) holding its
settings, its command and its expected result; a :class:`Study` entry points at its functions.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toylab.errors import ConfigError
from toylab.experiments import capability, dimensionality, importance, intro, myopia, scurves_paper, tms
from toylab.experiments import linear, phase, rescale
from toylab.experiments.runs import prepare_run_folder

__all__ = ["Study", "STUDIES", "Reproduction", "reproduce"]


@dataclasses.dataclass(frozen=True)
class Study:
    """How to run one study and read its result. ``train`` takes ``seeds``, ``steps``, ``seed``
    and ``progress`` (and ``store`` where ``store`` is set) and returns what ``summarize``,
    ``write_run`` and ``tables`` read."""

    describe: Callable[[], dict[str, Any]]  # the settings, for summary.json and --json
    train: Callable[..., Any]
    summarize: Callable[[Any], dict[str, Any]]  # JSON-ready (NaN allowed)
    write_run: Callable[[Path, Any, dict[str, Any]], list[Path]]
    tables: Callable[[dict[str, Any]], list[Any]]  # rich renderables for a terminal
    warning: Callable[[dict[str, Any]], str | None]  # the line to print when runs diverged, else None
    store: Callable[..., Path] | None = None  # default store from seeds, steps, seed; None: no store


STUDIES: dict[str, Study] = {
    "intro": Study(describe=intro.describe, train=intro.run, summarize=tms.summarize,
                   write_run=tms.write_run, tables=tms.tables, warning=tms.warning, store=intro.default_store),
    "scurves": Study(describe=scurves_paper.describe, train=scurves_paper.run,
                     summarize=scurves_paper.summarize, write_run=scurves_paper.write_run,
                     tables=scurves_paper.tables, warning=scurves_paper.warning),
    "capability": Study(describe=capability.describe, train=capability.run, summarize=capability.summarize,
                        write_run=capability.write_run, tables=capability.tables, warning=capability.warning),
    "myopia": Study(describe=myopia.describe, train=myopia.run, summarize=myopia.summarize,
                    write_run=myopia.write_run, tables=myopia.tables, warning=myopia.warning),
    "linear": Study(describe=linear.describe, train=linear.run, summarize=tms.summarize,
                    write_run=tms.write_run, tables=tms.tables, warning=tms.warning, store=linear.default_store),
    **{f"phase-{name}": Study(describe=functools.partial(phase.study_describe, name),
                              train=functools.partial(phase.study_run, name), summarize=phase.public,
                              write_run=phase.study_write_run, tables=phase.study_tables,
                              warning=phase.warning, store=functools.partial(phase.study_store, name))
       for name in ("n2m1", "n3m2")},
    "rescale": Study(describe=rescale.study_describe, train=rescale.study_run, summarize=rescale.summarize,
                     write_run=rescale.write_run, tables=rescale.tables, warning=rescale.warning),
    "importance": Study(describe=importance.describe, train=importance.run, summarize=importance.summarize,
                        write_run=importance.write_run, tables=importance.tables, warning=importance.warning,
                        store=importance.default_store),
    "dimensionality": Study(describe=dimensionality.describe, train=dimensionality.run,
                            summarize=dimensionality.summarize, write_run=dimensionality.write_run,
                            tables=dimensionality.tables, warning=dimensionality.warning,
                            store=dimensionality.default_store),
}


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """What :func:`reproduce` did: the study's summary and where it was written."""

    study: str
    summary: dict[str, Any]  # {"study": describe(), **summarize(result)}
    folder: Path
    store: Path | None  # the results store, for a study that trains into one

    def tables(self) -> list[Any]:
        return STUDIES[self.study].tables(self.summary)

    def warning(self) -> str | None:
        """One line about the runs that diverged (their metrics are null), or None."""
        return STUDIES[self.study].warning(self.summary)


def study(name: str) -> Study:
    """The study called ``name``; a one-line error lists the others."""
    if name not in STUDIES:
        raise ConfigError(f"unknown study {name!r}; available: {', '.join(sorted(STUDIES))}")
    return STUDIES[name]


def reproduce(name: str, folder: str | Path | None = None, *, overwrite: bool = False,
              seeds: int | None = None, steps: int | None = None, seed: int = 0,
              store: str | Path | None = None, progress: bool | None = None) -> Reproduction:
    """Run the study ``name`` with its paper's settings and save it into ``folder``.

    Args:
      folder: the run folder (default: a new ``runs/<name>-<UTC time>``); checked before
        anything trains (:func:`toylab.experiments.runs.prepare_run_folder`), created when
        the run is written.
      overwrite: write into a folder that already holds files.
      seeds, steps: override the study's own (``None`` keeps them).
      store: the results store of a study that trains as a sweep (default: the study's,
        named after seeds and steps, so that rerunning resumes or reads it back).

    Raises:
      ConfigError: an unknown study, a store for a study that has none, a bad setting, or a
        folder that cannot be written or already holds a run (without ``overwrite``).
      Interrupted: Ctrl-C while a study trains into its store (which resumes).
    """
    chosen = study(name)
    options: dict[str, Any] = {k: v for k, v in {"seeds": seeds, "steps": steps}.items() if v is not None}
    if chosen.store is None and store is not None:
        with_store = [n for n, s in STUDIES.items() if s.store is not None]
        which = f"the {with_store[0]} study trains" if len(with_store) == 1 else \
            f"the {', '.join(with_store[:-1])} and {with_store[-1]} studies train"
        raise ConfigError(f"--store {store}: only {which} as a sweep into a store")
    if chosen.store is not None:
        store = Path(store) if store is not None else chosen.store(**options, seed=seed)
        options["store"] = store
    target = prepare_run_folder(folder, name, overwrite=overwrite)
    result = chosen.train(seed=seed, progress=progress, **options)
    summary = {"study": chosen.describe(), **chosen.summarize(result)}
    written = target.create()
    chosen.write_run(written, result, summary)
    return Reproduction(name, summary, written, store)
