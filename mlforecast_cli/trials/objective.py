"""The Optuna objective of one study and the study loop: sample, fit every fold, score,
prune.

Nothing here prints or logs: tracking and progress are Optuna callbacks
(``callback(study, frozen_trial)``) that the caller passes in.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.panel import Panel
from ..data.split import Split
from ..data.windows import WindowCache
from ..errors import MlfError, ServiceLost, described, traceback_text
from ..models.contract import TaskInfo
from ..models.registry import ModelEntry
from ..search.metrics import metric_label, selection_score
from ..search.space import SearchSpace
from ..services.liveness import WORKER_ATTR, worker_stamp
from ..services.outages import storage_errors
from .fit import FitOptions, fit_and_score, task_info
from .optuna_study import StudyConfig, jsonable
from .repeats import EnqueueUntried, StopWhenExhausted, answer_repeat
from .scoring import FitResult, TrialFailed, mean_metrics

if TYPE_CHECKING:
    import optuna

__all__ = ["Objective", "best_folds", "build_objective", "planned_trials", "run_study"]

COLLECT_EVERY = 5.0
"""Seconds between the full garbage collections after trials (:meth:`Objective._collect`)."""


class Objective:
    """The Optuna objective of one study: the mean validation selection score over the CV folds
    (the metric itself; MAPE capped per point at the run's ``ape_cap``, one rule for every
    model: :func:`metrics.selection_score`); the plain metrics are kept in the trial's
    ``val_metrics``."""

    def __init__(
        self,
        entry: ModelEntry,
        panel: Panel,
        split: Split,
        config: StudyConfig,
        task: TaskInfo,
    ) -> None:
        self.entry = entry
        self.panel = panel
        self.split = split
        self.config = config
        self.task = task
        self.windows = WindowCache(panel)
        """The windows cut by this process's trials, for the next trials with the same cuts."""
        self.started: set[int] = set()
        """Numbers of the trials this process has started."""
        self.lost: ServiceLost | None = None
        """A service the trials need (a Dask cluster) lost in a trial: the study stops."""
        self.kept: tuple[int, float, list[tuple[FitResult, np.ndarray]]] | None = None
        """The best trial this process ran: number, value, its folds' fits (without the
        model) and ends, so its validation forecasts are kept without a fit again."""
        self.collected = time.perf_counter()
        gc.collect()
        gc.freeze()  # what lives now (imports, the panel) stays out of the later collections

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._trial(trial)
        finally:
            self._collect()

    def _collect(self) -> None:
        """A full garbage collection, at most every :data:`COLLECT_EVERY` seconds.

        A model library's objects in reference cycles (LightGBM's callbacks and ctypes
        handles) keep their memory until a full collection, which Python runs rarely: on M1
        monthly a 30-trial LightGBM study peaked at 1,099 MiB without this, 668 MiB with a
        collection after every trial. One costs 20-40 ms (the objects alive when the study
        started are frozen out of it), so a study of fast trials pays it every few seconds."""
        now = time.perf_counter()
        if now - self.collected >= COLLECT_EVERY:
            gc.collect()
            self.collected = time.perf_counter()

    def _trial(self, trial: optuna.Trial) -> float:
        self.started.add(trial.number)
        trial.set_user_attr(WORKER_ATTR, worker_stamp())
        params = self.config.space.suggest(trial)
        trial.set_user_attr("config", jsonable(params))
        repeated = answer_repeat(self.config.space, trial)
        if repeated is not None:  # a configuration the study has scored: no fit again
            return repeated
        folds = self._fit_folds(trial, params)
        metrics = mean_metrics([f.metrics for f in folds])
        _set_user_attrs(
            trial,
            val_metrics=metrics,
            train_metrics=folds[-1].train_metrics,
            training_time_s=sum(f.seconds for f in folds),
            refit_params=jsonable(folds[-1].refit_params),
            notes=folds[-1].notes,
            naive_fallback=folds[-1].naive_fallback,
        )
        value = self._selection_value(metrics, folds)
        if not math.isfinite(value):
            message = f"validation {metric_label(self.config.metric)} is {value}"
            trial.set_user_attr("error", message)
            raise TrialFailed(message)
        if self.kept is None or value < self.kept[1]:
            ends = [fold.train_end for fold in self.split.folds]
            fits = [dataclasses.replace(f, model=None) for f in folds]
            self.kept = (trial.number, value, list(zip(fits, ends, strict=True)))
        return value

    def _fit_folds(self, trial: optuna.Trial, params: dict[str, Any]) -> list[FitResult]:
        """``params`` fitted and scored on every fold, the first reporting to the pruner; a
        pruned or failed fit keeps its time (and reason) in the trial before it is raised."""
        import optuna

        def report(step: int, value: float) -> None:
            value = float(value)
            if not math.isfinite(value):
                return
            trial.report(value, int(step))
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} (value {value:.6g})")

        folds: list[FitResult] = []
        start = time.perf_counter()
        try:
            for i, fold in enumerate(self.split.folds):
                last = i == len(self.split.folds) - 1
                options = FitOptions(
                    report=report if i == 0 else None, train_metrics=last, windows=self.windows
                )
                folds.append(
                    fit_and_score(
                        self.entry, params, self.task, self.panel, fold.train_end, options
                    )
                )
        except optuna.TrialPruned:
            _set_user_attrs(trial, training_time_s=time.perf_counter() - start)
            raise
        except Exception as exc:  # the trial fails (Optuna catches it), its reason is kept
            if isinstance(exc, ServiceLost):
                self.lost = exc
            _set_user_attrs(
                trial,
                error=str(exc) if isinstance(exc, MlfError) else described(exc),
                traceback=traceback_text(exc),
                training_time_s=time.perf_counter() - start,
            )
            raise
        return folds

    def _selection_value(self, metrics: dict[str, float], folds: list[FitResult]) -> float:
        """The score the study minimises: the mean over folds of the metric (MAPE capped per
        point at the run's ``ape_cap``); NaN or infinite when the plain metric is."""
        value = metrics.get(self.config.metric, float("nan"))
        if not math.isfinite(value):
            return value
        config = self.config
        return float(
            np.mean(
                [
                    selection_score(
                        config.metric, f.actuals, f.predictions, f.metrics, config.ape_cap
                    )
                    for f in folds
                ]
            )
        )

    def stop_if_lost(self, study, trial) -> None:
        """An Optuna callback, after the others (the failed trial is logged): a service the
        trials need was lost in a trial, so stop the study with its error (exit 3) instead of
        failing every trial left."""
        if self.lost is not None:
            raise self.lost


