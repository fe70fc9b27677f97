"""mlf-lag-ridge: registers the lag_ridge model with mlf."""

from mlforecast_cli import ModelSpec, hookimpl


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="lag_ridge",
            summary="Ridge regression on lags and calendar correcting the seasonal naive forecast",
            family="statistical",
            factory="mlf_lag_ridge.model:LagRidge",
            space="mlf_lag_ridge:space.yaml",
        )
    )
