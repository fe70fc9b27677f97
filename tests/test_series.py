"""Whole-series models: ragged histories, the fit/score path, the statsforecast plugins, and one
trial for a space with nothing to search. Real data, real Optuna studies, a real MLflow store."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import optuna
import pandas as pd
import pytest

from mlforecast_cli import ModelSpec, SeriesForecaster, hookimpl
from mlforecast_cli.data.histories import make_histories, select
from mlforecast_cli.data.panel import Columns, load_panel
from mlforecast_cli.data.split import split_panel
from mlforecast_cli.datasets import load_dataset
from mlforecast_cli.models.registry import Registry
from mlforecast_cli.search.metrics import evaluate, mape, mase_scale
from mlforecast_cli.search.space import parse_space
from mlforecast_cli.services.storage import open_storage
from mlforecast_cli.testing import ForecasterContract
from mlforecast_cli.trials.fit import REFIT, fit_and_score, task_info
from mlforecast_cli.trials.objective import planned_trials
from tests.test_contract_suite import InlineYaml

M1 = "/work/shared/datasets"


class SeriesDrift(SeriesForecaster):
    """Last value plus the average slope of the last ``span`` values of each history."""

    def fit(self, train, valid=None, report=None):
        return self

    def predict(self, histories):
        out = np.empty((len(histories), histories.horizon))
        steps = np.arange(1, histories.horizon + 1)
        for i in range(len(histories)):
            y = histories.history(i)[-int(self.params["span"]) :]
            slope = (y[-1] - y[0]) / (len(y) - 1) if len(y) > 1 else 0.0
            out[i] = y[-1] + slope * steps
        return out


DRIFT_SPACE = InlineYaml("params:\n  span: {type: int, low: 2, high: 30}\n", "drift.yaml")


class DriftPlugin:
    @hookimpl
    def register_models(self, register):
        register(
            ModelSpec(
                name="series_drift",
                summary="drift over the last span values of each whole history",
                factory=SeriesDrift,
                space=DRIFT_SPACE,
                input="series",
            )
        )


def m1(name: str, n_series: int | None = None):
    frame = pd.read_csv(f"{M1}/{name}.csv")
    if n_series is not None:
        frame = frame[frame["id"].isin(frame["id"].unique()[:n_series])]
    return load_panel(frame, Columns(target="value", time="date", ids=("id",)), source=name)


# --------------------------------------------------------------------------- the data


def test_histories_lie_in_one_flat_array_with_offsets():
    panel = load_dataset("walmart")
    end = panel.lengths - 13
    hist = make_histories(panel, end, 13)
    assert len(hist) == panel.n_series and hist.horizon == 13
    assert hist.values.shape == (int(end.sum()),)  # no padding
    np.testing.assert_array_equal(hist.offsets, np.concatenate([[0], np.cumsum(end)]))
    assert hist.past_features.shape == (int(end.sum()), len(panel.columns.features))
    for i in range(panel.n_series):
        np.testing.assert_array_equal(hist.history(i), panel.y[i][: end[i]])
        np.testing.assert_array_equal(hist.future_times[i], panel.times[i][end[i] :])
        np.testing.assert_array_equal(hist.features[i], panel.features[i][end[i] :])
    assert hist.season_length == 52 and hist.y is None
    picked = select(hist, np.array([3, 0, 3]))
    assert len(picked) == 3 and list(picked.series) == [3, 0, 3]
    np.testing.assert_array_equal(picked.history(1), hist.history(0))
    np.testing.assert_array_equal(picked.history(2), hist.history(3))


def test_histories_past_the_end_get_the_next_times_on_the_grid():
    panel = load_dataset("walmart")
    hist = make_histories(panel, panel.lengths, 4)
    step = np.timedelta64(7, "D")
    for i in range(panel.n_series):
        expected = panel.times[i][-1] + step * np.arange(1, 5)
        np.testing.assert_array_equal(hist.future_times[i], expected)
    assert not hist.features.any()  # unknown: the caller fills them


def test_a_spec_with_an_unknown_input_is_refused():
    class Bad:
        @hookimpl
        def register_models(self, register):
            register(ModelSpec("bad", "x", SeriesDrift, DRIFT_SPACE, input="panel"))

    registry = Registry(entry_points=False)
    registry.add_plugin(Bad(), name="bad")
    assert "bad" not in registry.models
    assert any("input must be one of windows, series" in p for p in registry.problems)


# --------------------------------------------------------------------------- scoring


def drift_entry():
    registry = Registry(entry_points=False)
    registry.add_plugin(DriftPlugin(), name="drift_plugin")
    return registry.get("series_drift")


def test_whole_series_forecasts_are_scored_like_window_forecasts():
    panel = load_dataset("walmart")
    split = split_panel(panel, 13, 1, min_train=1)
    task = task_info(panel, 13, seed=1, device="cpu", n_jobs=1)
    result = fit_and_score(drift_entry(), {"span": 10}, task, panel, split.test_start)
    # by hand: the drift forecast of the last 13 weeks, scored with the metric functions
    actual = np.stack([y[-13:] for y in panel.y])
    forecast = SeriesDrift({"span": 10}, task).predict(make_histories(panel, split.test_start, 13))
    np.testing.assert_allclose(result.predictions, forecast)
    np.testing.assert_array_equal(result.actuals, actual)
    np.testing.assert_array_equal(result.windows.step_offset, split.test_start)
    scale = mase_scale([y[:-13] for y in panel.y], panel.season_length)
    weights = np.stack([w[-13:] for w in panel.weights])
    assert result.metrics == pytest.approx(evaluate(actual, forecast, scale=scale, weights=weights))
    assert result.train_metrics == {}


def test_a_series_with_no_history_before_a_fold_is_left_out_of_that_fold():
    walmart = load_dataset("walmart")
    frame = pd.DataFrame(
        {
            "id": np.repeat(["long", "short"], [60, 20]),
            "t": np.concatenate([walmart.times[0][:60], walmart.times[0][40:60]]),
            "y": np.concatenate([walmart.y[0][:60], walmart.y[1][40:60]]),
        }
    )
    panel = load_panel(frame, Columns(target="y", time="t", ids=("id",)))
    split = split_panel(panel, 8, 2, min_train=1)
    assert list(split.folds[0].train_end) == [36, 0]  # "short" has no point before fold 1
    task = task_info(panel, 8, seed=1, device="cpu", n_jobs=1)
    first, second = (
        fit_and_score(drift_entry(), {"span": 5}, task, panel, fold.train_end)
        for fold in split.folds
    )
    assert list(first.windows.series) == [0] and first.predictions.shape == (1, 8)
    assert list(second.windows.series) == [0, 1] and np.isfinite(second.predictions).all()


class TestSeriesDriftContract(ForecasterContract):
    """The contract suite runs on whole-series models too."""

    model_name = "series_drift"
    plugin = DriftPlugin()


def test_a_whole_series_model_is_searched_refit_saved_and_forecasts(
    cli, registry, mlflow_uri, tmp_path
):
    registry.add_plugin(DriftPlugin(), name="drift_plugin")
    result = cli("optimize", "series_drift", "--trials", "3", "--json")
    assert result.code == 0, result
    [model] = json.loads(result.out)["models"]
    assert model["trials"] == {"complete": 3, "pruned": 0, "fail": 0}
    assert 0 < model["test_metrics"]["mape"] < 100
    out = tmp_path / "f.csv"
    assert cli("predict", "series_drift", "--output", str(out)).code == 0
    forecast = pd.read_csv(out)
    assert len(forecast) == 7 * 13 and np.isfinite(forecast["forecast"]).all()


# --------------------------------------------------------------------------- one trial


def test_a_space_with_nothing_to_search_runs_one_trial():
    empty = parse_space({"params": {}, "fixed": {"a": 1}}, "empty")
    searched = parse_space({"params": {"a": {"type": "int", "low": 1, "high": 3}}}, "s")
    assert not empty.searchable and searched.searchable
    study = optuna.create_study()
    assert planned_trials(searched, study, 7) == 7
    assert planned_trials(empty, study, 7) == 1
    study.optimize(lambda t: 1.0, n_trials=1)
    assert planned_trials(empty, study, 7) == 0
    assert planned_trials(searched, study, 7) == 7


def test_seasonal_naive_runs_once_whatever_trials_says(cli, mlflow_uri):
    for _ in range(2):
        result = cli("optimize", "seasonal_naive", "--trials", "5", "--json")
        assert result.code == 0, result
        [model] = json.loads(result.out)["models"]
        assert model["trials"]["complete"] == 1
        assert model["test_metrics"]["mape"] == pytest.approx(8.90, abs=0.005)
    study = optuna.load_study(
        study_name="seasonal_naive-walmart-h13-mape", storage=open_storage(None)
    )
    assert len(study.trials) == 1


# --------------------------------------------------------------------------- statsforecast


def test_list_models_without_statsforecast_shows_the_install_and_imports_nothing():
    script = textwrap.dedent(
        """
        import sys

        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "statsforecast":
                    raise ModuleNotFoundError(f"No module named {name!r}")

        sys.meta_path.insert(0, Hide())
        from mlforecast_cli.cli import main
        try:
            main(["list-models", "--json"])
        except SystemExit:
            pass
        print("LOADED" if "statsforecast" in sys.modules else "NOT LOADED")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    document, loaded = proc.stdout.rsplit("\n", 2)[0], proc.stdout.split()[-2:]
    models = {m["name"]: m for m in json.loads(document)["models"]}
    for name in ("ets", "theta", "arima"):
        assert models[name]["status"] == (
            'missing statsforecast: pip install "mlforecast-cli[stats]"'
        )
    assert loaded == ["NOT", "LOADED"]


