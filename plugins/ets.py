"""ETS (exponential smoothing state space models) per series, on statsforecast's ``AutoETS``.

The space searches the error, trend and season components (``Z``: chosen per series by
AICc, as statsforecast does) and the trend damping; all four at ``Z``/``auto`` is the
automatic ETS of Hyndman et al. (2008), run once since there is nothing to search.
"""

from __future__ import annotations

from mlforecast_cli import ModelSpec, hookimpl

from ._params import STATS_PARAMS
from ._stats import STATS_INSTALL, StatsForecaster

ERRORS = ("Z", "A", "M")
TRENDS = ("Z", "N", "A")
SEASONS = ("Z", "N", "A", "M")
DAMPED = ("auto", True, False)


class ETSForecaster(StatsForecaster):
    """``AutoETS(model=error+trend+season, damped)``; falls back to no season, then SES.

    A form ETS forbids (additive error with a multiplicative season; a damped trend without
    a trend) falls back for every series to the nearest allowed one (additive season; no
    damping), and the notes say so, rather than failing the trial.
    """

    def components(self) -> tuple[str, str, str]:
        p = self.params
        return str(p.get("error", "Z")), str(p.get("trend", "Z")), str(p.get("season", "Z"))

    def damped(self) -> bool | None:
        value = self.params.get("damped", "auto")
        return None if value in ("auto", None) else bool(value)

    def check(self) -> None:
        error, trend, season = self.components()
        for name, value, allowed in (
            ("error", error, ERRORS),
            ("trend", trend, TRENDS),
            ("season", season, SEASONS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} {value!r} is not one of {', '.join(allowed)}")
        if self.params.get("damped", "auto") not in DAMPED:
            raise ValueError(f"damped {self.params['damped']!r} is not one of auto, true, false")

    def chain(self, season_length):
        from statsforecast.models import AutoETS

        error, trend, season = self.components()
        damped = self.damped()
        label = f"ETS({error}{trend}{season}{', damped' if damped else ''})"
        out = []
        # forms ETS forbids stay in the chain as a first link no series can take, so every
        # series falls back to the nearest allowed form and the notes count them
        if error == "A" and season == "M":
            out.append((f"{label} (additive error, multiplicative season: not allowed)", None))
            season = "A"
        elif damped and trend == "N":
            out.append((f"{label} (damped without a trend: not allowed)", None))
            damped = False
        else:
            out.append((label, _ets(AutoETS, season_length, error + trend + season, damped)))
        if out[0][1] is None:
            out.append(
                (
                    f"ETS({error}{trend}{season})",
                    _ets(AutoETS, season_length, error + trend + season, damped),
                )
            )
        if season != "N":
            nonseasonal = "A" if error == "A" else error
            out.append(
                (f"ETS({nonseasonal}{trend}N)", _ets(AutoETS, 1, nonseasonal + trend + "N", damped))
            )
        out.append(("ETS(ZNN)", AutoETS(season_length=1, model="ZNN")))
        return out


def _ets(cls, season_length: int, model: str, damped: bool | None):
    return cls(season_length=max(1, int(season_length)), model=model, damped=damped)


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="ets",
            summary="Exponential smoothing (ETS) per series, automatic or searched components",
            family="statistical",
            factory="mlforecast_cli.plugins.ets:ETSForecaster",
            space="mlforecast_cli.spaces:ets.yaml",
            requires=("statsforecast",),
            install=STATS_INSTALL,
            extra_params=STATS_PARAMS,
            input="series",
        )
    )
