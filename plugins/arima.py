"""ARIMA per series, on statsforecast's ``AutoARIMA`` (Hyndman-Khandakar stepwise search).

The space searches the order limits the per-series search may reach (``max_p``, ``max_q``,
their seasonal ``max_P``, ``max_Q``, the differences ``max_d``) and whether seasonal models
are considered at all.
"""

from __future__ import annotations

from mlforecast_cli import ModelSpec, hookimpl

from ._params import STATS_PARAMS
from ._stats import STATS_INSTALL, StatsForecaster

LIMITS = ("max_p", "max_q", "max_P", "max_Q", "max_d", "max_D", "nmodels")
FLAGS = ("seasonal", "stepwise", "approximation")


class ARIMAForecaster(StatsForecaster):
    """``AutoARIMA`` with the searched limits; falls back to non-seasonal ARIMA."""

    def options(self) -> dict:
        p = self.params
        options = {k: int(p[k]) for k in LIMITS if k in p}
        options.update({k: bool(p[k]) for k in FLAGS if k in p})
        return options

    def check(self) -> None:
        for key in LIMITS:
            if key in self.params and int(self.params[key]) < 0:
                raise ValueError(f"{key} must be >= 0, got {self.params[key]!r}")

    def chain(self, season_length):
        from statsforecast.models import AutoARIMA

        options = self.options()
        seasonal = options.pop("seasonal", True) and season_length > 1
        first = AutoARIMA(season_length=max(1, int(season_length)), seasonal=seasonal, **options)
        out = [("ARIMA" + (" seasonal" if seasonal else ""), first)]
        if seasonal:
            out.append(("ARIMA without season", AutoARIMA(seasonal=False, **options)))
        return out


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="arima",
            summary="ARIMA per series, orders chosen by AutoARIMA within searched limits",
            family="statistical",
            factory="mlforecast_cli.plugins.arima:ARIMAForecaster",
            space="mlforecast_cli.spaces:arima.yaml",
            requires=("statsforecast",),
            install=STATS_INSTALL,
            extra_params=STATS_PARAMS,
            input="series",
        )
    )
