"""Fitting one configuration on one cut of the panel and scoring it, for either kind of model
(windows or whole series): the unit of work of a trial, the refit and the held-out tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..data.panel import Panel
from ..data.windows import Draw, WindowCache, actuals, train_windows
from ..models.baseline import seasonal_naive
from ..models.contract import SERIES, TaskInfo, Windows
from ..models.registry import ModelEntry
from ..search.space import SearchSpace
from ..services.threads import threads_per_trial
from .scoring import (
    REFIT,
    SEARCH,
    FitData,
    FitOptions,
    FitResult,
    TrialFailed,
    fit_only,
    fit_predict,
    refit_params_of,
    score,
)

__all__ = [
    "DEFAULT_SCALER",
    "DEFAULT_WINDOW_SIZE",
    "REFIT",
    "SEARCH",
    "FitOptions",
    "fit_and_score",
    "fit_whole_history",
    "min_train",
    "task_info",
]

DEFAULT_WINDOW_SIZE = 14
DEFAULT_SCALER = "window"
MAX_TRAIN_WINDOWS = 100_000
"""Training samples one fit sees at most (a seeded random draw beyond): the cost of a trial
stops growing with the panel; panels of up to a few thousand series are not sampled."""
MAX_TRAIN_METRIC_WINDOWS = 10_000
"""Training samples the train metrics are computed on at most (a seeded draw beyond): a
neural model's forward pass over 100,000 windows cost minutes per trial, more than its fit."""


def task_info(panel: Panel, horizon: int, *, seed: int, device: str, n_jobs: int) -> TaskInfo:
    """What a model is told about the task: horizon, season, sizes, seed, device, threads."""
    from ..data.calendar_features import n_calendar_features

    return TaskInfo(
        horizon=horizon,
        season_length=panel.season_length,
        n_series=panel.n_series,
        n_features=len(panel.columns.features),
        n_calendar=n_calendar_features(panel.freq),
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
    options: FitOptions = SEARCH,
) -> FitResult:
    """Fit ``params`` on every window before ``end`` and score the ``horizon`` steps after it.

    Every series with a point before ``end`` is forecast and scored; one with no training
    sample of its own (fewer than ``horizon + 1`` points before ``end``) is forecast by the
    seasonal naive instead of the model, and counted in ``naive_fallback``.

    With ``options.holdout`` the scored window is also handed to ``fit`` as validation data
    (search); without it (refit) the model sees only the training windows. With
    ``options.windows`` the windows come from (and stay in) that cache of the study's cuts:
    the same arrays as a fresh cut.
    """
    if entry.spec.input == SERIES:
        from .fit_series import fit_and_score_series

        return fit_and_score_series(entry, params, task, panel, end, options)
    window_size = int(params.get("window_size", DEFAULT_WINDOW_SIZE))
    scaler = str(params.get("scaler", DEFAULT_SCALER))
    horizon = task.horizon
    cuts = options.windows
    if cuts is None or cuts.panel is not panel:
        cuts = WindowCache(panel, max_bytes=0)  # nothing kept after this fit

    def training(max_samples: int) -> Windows:
        return cuts.train(end, window_size, horizon, scaler, Draw(max_samples, task.seed))

    train = training(MAX_TRAIN_WINDOWS)
    target = cuts.eval(end, window_size, horizon, scaler)
    data = FitData(train, target if options.holdout else None, target)
    model, raw, seconds = fit_predict(entry, params, task, data, options.report)
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
    if options.train_metrics:
        if len(train) > MAX_TRAIN_METRIC_WINDOWS:
            train = training(MAX_TRAIN_METRIC_WINDOWS)
        _, fitted = score(panel, train, np.asarray(model.predict(train), dtype=float), end)
    return FitResult(
        model=model,
        metrics=metrics,
        train_metrics=fitted,
        predictions=predictions,
        actuals=actuals(panel, target) if target.y is not None else None,
        windows=target,
        refit_params=refit_params_of(model),
        seconds=seconds,
        naive_fallback=int(fallback.sum()),
    )


def fit_whole_history(
    entry: ModelEntry, params: Mapping[str, Any], task: TaskInfo, panel: Panel
) -> tuple[Any, float]:
    """Fit ``params`` on every series' whole history, the production model: no window is
    left after it, so nothing is scored. A window model trains on every sample of the
    panel (drawn as in :func:`fit_and_score` beyond ``MAX_TRAIN_WINDOWS``), a whole-series
    model on the whole histories. Returns ``(model, seconds)``; a model that raises fails
    it with :class:`TrialFailed`."""
    end = panel.lengths
    if entry.spec.input == SERIES:
        from ..data.histories import make_histories

        return fit_only(entry, params, task, make_histories(panel, end, task.horizon))
    train = train_windows(
        panel,
        end,
        int(params.get("window_size", DEFAULT_WINDOW_SIZE)),
        task.horizon,
        scaler=str(params.get("scaler", DEFAULT_SCALER)),
        draw=Draw(MAX_TRAIN_WINDOWS, task.seed),
    )
    if len(train) == 0:
        raise TrialFailed(
            f"no series has {task.horizon + 1} points, so {entry.name} has no sample to fit on"
        )
    return fit_only(entry, params, task, train)


def min_train(entry: ModelEntry, space: SearchSpace | None) -> int | None:
    """Training steps every series needs before its first fold: whole-series models 1; window
    models None, the split's own default (windows are padded, so ``window_size`` sets none)."""
    if entry.spec.input == SERIES:
        from .fit_series import MIN_HISTORY

        return MIN_HISTORY
    return None