def _set_user_attrs(trial, **attrs: Any) -> None:
    for key, value in attrs.items():
        if value or value == 0:
            trial.set_user_attr(key, value)


def best_folds(
    objective: Objective | None, number: int
) -> list[tuple[FitResult, np.ndarray]] | None:
    """The folds' fits and ends of trial ``number`` if ``objective`` kept them (its best)."""
    if objective is None or objective.kept is None or objective.kept[0] != number:
        return None
    return objective.kept[2]


def build_objective(
    entry: ModelEntry, panel: Panel, config: StudyConfig, split: Split
) -> Objective:
    """The objective of ``config``'s study on ``split`` (computed once, when it was planned)."""
    task = task_info(
        panel, config.horizon, seed=config.seed, device=config.device, n_jobs=config.n_jobs
    )
    return Objective(entry, panel, split, config, task)


def run_study(
    objective: Objective,
    study,
    *,
    n_trials: int | None,
    until_total: int | None = None,
    timeout: float | None = None,
    callbacks: Iterable[Callable[..., None]] = (),
):
    """Add ``n_trials`` trials to ``study``, or with ``until_total`` run trials until the
    study holds that many (counting other processes' running ones); a finite space's search
    ends once every configuration is tried (:mod:`.repeats`).

    A storage lost mid-study (a database gone, a full disk under the journal) raises
    :class:`~mlforecast_cli.errors.ServiceLost` naming it; the trial that was running stays
    RUNNING there until the next command reaps it (``liveness.reap_dead_trials``)."""
    import optuna

    callbacks = list(callbacks)
    if until_total is not None:
        if len(study.get_trials(deepcopy=False)) >= until_total:
            return study
        callbacks.append(optuna.study.MaxTrialsCallback(until_total, states=None))
    begun, start = len(objective.started), time.monotonic()

    def goes_on(study) -> bool:
        """Whether ``study.optimize`` will start another trial (checked after the callbacks
        that may stop it)."""
        if getattr(study, "_stop_flag", False):  # Study.stop() was called: Optuna's own flag
            return False
        if timeout is not None and time.monotonic() - start >= timeout:
            return False
        if until_total is not None:
            return len(study.get_trials(deepcopy=False)) < until_total
        return n_trials is None or len(objective.started) - begun < n_trials

    space = objective.config.space
    callbacks.append(StopWhenExhausted(space))
    callbacks.append(objective.stop_if_lost)
    callbacks.append(EnqueueUntried(space, objective.config.seed, goes_on))  # last
    with storage_errors(objective.config.storage):  # a trial's own errors are caught by Optuna
        study.optimize(
            objective,
            n_trials=n_trials,
            timeout=timeout,
            n_jobs=1,  # parallel trials run in worker processes (optimize.workers), not threads
            catch=(Exception,),
            callbacks=callbacks,
            gc_after_trial=False,
        )
    return study


def planned_trials(space: SearchSpace, study, trials: int) -> int:
    """Trials to add: ``trials``, but one for a space with nothing to search (every trial
    would be the same) and none when the study already has that one complete; for a space
    searched exhaustively (:meth:`~mlforecast_cli.search.space.SearchSpace.exhaustive`), the
    configurations no finished trial has tried."""
    import json

    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    if not space.searchable:
        return 0 if any(t.state.name == "COMPLETE" for t in finished) else 1
    if space.searched_exhaustively:
        tried = {json.dumps(t.params, sort_keys=True, default=str) for t in finished}
        return max(0, min(trials, space.size - len(tried)))
    return trials
