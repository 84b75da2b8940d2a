"""A progress bar that appears only when a run is long enough to want one."""

from __future__ import annotations

import sys
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["LazyProgress", "StepCallback"]

# Runs expected to finish sooner than this print nothing: a flash of a bar is noise.
_SHOW_AFTER_SECONDS = 2.0


class LazyProgress:
    """A rich progress bar on stderr, started once the remaining time exceeds ~2 s.

    ``enabled=None`` decides by that estimate; ``True``/``False`` force it on or off.
    """

    def __init__(self, total_steps: int, *, enabled: bool | None = None, description: str = "training"):
        self.total_steps = total_steps
        self.enabled = enabled
        self.description = description
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> LazyProgress:
        return self

    def update(self, step: int, *, loss: float, eta_seconds: float) -> None:
        if self._progress is None:
            wanted = self.enabled if self.enabled is not None else eta_seconds > _SHOW_AFTER_SECONDS
            if not wanted or step >= self.total_steps:
                return
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4g}"), TimeRemainingColumn(),
                console=Console(file=sys.stderr), transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total_steps, loss=loss)
        self._progress.update(self._task, completed=step, loss=loss)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()


class StepCallback:
    """LazyProgress's interface around a caller's ``on_steps(steps_done)``: no bar of its own."""

    def __init__(self, on_steps: Callable[[int], None]):
        self.on_steps = on_steps

    def __enter__(self) -> StepCallback:
        return self

    def update(self, step: int, *, loss: float, eta_seconds: float) -> None:
        del loss, eta_seconds
        self.on_steps(step)

    def __exit__(self, *exc) -> None:
        pass