stats = pytest.importorskip  # the tests below need statsforecast installed


class TestETSContract(ForecasterContract):
    model_name = "ets"
    params = {"error": "Z", "trend": "Z", "season": "N", "damped": "auto"}

    def setup_method(self):
        stats("statsforecast")


class TestThetaContract(ForecasterContract):
    model_name = "theta"
    params = {"variant": "auto", "decomposition": "multiplicative"}

    def setup_method(self):
        stats("statsforecast")


class TestARIMAContract(ForecasterContract):
    model_name = "arima"
    params = {"seasonal": False, "max_p": 2, "max_q": 2, "max_d": 1}

    def setup_method(self):
        stats("statsforecast")


def stats_entry(name: str):
    stats("statsforecast")
    return Registry().get(name)


def test_ets_forecasts_are_statsforecast_autoets_to_the_digit():
    from statsforecast.models import AutoETS

    panel = m1("m1_quarterly", 30)
    split = split_panel(panel, 8, 1, min_train=1)
    task = task_info(panel, 8, seed=0, device="cpu", n_jobs=1)
    auto = {"error": "Z", "trend": "Z", "season": "Z", "damped": "auto"}
    result = fit_and_score(stats_entry("ets"), auto, task, panel, split.test_start, REFIT)
    direct = np.stack([AutoETS(season_length=4).forecast(y=y[:-8], h=8)["mean"] for y in panel.y])
    np.testing.assert_allclose(result.predictions, direct, rtol=1e-10)
    assert result.metrics["mape"] == pytest.approx(mape(result.actuals, direct), abs=1e-9)
    assert result.notes == []


