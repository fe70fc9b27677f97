"""Conformal prediction intervals from the residuals of the rolling validation windows.

As mlforecast's ``PredictionIntervals``, a model needs to implement nothing: the absolute
residuals of its best trial's validation forecasts give, per horizon step, the half-width of
the interval at each level. Unlike mlforecast, the residuals are divided by each series'
in-sample seasonal-naive MAE and pooled over the series of a step: with one to three
validation windows a quantile per series would rest on one to three residuals. A forecast's
interval at level ``L`` and step ``j`` is ``forecast ± q_j(L) * scale`` of its series. A step
with too few scores for its level (a small panel) borrows those of its nearest steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .errors import UsageError
from .held_out import HeldOut

__all__ = [
    "DEFAULT_LEVELS",
    "ConformalScores",
    "bound_columns",
    "check_levels",
    "conformal_scores",
    "min_scores",
]

DEFAULT_LEVELS = (80.0, 95.0)
"""Levels (percent) whose coverage and MSIS a study logs on test."""


@dataclass(frozen=True)
class ConformalScores:
    """Scaled absolute validation residuals, sorted, per horizon step: ``scores[j]``."""

    scores: tuple[np.ndarray, ...]

    @property
    def horizon(self) -> int:
        return len(self.scores)

    def half_width(self, level: float) -> np.ndarray:
        """(horizon,) the scaled half-width at ``level``: the ``ceil((m + 1) L)``-th smallest
        of the ``m`` scores of a step (split conformal's finite-sample rank; the largest if
        past), pooled with the nearest steps' until ``m >= min_scores(level)``.

        A lower level may pool fewer steps; so that intervals stay nested, the half-width is
        at least the second-largest score of the next smaller pool, the widest that any
        lower level takes from it."""
        need = min_scores(level)
        out = np.empty(self.horizon)
        for j in range(self.horizon):
            radius = self.radius(j, need)
            pooled = self.pooled(j, radius)
            m = len(pooled)
            rank = min(math.ceil((m + 1) * float(level) / 100.0), m)
            out[j] = pooled[rank - 1]
            if radius > 0:
                out[j] = max(out[j], self.pooled(j, radius - 1)[-2:][0])
        return out

    def radius(self, step: int, need: int) -> int:
        """The smallest radius around ``step`` whose steps hold ``need`` scores (or all)."""
        for radius in range(self.horizon):
            near = self.scores[max(0, step - radius) : step + radius + 1]
            if sum(len(s) for s in near) >= need or len(near) == self.horizon:
                return radius
        return 0

    def pooled(self, step: int, radius: int) -> np.ndarray:
        """The sorted scores of the steps within ``radius`` of ``step``."""
        near = self.scores[max(0, step - radius) : step + radius + 1]
        return near[0] if len(near) == 1 else np.sort(np.concatenate(near))

    def bounds(
        self, forecast: np.ndarray, scale: np.ndarray, levels: Iterable[float]
    ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """``{level: (lo, hi)}`` around (n, h) ``forecast`` for series scales (n,)."""
        forecast = np.asarray(forecast, dtype=np.float64)
        h = forecast.shape[1]
        if h > self.horizon:
            raise ValueError(f"intervals are calibrated for {self.horizon} steps, not {h}")
        out = {}
        for level in levels:
            width = self.half_width(level)[None, :h] * np.asarray(scale, dtype=float)[:, None]
            out[float(level)] = (forecast - width, forecast + width)
        return out


def min_scores(level: float) -> int:
    """How many scores a step needs at ``level`` for its rank to lie below the largest, with
    one score to spare: ``(m + 1)(1 - L) >= 2``. 9 at 80 %, 39 at 95 %."""
    return math.ceil(2.0 / (1.0 - float(level) / 100.0) - 1.0 - 1e-9)


def conformal_scores(validation: HeldOut) -> ConformalScores:
    """The conformal scores of a validation table: ``|actual - forecast| / scale`` per step."""
    residual = np.abs(validation.actual - validation.forecast) / validation.scale
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
    from .metrics import evaluate_intervals

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


def study_forecasts(entry, panel, config, study, objective, refit) -> StudyForecasts:
    """The :class:`StudyForecasts` of a study whose best trial was refit (``refit``)."""
    from .held_out import best_validation, from_fits, series_scale
    from .split import split_panel

    validation = best_validation(entry, panel, config, study, objective)
    test_start = split_panel(panel, config.horizon, config.cv_windows).test_start
    result = refit.result
    test = from_fits(panel, [(result, test_start)])
    conformal = conformal_scores(validation)
    scale = series_scale(panel, test_start)[result.windows.series]
    bounds = conformal.bounds(result.predictions, scale, DEFAULT_LEVELS)
    return StudyForecasts(validation, test, conformal, interval_metrics(conformal, test), bounds)
