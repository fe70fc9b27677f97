"""The study loop: sample, fit, score, prune; then refit the best and score it once on test.

The runner prints and logs nothing itself: tracking and progress are Optuna callbacks
(``callback(study, frozen_trial)``) that the caller passes in.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .baseline import seasonal_naive
from .contract import SERIES, TaskInfo, Windows
from .errors import MlfError, described, traceback_text
from .liveness import WORKER_ATTR, worker_stamp
from .metrics import metric_label, selection_score
from .outages import storage_errors
from .panel import Panel
from .registry import ModelEntry
from .scoring import (
    FitResult,
    TrialFailed,
    fit_predict,
    mean_metrics,
    refit_params_of,
    score,
)
from .space import SearchSpace
from .split import Split, split_panel
from .study import StudyConfig, create_study, jsonable
from .threads import threads_per_trial
from .windows import labels, make_windows

if TYPE_CHECKING:
    import optuna

DEFAULT_WINDOW_SIZE = 14
DEFAULT_SCALER = "window"
__all__ = [
    "WORKER_ATTR",
    "FitResult",
    "Objective",
    "RefitResult",
    "StudyConfig",
    "TrialFailed",
    "best_folds",
    "best_params",
    "build_objective",
    "fit_and_score",
    "min_train",
    "refit_best",
    "run_study",
    "score",
    "task_info",
]
MAX_TRAIN_WINDOWS = 100_000
"""Training samples one fit sees at most (a seeded random draw beyond): the cost of a trial
stops growing with the panel; panels of up to a few thousand series are not sampled."""
COLLECT_EVERY = 5.0
"""Seconds between the full garbage collections after trials (:meth:`Objective._collect`)."""
MAX_TRAIN_METRIC_WINDOWS = 10_000
"""Training samples the train metrics are computed on at most (a seeded draw beyond): a
neural model's forward pass over 100,000 windows cost minutes per trial, more than its fit."""


def task_info(panel: Panel, horizon: int, *, seed: int, device: str, n_jobs: int) -> TaskInfo:
    from .calendar_features import n_calendar_features

    n_calendar = n_calendar_features(panel.freq)
    return TaskInfo(
        horizon=horizon,
        season_length=panel.season_length,
        n_series=panel.n_series,
        n_features=len(panel.columns.features),
        n_calendar=n_calendar,
        feature_names=tuple(panel.columns.features),
        seed=seed,
        device=device,
        n_threads=threads_per_trial(n_jobs),
    )


def fit_and_score(
    entry: ModelEntry,
    params: Mapping[str, Any],
    task: TaskInfo,
    panel: Panel,
    end: np.ndarray,
    *,
    holdout: bool = True,
    report: Callable[[int, float], None] | None = None,
    train_metrics: bool = True,
) -> FitResult:
    """Fit ``params`` on every window before ``end`` and score the ``horizon`` steps after it.

    Every series with a point before ``end`` is forecast and scored; one with no training
    sample of its own (fewer than ``horizon + 1`` points before ``end``) is forecast by the
    seasonal naive instead of the model, and counted in ``naive_fallback``.

    With ``holdout`` the scored window is also handed to ``fit`` as validation data (search);
    without it (refit) the model sees only the training windows.
    """
    if entry.spec.input == SERIES:
        from .series_fit import fit_and_score_series

        return fit_and_score_series(entry, params, task, panel, end, holdout=holdout, report=report)
    window_size = int(params.get("window_size", DEFAULT_WINDOW_SIZE))
    scaler = str(params.get("scaler", DEFAULT_SCALER))
    horizon = task.horizon

    def train_windows(max_samples: int) -> Windows:
        return make_windows(
            panel,
            end,
            window_size,
            horizon,
            mode="train",
            scaler=scaler,
            max_samples=max_samples,
            seed=task.seed,
        )

    train = train_windows(MAX_TRAIN_WINDOWS)
    target = make_windows(panel, end, window_size, horizon, mode="eval", scaler=scaler)
    valid = target if holdout else None
    model, raw, seconds = fit_predict(entry, params, task, train, valid, target, report)
    expected = (len(target), horizon)
    if raw.shape != expected:
        raise TrialFailed(
            f"{entry.name}.predict returned shape {raw.shape}, expected {expected} "
            "(n_windows, horizon)"
        )
    fallback = np.asarray(end)[target.series] < horizon + 1  # no training sample of its own
    raw[fallback] = seasonal_naive(target)[fallback]
    if not np.all(np.isfinite(raw)):
        raise TrialFailed(f"{entry.name} predicted NaN or infinite values")
    predictions, metrics = score(panel, target, raw, end)
    fitted = {}
    if train_metrics:
        if len(train) > MAX_TRAIN_METRIC_WINDOWS:
            train = train_windows(MAX_TRAIN_METRIC_WINDOWS)
        _, fitted = score(panel, train, np.asarray(model.predict(train), dtype=float), end)
    return FitResult(
        model=model,
        metrics=metrics,
        train_metrics=fitted,
        predictions=predictions,
        actuals=labels(target) if target.y is not None else None,
        windows=target,
        refit_params=refit_params_of(model),
        seconds=seconds,
        naive_fallback=int(fallback.sum()),
    )


