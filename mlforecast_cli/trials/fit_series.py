"""The fit-and-score path of whole-series models (``ModelSpec(input="series")``).

The same folds, refit and metrics as window models: the scored horizon is the one
:func:`~mlforecast_cli.data.windows.make_windows` cuts in ``eval`` mode (unscaled, so the labels are
the data's values) and :func:`~mlforecast_cli.trials.scoring.score` computes every metric on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..data.histories import make_histories
from ..data.panel import Panel
from ..data.windows import actuals, make_windows
from ..models.contract import Histories, TaskInfo, Windows
from ..models.registry import ModelEntry
from .scoring import (
    SEARCH,
    FitData,
    FitOptions,
    FitResult,
    TrialFailed,
    fit_predict,
    refit_params_of,
    score,
)

__all__ = ["MIN_HISTORY", "fit_and_score_series", "scored_horizon"]

MIN_HISTORY = 1
"""Values a whole-series model needs before a fold's cut-off (the model copes with the rest)."""


def scored_horizon(panel: Panel, end: np.ndarray, horizon: int) -> Windows:
    """The ``horizon`` steps after ``end`` as unscaled windows: labels, series, step offsets."""
    return make_windows(panel, end, 1, horizon, mode="eval", scaler="none")


def fit_and_score_series(
    entry: ModelEntry,
    params: Mapping[str, Any],
    task: TaskInfo,
    panel: Panel,
    end: np.ndarray,
    options: FitOptions = SEARCH,
) -> FitResult:
    """Fit a whole-series model on the histories before ``end``, forecast the ``horizon``
    steps after it and score them. With ``options.holdout`` the model also gets those
    histories with their labels as ``valid`` (search); without it (refit) only the
    histories."""
    target = scored_horizon(panel, end, task.horizon)
    # a series with no point before `end` is neither fitted nor scored there
    train = make_histories(panel, end, task.horizon, series=target.series)
    truth = actuals(panel, target) if target.y is not None else None
    holdout = options.holdout and truth is not None
    valid = dataclasses.replace(train, y=truth) if holdout else None
    data = FitData(train, valid, train)
    model, raw, seconds = fit_predict(entry, params, task, data, options.report)
    check_forecast(entry.name, raw, train)
    predictions, metrics = score(panel, target, raw, end)
    return FitResult(
        model=model,
        metrics=metrics,
        train_metrics={},
        predictions=predictions,
        actuals=truth,
        windows=target,
        refit_params=refit_params_of(model),
        seconds=seconds,
        notes=list(getattr(model, "notes", None) or []),
    )


def check_forecast(name: str, raw: np.ndarray, histories: Histories) -> None:
    """Raise :class:`TrialFailed` unless ``raw`` is a finite ``(n_series, horizon)`` array."""
    expected = (len(histories), histories.horizon)
    if raw.shape != expected:
        raise TrialFailed(
            f"{name}.predict returned shape {raw.shape}, expected {expected} (n_series, horizon)"
        )
    if not np.all(np.isfinite(raw)):
        raise TrialFailed(f"{name} predicted NaN or infinite values")
