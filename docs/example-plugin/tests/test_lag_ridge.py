"""lag_ridge passes mlf's contract suite and beats the naive forecasts on walmart."""

import numpy as np

from mlforecast_cli import get_model
from mlforecast_cli.data import split_panel
from mlforecast_cli.datasets import load_dataset
from mlforecast_cli.testing import ForecasterContract
from mlforecast_cli.trials.fit import REFIT, fit_and_score, task_info


class TestLagRidge(ForecasterContract):
    model_name = "lag_ridge"


def test_beats_naive_and_seasonal_naive_on_walmart():
    panel = load_dataset("walmart")
    horizon = 13
    test_start = split_panel(panel, horizon).test_start
    task = task_info(panel, horizon, seed=42, device="cpu", n_jobs=1)

    def mape(model, params):
        result = fit_and_score(get_model(model), params, task, panel, test_start, REFIT)
        return result.metrics["mape"], result.actuals

    params = {"alpha": 1.0, "window_size": 26, "scaler": "window", "calendar": True}
    ours, actuals = mape("lag_ridge", params)
    seasonal_naive, _ = mape("seasonal_naive", {"window_size": 1, "scaler": "none"})
    last = np.array([panel.y[s][test_start[s] - 1] for s in range(panel.n_series)])
    naive = 100 * np.mean(np.abs(actuals - last[:, None]) / np.abs(actuals))
    assert ours < naive
    assert ours < seasonal_naive