class Objective:
    """The Optuna objective of one study: the mean validation selection score over the CV folds
    (the metric itself; MAPE capped per point where the space sets ``optimizer.ape_cap``:
    :func:`metrics.selection_score`); the plain metrics are kept in the trial's
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
        self.started: set[int] = set()
        """Numbers of the trials this process has started."""
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
        import optuna

        self.started.add(trial.number)
        trial.set_user_attr(WORKER_ATTR, worker_stamp())
        params = self.config.space.suggest(trial)
        trial.set_user_attr("config", jsonable(params))

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
                folds.append(
                    fit_and_score(
                        self.entry,
                        params,
                        self.task,
                        self.panel,
                        fold.train_end,
                        report=report if i == 0 else None,
                        train_metrics=last,
                    )
                )
        except optuna.TrialPruned:
            _set_user_attrs(trial, training_time_s=time.perf_counter() - start)
            raise
        except Exception as exc:  # the trial fails (Optuna catches it), its reason is kept
            _set_user_attrs(
                trial,
                error=str(exc) if isinstance(exc, MlfError) else described(exc),
                traceback=traceback_text(exc),
                training_time_s=time.perf_counter() - start,
            )
            raise
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
        value = metrics.get(self.config.metric, float("nan"))
        if math.isfinite(value):
            value = float(
                np.mean(
                    [
                        selection_score(
                            self.config.metric,
                            f.actuals,
                            f.predictions,
                            f.metrics,
                            self.config.space.ape_cap,
                        )
                        for f in folds
                    ]
                )
            )
        if not math.isfinite(value):
            message = f"validation {metric_label(self.config.metric)} is {value}"
            trial.set_user_attr("error", message)
            raise TrialFailed(message)
        if self.kept is None or value < self.kept[1]:
            ends = [fold.train_end for fold in self.split.folds]
            fits = [dataclasses.replace(f, model=None) for f in folds]
            self.kept = (trial.number, value, list(zip(fits, ends, strict=True)))
        return value


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


def build_objective(entry: ModelEntry, panel: Panel, config: StudyConfig) -> Objective:
    """The objective of ``config``'s study; checks the panel is long enough first."""
    split = split_panel(
        panel, config.horizon, config.cv_windows, min_train=min_train(entry, config.space)
    )
    task = task_info(
        panel, config.horizon, seed=config.seed, device=config.device, n_jobs=config.n_jobs
    )
    return Objective(entry, panel, split, config, task)


def run_study(
    entry: ModelEntry,
    panel: Panel,
    config: StudyConfig,
    *,
    n_trials: int | None,
    timeout: float | None = None,
    callbacks: Iterable[Callable[..., None]] = (),
    study=None,
    objective: Objective | None = None,
    until_total: int | None = None,
):
    """Add ``n_trials`` trials to the study (created or resumed), or with ``until_total`` run
    trials until the study holds that many (counting other processes' running ones).

    A storage lost mid-study (a database gone, a full disk under the journal) raises
    :class:`~mlforecast_cli.errors.ServiceLost` naming it; the trial that was running stays
    RUNNING there until the next command reaps it (``liveness.reap_dead_trials``)."""
    import optuna

    objective = objective or build_objective(entry, panel, config)
    study = study if study is not None else create_study(config, panel)[0]
    callbacks = list(callbacks)
    if until_total is not None:
        if len(study.get_trials(deepcopy=False)) >= until_total:
            return study
        callbacks.append(optuna.study.MaxTrialsCallback(until_total, states=None))
    with storage_errors(config.storage):  # a trial's own errors are caught by Optuna
        study.optimize(
            objective,
            n_trials=n_trials,
            timeout=timeout,
            n_jobs=1,  # parallel trials run in worker processes (workers.py), not threads
            catch=(Exception,),
            callbacks=callbacks,
            gc_after_trial=False,
        )
    return study


def min_train(entry: ModelEntry, space: SearchSpace) -> int | None:
    """Training steps every series needs before its first fold: whole-series models 1; window
    models None, the split's own default (windows are padded, so ``window_size`` sets none)."""
    if entry.spec.input == SERIES:
        from .series_fit import MIN_HISTORY

        return MIN_HISTORY
    return None


def planned_trials(space: SearchSpace, study, trials: int) -> int:
    """Trials to add: ``trials``, but one for a space with nothing to search (every trial
    would be the same), and none when the study already has that one complete."""
    if space.searchable:
        return trials
    done = any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    return 0 if done else 1


@dataclass
class RefitResult:
    """The best configuration refit on train + valid and scored once on the test window."""

    params: dict[str, Any]
    test_metrics: dict[str, float]
    train_metrics: dict[str, float]
    result: FitResult
    task: TaskInfo

    @property
    def naive_fallback(self) -> int:
        """Test series forecast by the seasonal naive (too short to give a training sample)."""
        return self.result.naive_fallback


def best_params(study) -> dict[str, Any]:
    """The full configuration of the best trial, with what early stopping chose."""
    best = study.best_trial
    params = dict(best.user_attrs.get("config") or best.params)
    params.update(best.user_attrs.get("refit_params") or {})
    return params


def refit_best(entry: ModelEntry, panel: Panel, config: StudyConfig, study) -> RefitResult:
    """Fit the best trial's configuration on train + valid and score it once on test."""
    if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        raise MlfError(f"no trial of study '{config.study_name}' completed, so nothing to refit")
    params = best_params(study)
    split = split_panel(panel, config.horizon, config.cv_windows)
    task = task_info(panel, config.horizon, seed=config.seed, device=config.device, n_jobs=1)
    result = fit_and_score(entry, params, task, panel, split.test_start, holdout=False)
    return RefitResult(
        params=params,
        test_metrics=result.metrics,
        train_metrics=result.train_metrics,
        result=result,
        task=task,
    )
