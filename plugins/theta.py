"""Theta method per series, on statsforecast's ``AutoTheta``.

The space searches the variant (standard ``STM``, optimised ``OTM``, dynamic ``DSTM``,
dynamic optimised ``DOTM``, or ``auto``: the best of the four per series by in-sample MSE)
and how the season is taken out before (multiplicative or additive decomposition).
"""

from __future__ import annotations

from mlforecast_cli import ModelSpec, hookimpl

from ._params import STATS_PARAMS
from ._stats import STATS_INSTALL, StatsForecaster

VARIANTS = ("auto", "STM", "OTM", "DSTM", "DOTM")
DECOMPOSITIONS = ("multiplicative", "additive")


class ThetaForecaster(StatsForecaster):
    """``AutoTheta(model=variant, decomposition_type)``; falls back to no season."""

    def variant(self) -> str | None:
        value = str(self.params.get("variant", "auto"))
        return None if value == "auto" else value

    def check(self) -> None:
        variant = str(self.params.get("variant", "auto"))
        if variant not in VARIANTS:
            raise ValueError(f"variant {variant!r} is not one of {', '.join(VARIANTS)}")
        decomposition = str(self.params.get("decomposition", "multiplicative"))
        if decomposition not in DECOMPOSITIONS:
            raise ValueError(
                f"decomposition {decomposition!r} is not one of {', '.join(DECOMPOSITIONS)}"
            )

    def chain(self, season_length):
        from statsforecast.models import AutoTheta

        name = str(self.params.get("variant", "auto"))
        decomposition = str(self.params.get("decomposition", "multiplicative"))
        out = [
            (
                f"Theta {name}",
                AutoTheta(
                    season_length=max(1, int(season_length)),
                    decomposition_type=decomposition,
                    model=self.variant(),
                ),
            )
        ]
        if season_length > 1:
            out.append((f"Theta {name} without season", AutoTheta(model=self.variant())))
        return out


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="theta",
            summary="Theta method per series (standard, optimised, dynamic or automatic)",
            family="statistical",
            factory="mlforecast_cli.plugins.theta:ThetaForecaster",
            space="mlforecast_cli.spaces:theta.yaml",
            requires=("statsforecast",),
            install=STATS_INSTALL,
            extra_params=STATS_PARAMS,
            input="series",
        )
    )
