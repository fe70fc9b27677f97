"""Conformal prediction intervals from the residuals of the rolling validation windows.

As mlforecast's ``PredictionIntervals``, a model needs to implement nothing: the residuals of
its best trial's validation forecasts give, per horizon step, the interval at each level.
Unlike mlforecast, the residuals are divided by each series' in-sample seasonal-naive MAE and
pooled over the series of a step: with one to three validation windows a quantile per series
would rest on one to three residuals. The intervals are equal-tailed: at level ``L`` each bound
comes from its own tail of the signed residuals at ``(100 + L) / 2`` %, so an error that is
more often above the forecast than below it (sales spikes) widens the upper side only. A
forecast's interval at step ``j`` is ``[forecast - below_j * scale, forecast + above_j * scale]``
of its series. A step with too few scores for a tail (a small panel) borrows those of its
nearest steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UsageError
from .held_out import HeldOut

if TYPE_CHECKING:
    from ..trials.objective import Objective
    from ..trials.refit import RefitResult

__all__ = [
    "DEFAULT_LEVELS",
    "ConformalScores",
    "bound_columns",
    "check_levels",
    "conformal_quantile",
    "conformal_scores",
    "min_scores",
]

DEFAULT_LEVELS = (80.0, 95.0)
"""Levels (percent) whose coverage and MSIS a study logs on test."""


@dataclass(frozen=True)
class ConformalScores:
    """Scaled validation residuals ``(actual - forecast) / scale``, sorted, per horizon step:
    ``scores[j]``."""

    scores: tuple[np.ndarray, ...]
    signed: bool = True
    """False in models saved by mlf before equal-tailed intervals: ``scores`` are then
    absolute residuals and the intervals symmetric, ``forecast ± quantile(L) * scale``."""

    def __setstate__(self, state: dict) -> None:
        # a model pickled before ``signed`` existed holds absolute residuals
        object.__setattr__(self, "__dict__", {"signed": False, **state})

    @property
    def horizon(self) -> int:
        return len(self.scores)

    def offsets(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        """``(below, above)``, each (horizon,): how far below and above the forecast the
        interval at ``level`` reaches, in units of the series' scale. Each is
        :func:`conformal_quantile` of its own tail's scores (the residuals for the upper
        bound, their negatives for the lower) at ``(100 + level) / 2`` %, and never negative:
        an interval holds its own forecast."""
        if not self.signed:
            width = conformal_quantile(self.scores, level)
            return width, width
        tail = (100.0 + float(level)) / 2.0
        above = conformal_quantile(self.scores, tail)
        below = conformal_quantile(tuple(-s[::-1] for s in self.scores), tail)
        return np.maximum(below, 0.0), np.maximum(above, 0.0)

    def bounds(
        self, forecast: np.ndarray, scale: np.ndarray, levels: Iterable[float]
    ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """``{level: (lo, hi)}`` around (n, h) ``forecast`` for series scales (n,)."""
        forecast = np.asarray(forecast, dtype=np.float64)
        h = forecast.shape[1]
        if h > self.horizon:
            raise ValueError(f"intervals are calibrated for {self.horizon} steps, not {h}")
        scale = np.asarray(scale, dtype=float)[:, None]
        out = {}
        for level in levels:
            below, above = self.offsets(level)
            out[float(level)] = (
                forecast - below[None, :h] * scale,
                forecast + above[None, :h] * scale,
            )
        return out


def conformal_quantile(scores: Sequence[np.ndarray], level: float) -> np.ndarray:
    """(horizon,) the ``ceil((m + 1) L)``-th smallest of the ``m`` sorted ``scores`` of each
    step (split conformal's finite-sample rank; the largest if past), pooled with the nearest
    steps' until ``m >= min_scores(level)``.

    A lower level may pool fewer steps; so that intervals stay nested, the quantile is at
    least the second-largest score of the next smaller pool, the largest that any lower level
    takes from it."""
    need = min_scores(level)
    horizon = len(scores)
    out = np.empty(horizon)
    for j in range(horizon):
        radius = _radius(scores, j, need)
        pooled = _pooled(scores, j, radius)
        m = len(pooled)
        rank = min(math.ceil((m + 1) * float(level) / 100.0), m)
        out[j] = pooled[rank - 1]
        if radius > 0:
            out[j] = max(out[j], _pooled(scores, j, radius - 1)[-2:][0])
    return out


def _radius(scores: Sequence[np.ndarray], step: int, need: int) -> int:
    """The smallest radius around ``step`` whose steps hold ``need`` scores (or all)."""
    for radius in range(len(scores)):
        near = scores[max(0, step - radius) : step + radius + 1]
        if sum(len(s) for s in near) >= need or len(near) == len(scores):
            return radius
    return 0


def _pooled(scores: Sequence[np.ndarray], step: int, radius: int) -> np.ndarray:
    """The sorted scores of the steps within ``radius`` of ``step``."""
    near = scores[max(0, step - radius) : step + radius + 1]
    return near[0] if len(near) == 1 else np.sort(np.concatenate(near))


def min_scores(level: float) -> int:
    """How many scores a step needs at ``level`` for its rank to lie below the largest, with
    one score to spare: ``(m + 1)(1 - L) >= 2``. 9 at 80 %, 19 at 90 %, 39 at 95 %, 79 at
    97.5 % (the tails of equal-tailed 80 and 95 % intervals)."""
    return math.ceil(2.0 / (1.0 - float(level) / 100.0) - 1.0 - 1e-9)


def conformal_scores(validation: HeldOut) -> ConformalScores:
    """The conformal scores of a validation table: ``(actual - forecast) / scale`` per step."""
    residual = (validation.actual - validation.forecast) / validation.scale
    return ConformalScores(
        tuple(np.sort(residual[validation.step == j]) for j in range(validation.horizon))
    )


def check_levels(levels: Iterable[float], flag: str = "--level") -> tuple[float, ...]:
    """``levels`` as floats, each strictly between 0 and 100, once each; a one-line
    :class:`UsageError` naming ``flag`` otherwise."""
    out: list[float] = []
    for level in levels:
        try:
            value = float(level)
        except (TypeError, ValueError):
            raise UsageError(f"{flag} {level!r} is not a number; pass e.g. {flag} 80") from None
        if not 0 < value < 100:
            raise UsageError(
                f"{flag} {level!r} is not a level in percent between 0 and 100; pass e.g. "
                f"{flag} 80 {flag} 95"
            )
        if value not in out:
            out.append(value)
    return tuple(out)


def bound_columns(level: float) -> tuple[str, str]:
    """``("lo-80", "hi-80")``: the output columns of the interval at ``level``."""
    return f"lo-{level:g}", f"hi-{level:g}"


def interval_metrics(
    conformal: ConformalScores, table: HeldOut, levels: Iterable[float] = DEFAULT_LEVELS
) -> dict[str, float]:
    """Coverage and MSIS at each level of the intervals around ``table``'s forecasts (one
    window, such as the test window's)."""
    from ..search.metrics import evaluate_intervals

    h = table.horizon
    forecast = table.forecast.reshape(-1, h)
    scale = table.scale.reshape(-1, h)[:, 0]
    bounds = conformal.bounds(forecast, scale, levels)
    return evaluate_intervals(table.actual.reshape(-1, h), bounds, scale)


@dataclass(frozen=True)
class StudyForecasts:
    """What a study keeps of its forecasts: the best trial's validation table, the refit's
    test table, the conformal scores, and the intervals' test metrics."""

    validation: HeldOut
    test: HeldOut
    conformal: ConformalScores
    test_metrics: dict[str, float]
    test_bounds: dict[float, tuple[np.ndarray, np.ndarray]]
    """``{level: (lo, hi)}`` around the refit's test predictions, rows as its windows."""
    ensemble: HeldOut | None = None
    """The forecasts on the ensemble windows (:func:`~.held_out.ensemble_windows`)."""


def study_forecasts(objective: Objective, study, refit: RefitResult) -> StudyForecasts:
    """The :class:`StudyForecasts` of a study whose best trial was refit (``refit``)."""
    from .held_out import best_validation, from_fits, series_scale

    validation = best_validation(objective, study)
    test_start = objective.split.test_start
    result = refit.result
    test = from_fits(objective.panel, [(result, test_start)])
    conformal = conformal_scores(validation)
    scale = series_scale(objective.panel, test_start)[result.windows.series]
    bounds = conformal.bounds(result.predictions, scale, DEFAULT_LEVELS)
    return StudyForecasts(validation, test, conformal, interval_metrics(conformal, test), bounds)
