"""Every study of a run selects on MAPE with each point capped (``--ape-cap``, default 100 %:
the error of forecasting zero), so a few series whose actuals fall near zero cannot decide the
search; the reported metric stays the plain one. With ``--ape-cap 0``, plain MAPE selects."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlforecast_cli.search.metrics import APE_CAP, capped_mape, mape, selection_score
from tests.plugin_factories import SPACE, MeanModel, spec_plugin

HORIZON = 6


def test_capped_mape_is_mape_below_the_cap_and_caps_each_point():
    y = np.array([[100.0, 200.0], [50.0, 0.0]])
    near = np.array([[110.0, 150.0], [60.0, 3.0]])
    assert capped_mape(y, near) == pytest.approx(mape(y, near))
    far = np.array([[110.0, 150.0], [5000.0, 3.0]])  # 9,900 % on one point
    assert mape(y, far) == pytest.approx((10 + 25 + 9900) / 3)
    assert capped_mape(y, far) == pytest.approx((10 + 25 + APE_CAP) / 3)
    assert np.isnan(capped_mape(y, np.array([[1.0, np.nan], [1.0, 1.0]])))
    assert np.isnan(capped_mape(np.zeros((1, 2)), np.ones((1, 2))))


def test_selection_score_caps_only_mape_and_only_with_a_cap():
    y = np.array([[1.0, 100.0]])
    yhat = np.array([[50.0, 100.0]])
    metrics = {"mape": mape(y, yhat), "smape": 12.5}
    assert selection_score("mape", y, yhat, metrics, APE_CAP) == pytest.approx(APE_CAP / 2)
    assert selection_score("mape", y, yhat, metrics) == pytest.approx(4900 / 2)
    assert selection_score("smape", y, yhat, metrics, APE_CAP) == 12.5
    assert np.isnan(selection_score("mase", y, yhat, metrics))  # not computed: not finite


@pytest.mark.parametrize("cap", [0, -5, float("inf"), True])
def test_a_bad_ape_cap_is_one_clear_line(cap):
    from mlforecast_cli.errors import UsageError
    from mlforecast_cli.trials.optuna_study import StudySettings

    with pytest.raises(UsageError, match="--ape-cap"):
        StudySettings(horizon=4, ape_cap=cap)


def test_the_cap_is_the_runs_not_a_spaces():
    from mlforecast_cli.errors import SpaceError
    from mlforecast_cli.search.space import parse_space
    from mlforecast_cli.trials.optuna_study import StudySettings

    assert StudySettings(horizon=4).ape_cap is None  # the plain MAPE, by default
    assert StudySettings(horizon=4, ape_cap=APE_CAP).ape_cap == APE_CAP
    with pytest.raises(SpaceError, match=r"optimizer\.ape_cap: .*--ape-cap PCT"):
        parse_space({"params": {}, "optimizer": {"ape_cap": 100}}, "s.yaml")


@pytest.fixture
def dip_csv(tmp_path):
    """Four monthly series near 100; one falls to 1 over the validation window only."""
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 48
    rows = []
    for sid in "ABCD":
        values = 100 + rng.normal(0, 3, n)
        if sid == "D":
            values[n - 2 * HORIZON : n - HORIZON] = 1.0
        dates = pd.date_range("2015-01-01", periods=n, freq="MS")
        rows += [{"id": sid, "date": d, "value": v} for d, v in zip(dates, values, strict=True)]
    path = tmp_path / "dip.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("cap", [True, False])
def test_search_selects_on_capped_mape_and_reports_the_plain_one(
    cli, registry, tmp_path, mlflow_uri, dip_csv, cap
):
    """Shrinking the forecast by 90 % wins plain validation MAPE (series D's 1s forecast at 100
    err by 9,900 %) but loses capped; with the cap the search keeps the unshrunk model, and its
    best value is still its plain MAPE; without it the shrunk one wins."""
    registry.add_plugin(spec_plugin("tiny", MeanModel, SPACE, tmp_path), name="tiny")
    sets = ["shrink=[0.0, 0.9]", "window_size=6", "scaler=none"]
    sets.append("optimizer.first_trial={shrink: 0.9}")
    result = cli(
        "optimize",
        "tiny",
        *("--data", str(dip_csv), "--target", "value", "--time-col", "date", "--id-col", "id"),
        *("--horizon", str(HORIZON), "--trials", "8", "--json"),
        *(("--ape-cap", "100") if cap else ()),
        *[arg for s in sets for arg in ("--set", s)],
    )
    assert result.code == 0, result
    [model] = json.loads(result.out)["models"]
    assert model["best_params"]["shrink"] == (0.0 if cap else 0.9)
    if cap:  # 6 of 24 validation points err by ~9,900 %: the plain MAPE, not the capped ~29 %
        assert model["best_value"] > 1000


def test_the_cap_is_part_of_the_study_identity(tmp_path):
    """A capped search is another metric: its own default study name, and a named study made
    with one cap refuses to resume with another."""
    from mlforecast_cli.datasets import load_dataset
    from mlforecast_cli.errors import UsageError
    from mlforecast_cli.models.registry import get_model
    from mlforecast_cli.optimize.plan import OptimizeConfig, plan_study
    from mlforecast_cli.trials.optuna_study import StudySettings, create_study

    panel = load_dataset("walmart")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"

    def config(cap, name=None):
        settings = StudySettings(horizon=4, ape_cap=cap, storage=storage, study_name=name)
        return plan_study(get_model("ets"), OptimizeConfig(settings, "walmart", "x", 1), panel)[0]

    assert config(None).study_name == "ets-walmart-h4-mape"
    assert config(APE_CAP).study_name == "ets-walmart-h4-mape-cap100"
    create_study(config(APE_CAP, "named"), panel)
    with pytest.raises(UsageError, match=r"another task \(ape_cap 100\.0 → None\)"):
        create_study(config(None, "named"), panel)
