"""The seasonal naive baseline: each horizon step repeats the value one season earlier.

The reference row of every leaderboard. Where the history is shorter than a season it
falls back to the last observed value (the naive forecast).
"""

from __future__ import annotations

from mlforecast_cli import Forecaster, ModelSpec, hookimpl
from mlforecast_cli.models.baseline import seasonal_naive


class SeasonalNaive(Forecaster):
    """Forecast ``y[t + h] = y[t + h - season]``; the last value where that is unknown."""

    def fit(self, train, valid=None, report=None):
        return self

    def predict(self, windows):
        return seasonal_naive(windows)


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="seasonal_naive",
            summary="Repeats the value one season back (52 weeks, 12 months, 7 days, 24 hours)",
            family="baseline",
            factory="mlforecast_cli.plugins.seasonal_naive:SeasonalNaive",
            space="mlforecast_cli.spaces:seasonal_naive.yaml",
        )
    )
