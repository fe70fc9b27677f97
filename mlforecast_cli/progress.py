"""Rich progress as Optuna callbacks: one live bar per model on one board."""

from __future__ import annotations

import math
import threading
from collections import Counter

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressBoard:
    """A live display holding a bar per model; use as a context manager."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._started = False

    def __enter__(self) -> ProgressBoard:
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            self.progress.stop()
            self._started = False

    def add(self, model: str, n_trials: int | None, metric_label: str) -> ModelProgress:
        """Add a bar for ``model`` (showing the board on the first) and return its callback."""
        if not self._started:
            self.progress.start()
            self._started = True
        task = self.progress.add_task(model, total=n_trials, counts="", best="-")
        return ModelProgress(self.progress, task, metric_label)


class ModelProgress:
    """Optuna callback updating one bar: trials done, complete/pruned/failed, best so far."""

    def __init__(self, progress: Progress, task, metric_label: str) -> None:
        self.progress = progress
        self.task = task
        self.metric_label = metric_label
        self.counts: Counter[str] = Counter()
        self.best: float | None = None
        self._lock = threading.Lock()

    def __call__(self, study, trial) -> None:
        with self._lock:
            self.counts[trial.state.name] += 1
            value = trial.value if trial.state.name == "COMPLETE" else None
            if value is not None and math.isfinite(value):
                minimize = study.direction.name == "MINIMIZE"
                if self.best is None or (value < self.best if minimize else value > self.best):
                    self.best = value
            self.progress.update(
                self.task,
                advance=1,
                counts=self._counts_text(),
                best=f"{self.metric_label} {self.best:.4g}" if self.best is not None else "-",
            )

    def _counts_text(self) -> str:
        c = self.counts
        return f"[green]{c['COMPLETE']}✓[/] [yellow]{c['PRUNED']}✂[/] [red]{c['FAIL']}✗[/]"

    def finish(self, note: str = "") -> None:
        task = self.progress.tasks[[t.id for t in self.progress.tasks].index(self.task)]
        self.progress.update(self.task, total=task.completed, counts=self._counts_text() + note)