@pytest.mark.parametrize("name", ["ets", "theta", "arima"])
def test_every_series_gets_a_forecast_and_fallbacks_are_named(name):
    panel = load_dataset("walmart")
    end = np.array([1, 2, 3, 5, 8, 30, 120])  # from one value to two years
    task = task_info(panel, 13, seed=0, device="cpu", n_jobs=1)
    params = {"seasonal": False, "max_p": 2, "max_q": 2} if name == "arima" else {}
    model = stats_entry(name).create(params, task)
    forecast = model.fit(make_histories(panel, end, 13)).predict(make_histories(panel, end, 13))
    assert forecast.shape == (7, 13) and np.isfinite(forecast).all()
    np.testing.assert_allclose(forecast[0], panel.y[0][0])  # one value: the naive forecast
    if name != "arima":  # AutoARIMA copes with a history of one value itself
        assert any("naive (last value)" in note for note in model.notes), model.notes


def test_a_forbidden_ets_form_falls_back_for_every_series_and_says_so():
    from statsforecast.models import AutoETS

    panel = m1("m1_quarterly", 12)
    hist = make_histories(panel, panel.lengths - 8, 8)
    task = task_info(panel, 8, seed=0, device="cpu", n_jobs=1)
    for params, allowed, why in (
        ({"error": "A", "trend": "N", "season": "M"}, "ANA", "multiplicative season"),
        ({"error": "A", "trend": "N", "season": "N", "damped": True}, "ANN", "damped without"),
    ):
        model = stats_entry("ets").create(params, task)
        forecast = model.predict(hist)
        assert any(f"forecast by ETS({allowed})" in n and why in n for n in model.notes), (
            model.notes
        )
        assert sum(int(n.split()[0]) for n in model.notes) == len(hist)  # none by the first
        y = hist.values[hist.offsets[0] : hist.offsets[1]]
        direct = AutoETS(season_length=4, model=allowed).forecast(y=y, h=8)["mean"]
        np.testing.assert_allclose(forecast[0], direct, rtol=1e-10)


def test_ets_study_tries_the_automatic_configuration_first(tmp_path):
    from mlforecast_cli.search.space import load_space
    from mlforecast_cli.trials.optuna_study import StudyConfig, create_study

    panel = m1("m1_quarterly", 6)
    space = load_space("mlforecast_cli.spaces:ets.yaml")
    config = StudyConfig.of("ets", "s", space, horizon=8, storage=f"sqlite:///{tmp_path / 'o.db'}")
    study, created = create_study(config, panel)
    assert created
    trial = study.ask()
    params = space.suggest(trial)
    assert {k: params[k] for k in ("error", "trend", "season", "damped")} == {
        "error": "Z",
        "trend": "Z",
        "season": "Z",
        "damped": "auto",
    }
    study.tell(trial, 1.0)
    # an override that takes a param out of the search drops it from the first trial
    narrowed = space.override(["season=[N, A]"])
    assert narrowed.first_trial() == {"error": "Z", "trend": "Z", "damped": "auto"}


