"""A study's plots drawn by a process of their own while the command logs the rest.

matplotlib's import and four figures cost about a second of CPU; drawn in a forked child,
they take the machine's other core while the parent logs the model and the forecasts. The
child draws from a snapshot of the study's trials in memory (never through the study's
storage, whose connections belong to the parent) and writes the PNG files and ``plots.json``;
the parent rebuilds the :class:`~.plots.PlotSet` from that index. Where ``fork`` is not
available (Windows, macOS's default), the plots are drawn in this process when waited for.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path

from ..search.metrics import DEFAULT_METRIC
from .plots import INDEX, ORDER, PlotSet, RefitForecast, study_plots

WAIT_S = 300.0
"""How long :meth:`PlotJob.result` waits for the drawing process before giving up on it."""


class PlotJob:
    """The plots of ``study`` being drawn into ``folder``; :meth:`result` waits for them."""

    def __init__(
        self,
        study,
        folder: str | Path,
        *,
        forecast: RefitForecast | None = None,
        metric: str = DEFAULT_METRIC,
    ) -> None:
        self.folder = Path(folder)
        self._draw = (study, forecast, metric)
        self._process = None
        if _can_fork():
            trials = study.get_trials(deepcopy=False)
            snapshot = (study.study_name, study.directions, trials)
            context = multiprocessing.get_context("fork")
            self._process = context.Process(
                target=_draw_snapshot,
                args=(snapshot, self.folder, forecast, metric),
                name="mlf-plots",
                daemon=True,
            )
            self._process.start()

    def cancel(self) -> None:
        """Stop drawing (the command is ending without the plots)."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join()

    def result(self, timeout: float = WAIT_S) -> PlotSet:
        """The plots drawn (and why the others were skipped); a drawing process that died or
        outlived ``timeout`` gives a set whose every plot is skipped with that reason."""
        if self._process is None:
            study, forecast, metric = self._draw
            return study_plots(study, self.folder, forecast=forecast, metric=metric)
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
            return _all_skipped(self.folder, f"not drawn within {timeout:g} s")
        try:
            index = json.loads((self.folder / INDEX).read_text())
        except (OSError, ValueError):
            code = self._process.exitcode
            return _all_skipped(self.folder, f"the drawing process ended with exit code {code}")
        files = {name: self.folder / name for name in index.get("files", [])}
        return PlotSet(self.folder, files=files, skipped=dict(index.get("skipped", {})))


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _draw_snapshot(snapshot, folder: Path, forecast: RefitForecast | None, metric: str) -> None:
    import signal

    import optuna

    # the command's own handlers (SIGTERM raising Terminated) are not this child's: it is
    # stopped with the command, quietly
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    name, directions, trials = snapshot
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name=name, directions=directions)
    study.add_trials(trials)
    study_plots(study, folder, forecast=forecast, metric=metric)


def _all_skipped(folder: Path, reason: str) -> PlotSet:
    return PlotSet(folder, skipped=dict.fromkeys(ORDER, reason))
