"""Rich progress as Optuna callbacks: one live bar per model on one board.

A bar counts the trials this run adds (an enqueued first trial among them) and shows the best
value of the whole study, as the table after it does. Its clock runs from the start of its
model's search until the model's work is over (its refit, test and logging included, labelled
on the bar): until the next model's bar starts or the board closes.
"""

from __future__ import annotations

import math
import threading
from collections import Counter

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ..tracking.leaderboard import trials_text
from ..trials.optuna_study import TRIAL_STATES


class ElapsedColumn(ProgressColumn):
    """Time since the bar started, until it is stopped: tenths of a second under a minute (a
    search of fast trials takes well under one), then h:mm:ss."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        if elapsed is None:
            return Text("-", style="progress.elapsed")
        return Text(format_elapsed(elapsed), style="progress.elapsed")


REFIT_PHASE = "refit, test…"
"""What a bar shows once its search is over, while the model is refit, tested and logged."""
DONE_PHASE = "done"


class PhaseColumn(ProgressColumn):
    """``eta 0:01:05`` while the search runs, then the model's phase (refit and test, done)."""

    def __init__(self) -> None:
        super().__init__()
        self.remaining = TimeRemainingColumn()

    def render(self, task: Task) -> Text:
        phase = task.fields.get("phase")
        if phase:
            return Text(phase, style="progress.remaining")
        return Text.assemble("eta ", self.remaining.render(task))


def format_elapsed(seconds: float) -> str:
    """``0.4s``, ``12.3s``, then ``0:01:05``."""
    if seconds < 60:
        return f"{max(seconds, 0.0):.1f}s"
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class ProgressBoard:
    """A live display holding a bar per model; use as a context manager."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("best {task.fields[best]}"),
            ElapsedColumn(),
            PhaseColumn(),
            console=console,
            transient=False,
            refresh_per_second=4,
        )
        self._started = False

    def __enter__(self) -> ProgressBoard:
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            self._stop_clocks()
            self.progress.stop()
            self._started = False

    def _stop_clocks(self) -> None:
        for task in self.progress.tasks:
            if task.stop_time is None:
                self.progress.stop_task(task.id)
                if task.fields.get("phase") == REFIT_PHASE:
                    self.progress.update(task.id, phase=DONE_PHASE)

    def add(
        self, model: str, n_trials: int | None, metric_label: str, study, metric: str | None = None
    ) -> ModelProgress:
        """Add a bar for ``model``'s ``study`` (showing the board on the first); returns the
        bar's Optuna callback. It counts the trials this run adds: those already finished or
        running in the study are not counted, a waiting (enqueued) one is. With ``metric``
        the best trial shows that plain metric (its ``val_metrics``), not its selection score."""
        if not self._started:
            self.progress.start()
            self._started = True
        self._stop_clocks()  # the model before is done
        task = self.progress.add_task(escape(model), total=n_trials, counts="", best="-", phase="")
        return ModelProgress(self.progress, task, metric_label, study, metric)


class ModelProgress:
    """Optuna callback updating one bar from the study: this run's trials done (by any worker
    process), complete/pruned/failed, and the study's best value so far (earlier runs' trials
    included, as in the table)."""

    def __init__(
        self, progress: Progress, task, metric_label: str, study, metric: str | None = None
    ) -> None:
        self.progress = progress
        self.task = task
        self.metric_label = metric_label
        self.metric = metric
        self.study = study
        # a waiting trial (the space's enqueued first one) is this run's to run
        self.skip = {
            t.number for t in study.get_trials(deepcopy=False) if t.state.name != "WAITING"
        }
        self.counts: Counter[str] = Counter()
        self.best: float | None = None
        self._lock = threading.Lock()
        self._polling: threading.Event | None = None

    def __call__(self, study, trial) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Recount this run's trials, and the study's best, from the study's storage."""
        with self._lock:
            every = self.study.get_trials(deepcopy=False)
            trials = [t for t in every if t.number not in self.skip]
            self.counts = Counter(t.state.name for t in trials if t.state.is_finished())
            done = [
                t
                for t in every
                if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value)
            ]
            if done:
                minimize = self.study.direction.name == "MINIMIZE"
                best = (min if minimize else max)(done, key=lambda t: t.value)
                shown = (best.user_attrs.get("val_metrics") or {}).get(self.metric)
                self.best = best.value if shown is None else shown
            self.progress.update(
                self.task,
                completed=sum(self.counts.values()),
                counts=self._counts_text(),
                best=f"{self.metric_label} {self.best:.4g}" if self.best is not None else "-",
            )

    def poll(self, interval: float = 1.0) -> None:
        """Refresh every ``interval`` seconds from a background thread (other workers' trials)."""
        stop = self._polling = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    self.refresh()
                except Exception:  # the display must never break the study
                    continue

        threading.Thread(target=loop, name="mlf-progress", daemon=True).start()

    def stop_polling(self) -> None:
        if self._polling is not None:
            self._polling.set()

    def _counts_text(self) -> str:
        counts = {state: self.counts[state.upper()] for state in TRIAL_STATES}
        return trials_text(counts, styles=("green", "yellow", "red"))

    def finish(self, note: str = "") -> None:
        """The search is over: the bar ends at the trials run, counts the study's earlier
        finished trials (``+20 earlier``) so its sums match the table, and shows the refit."""
        self.stop_polling()
        self.refresh()
        task = self.progress.tasks[[t.id for t in self.progress.tasks].index(self.task)]
        earlier = sum(
            1
            for t in self.study.get_trials(deepcopy=False)
            if t.number in self.skip and t.state.is_finished()
        )
        if earlier:
            note = f" +{earlier} earlier" + note
        self.progress.update(
            self.task, total=task.completed, counts=self._counts_text() + note, phase=REFIT_PHASE
        )