def test_series_are_forecast_in_parallel_with_the_same_result(monkeypatch):
    from mlforecast_cli.plugins import _stats

    from mlforecast_cli.services.executors import local_pool, shutdown_local_pool

    panel = m1("m1_quarterly", 24)
    hist = make_histories(panel, panel.lengths - 8, 8)
    task = task_info(panel, 8, seed=0, device="cpu", n_jobs=1)
    model = stats_entry("theta").create({"variant": "OTM"}, dataclasses.replace(task, n_threads=1))
    serial = model.predict(hist)
    _stats.clear_cache()
    monkeypatch.setattr(_stats, "PARALLEL_MIN_SERIES", 2)
    monkeypatch.setattr(_stats, "POOL_WORTH_S", 0.0)
    model.task = dataclasses.replace(task, n_threads=2)
    try:
        parallel = model.predict(hist)
        assert local_pool().started and local_pool().workers == 2
    finally:
        shutdown_local_pool()
    np.testing.assert_array_equal(serial, parallel)


def test_a_configuration_seen_before_is_not_computed_again():
    from mlforecast_cli.plugins import _stats

    panel = m1("m1_quarterly", 10)
    hist = make_histories(panel, panel.lengths - 8, 8)
    task = task_info(panel, 8, seed=0, device="cpu", n_jobs=1)
    _stats.clear_cache()
    first = stats_entry("ets").create({"error": "A", "trend": "N", "season": "N"}, task)
    a = first.predict(hist)
    assert _stats.cache_size() == 1
    b = stats_entry("ets").create({"error": "A", "trend": "N", "season": "N"}, task).predict(hist)
    assert _stats.cache_size() == 1
    np.testing.assert_array_equal(a, b)
    stats_entry("ets").create({"error": "A", "trend": "A", "season": "N"}, task).predict(hist)
    assert _stats.cache_size() == 2


@pytest.mark.slow
def test_mlf_optimize_automatic_ets_gives_autoets_test_mape_on_m1_monthly(cli, tmp_path):
    from statsforecast.models import AutoETS

    stats("statsforecast")
    frame = pd.read_csv(f"{M1}/m1_monthly.csv")
    frame = frame[frame["id"].isin(frame["id"].unique()[::20])]  # 31 series, every 20th
    frame.to_csv(tmp_path / "m1.csv", index=False)
    flags = ["--data", str(tmp_path / "m1.csv"), "--target", "value", "--time-col", "date"]
    flags += ["--id-col", "id", "--horizon", "18", "--trials", "5", "--json"]
    for key in ("error=Z", "trend=Z", "season=Z", "damped=auto"):
        flags += ["--set", key]
    result = cli("optimize", "ets", *flags)
    assert result.code == 0, result
    [model] = json.loads(result.out)["models"]
    assert model["trials"]["complete"] == 1  # nothing to search
    series = [g["value"].to_numpy(float) for _, g in frame.groupby("id", sort=True)]
    actual = np.stack([y[-18:] for y in series])
    direct = np.stack([AutoETS(season_length=12).forecast(y=y[:-18], h=18)["mean"] for y in series])
    assert model["test_metrics"]["mape"] == pytest.approx(mape(actual, direct), abs=0.05)


def test_the_stats_models_are_ready_so_optimize_with_no_model_runs_them(cli):
    stats("statsforecast")
    result = cli("list-models", "--json")
    models = {m["name"]: m for m in json.loads(result.out)["models"]}
    for name in ("ets", "theta", "arima"):
        assert models[name]["status"] == "ready"
        assert models[name]["family"] == "statistical"


SCRIPT = """
import numpy as np

from mlforecast_cli.services.executors import series_executor


def total(values, offsets):
    return float(values.sum())


if __name__ == "__main__":
    pool = series_executor(2)
    print(pool.map_series(total, np.arange(100.0), np.array([0, 50, 100])))
    print(series_executor(1).map_series(total, np.arange(10.0), np.array([0, 10])))
"""


def test_a_local_pool_left_open_ends_with_the_process_quietly(tmp_path):
    script = tmp_path / "pool_user.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.split("\n")[:2] == ["[1225.0, 3725.0]", "[45.0]"]
    assert done.stderr == ""  # no "Exception ignored in: ... weakref_cb" at interpreter exit
