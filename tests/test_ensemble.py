"""Held-out forecasts, `mlf ensemble`, and `mlf predict --level`: real studies (the seasonal
naive, a third-party model, a whole-series model) in a real MLflow store."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlforecast_cli.cli import main
from mlforecast_cli.ensembles.held_out import (
    ENSEMBLE_ARTIFACT,
    TEST_ARTIFACT,
    VALIDATION_ARTIFACT,
    read_artifact,
)
from mlforecast_cli.ensembles.intervals import conformal_scores, interval_metrics
from mlforecast_cli.models.registry import Registry, set_registry
from tests.plugin_factories import SPACE, MeanModel, spec_plugin

EXPERIMENT = "sales"
HORIZON = 4
DATA_ARGS = ["--target", "units", "--time-col", "week", "--id-col", "shop"]


@dataclass
class Store:
    root: Path
    uri: str
    data: Path
    plugin: object


def _sales(n_series: int = 4, length: int = 90, seed: int = 3) -> pd.DataFrame:
    """Weekly sales with a trend, a yearly-ish wave and noise: models disagree on them."""
    rng = np.random.default_rng(seed)
    weeks = pd.date_range("2020-01-03", periods=length, freq="W-FRI")
    t = np.arange(length)
    parts = []
    for s in range(n_series):
        units = 100 + 20 * s + 0.5 * t + 10 * np.sin(2 * np.pi * t / 13) + rng.normal(0, 4, length)
        parts.append(pd.DataFrame({"shop": f"S{s}", "week": weeks, "units": units}))
    return pd.concat(parts, ignore_index=True)


def _call(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    return 0


@pytest.fixture(scope="module")
def store(tmp_path_factory, _mlflow_template) -> Store:
    """seasonal_naive, theta and a third-party mean model on a small file, 2 CV windows."""
    import shutil

    root = tmp_path_factory.mktemp("ensemble")
    data = root / "sales.csv"
    _sales().to_csv(data, index=False)
    shutil.copy(_mlflow_template, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    plugin = spec_plugin("mean_model", MeanModel, SPACE, root)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLF_HOME", str(root / ".mlf"))
        mp.setenv("MLF_CHILD_RUNS", "inline")
        mp.setenv("MLF_PLOTS", "0")
        registry = Registry()
        registry.add_plugin(plugin, name="mean_plugin")
        set_registry(registry)
        try:
            args = ["--data", str(data), *DATA_ARGS, "--horizon", str(HORIZON)]
            args += ["--cv-windows", "2", "--experiment", EXPERIMENT, "--quiet"]
            code = _call(
                "optimize", "seasonal_naive", "theta", "mean_model", "--trials", "3", *args
            )
            assert code == 0
        finally:
            set_registry(None)
    return Store(root, uri, data, plugin)


@pytest.fixture
def use(store, monkeypatch, mlflow_uri):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    registry = Registry()
    registry.add_plugin(store.plugin, name="mean_plugin")
    set_registry(registry)
    return store


def _studies(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([exp.experiment_id], filter_string="tags.`mlf.role` = 'study'")


def test_each_study_keeps_its_best_trial_validation_and_test_forecasts(use):
    client = MlflowClient(use.uri)
    studies = [r for r in _studies(use.uri) if r.data.params["model"] != "ensemble"]
    assert sorted(r.data.params["model"] for r in studies) == [
        "mean_model",
        "seasonal_naive",
        "theta",
    ]
    for run in studies:
        validation = read_artifact(client, run.info.run_id, VALIDATION_ARTIFACT)
        test = read_artifact(client, run.info.run_id, TEST_ARTIFACT)
        assert len(validation) == 2 * 4 * HORIZON and sorted(set(validation.window)) == [0, 1]
        assert len(test) == 4 * HORIZON
        # the stored forecasts are the ones the study scored: same metric to the last digit
        assert validation.metrics()["mape"] == pytest.approx(run.data.metrics["best_val_MAPE"])
        assert test.metrics()["mape"] == pytest.approx(run.data.metrics["test_MAPE"])
        for level in (80, 95):
            assert 0 <= run.data.metrics[f"test_coverage_{level}"] <= 100
            assert run.data.metrics[f"test_MSIS_{level}"] > 0


def test_each_study_keeps_its_best_configuration_on_older_windows_for_ensembles(use):
    """--cv-windows 2 and the default 3 ensemble windows: one older window fitted once more,
    then the two validation windows as the search scored them."""
    client = MlflowClient(use.uri)
    for run in _studies(use.uri):
        if run.data.params["model"] == "ensemble":
            continue
        assert run.data.params["ensemble_windows"] == "3"
        validation = read_artifact(client, run.info.run_id, VALIDATION_ARTIFACT)
        windows = read_artifact(client, run.info.run_id, ENSEMBLE_ARTIFACT)
        assert sorted(set(windows.window)) == [0, 1, 2] and len(windows) == 3 * 4 * HORIZON
        newest = windows.window >= 1
        np.testing.assert_array_equal(windows.window[newest] - 1, validation.window)
        np.testing.assert_allclose(windows.forecast[newest], validation.forecast)
        oldest = windows.time[~newest]
        assert oldest.max() < validation.time.min()  # the older window ends where they start


def test_few_scores_a_step_pool_nearby_steps_so_the_levels_differ(use):
    """4 series x 2 windows: 8 scores a step, fewer than the tails of 80 % (19 at 90 %) and
    95 % (79 at 97.5 %) need; the levels would both take a step's extreme residuals, pooled
    they differ and stay nested."""
    client = MlflowClient(use.uri)
    for run in _studies(use.uri):
        validation = read_artifact(client, run.info.run_id, VALIDATION_ARTIFACT)
        test = read_artifact(client, run.info.run_id, TEST_ARTIFACT)
        conformal = conformal_scores(validation)
        assert [len(s) for s in conformal.scores] == [8] * HORIZON
        (below80, above80), (below95, above95) = conformal.offsets(80), conformal.offsets(95)
        assert (above95 >= above80).all() and (below95 >= below80).all()
        assert (above95 + below95 > above80 + below80).any()
        own_largest = np.array([s[-1] for s in conformal.scores])
        assert not np.array_equal(above80, np.maximum(own_largest, 0))
        # the coverage the study logged is that of these intervals on its test forecasts
        got = interval_metrics(conformal, test)
        for level in (80, 95):
            key = f"coverage_{level}"
            assert run.data.metrics[f"test_{key}"] == pytest.approx(got[key])


def test_validation_fitted_again_equals_the_kept_one(registry, tmp_path):
    """A best trial run in another process (or before a resume) is fitted again: same table."""
    from mlforecast_cli.datasets import load_dataset
    from mlforecast_cli.ensembles.held_out import best_validation
    from mlforecast_cli.trials.optuna_study import StudyConfig
    from tests.studies import objective_for, run_trials

    plugin = spec_plugin("mean_model", MeanModel, SPACE, tmp_path)
    registry.add_plugin(plugin, name="mean_plugin")
    entry = registry.get("mean_model")
    panel = load_dataset("walmart")
    config = StudyConfig.of("mean_model", "kept", entry.load_space(), horizon=HORIZON, cv_windows=2)
    objective = objective_for(entry, panel, config)
    study = run_trials(entry, panel, config, n_trials=4, objective=objective)
    kept = best_validation(objective, study)
    again = best_validation(objective_for(entry, panel, config), study)  # kept nothing
    assert objective.kept[0] == study.best_trial.number
    assert np.allclose(kept.forecast, again.forecast)
    assert kept.metrics()["mape"] == pytest.approx(study.best_value)


def _ensemble(cli, *args):
    result = cli("ensemble", "--experiment", EXPERIMENT, "--json", *args)
    assert result.code == 0, result
    return json.loads(result.out)


def test_greedy_ensemble_is_scored_logged_and_ranked(cli, use):
    from mlforecast_cli.ensembles.ensemble import greedy_weights

    doc = _ensemble(cli)
    members = {m["model"]: m for m in doc["members"]}
    assert set(members) == {"mean_model", "seasonal_naive", "theta"}
    assert sum(m["weight"] for m in members.values()) == pytest.approx(1.0)
    # the weights are the greedy selection's on the members' three ensemble windows
    client = MlflowClient(use.uri)
    assert doc["weight_windows"] == 3
    names = sorted(members)
    windows = [read_artifact(client, members[m]["run_id"], ENSEMBLE_ARTIFACT) for m in names]
    chosen = greedy_weights(windows, "mape", 25).weights
    assert [members[m]["weight"] for m in names] == pytest.approx(list(chosen), abs=1e-4)
    # the test score is the weighted members' test forecasts, scored once
    tests = [read_artifact(client, members[m]["run_id"], TEST_ARTIFACT) for m in names]
    forecast = sum(w * t.forecast for w, t in zip(chosen, tests, strict=True))
    expected = tests[0].with_forecast(forecast).metrics()["mape"]
    assert doc["test_metrics"]["mape"] == pytest.approx(expected)
    assert {"coverage_80", "msis_95"} <= set(doc["test_metrics"])
    run = client.get_run(doc["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["model"] == "ensemble"
    assert run.data.tags["mlf.model_uri"] == doc["model_uri"]
    board = cli("leaderboard", "--experiment", EXPERIMENT, "--json")
    rows = {r["model"]: r for r in json.loads(board.out)["models"]}
    assert rows["ensemble"]["test"] == pytest.approx(expected)
    assert rows["ensemble"]["trials"] == "" and "✓" in rows["theta"]["trials"]
    naive = rows["seasonal_naive"]["test"]
    assert rows["ensemble"]["vs_reference"] == pytest.approx(expected / naive, rel=1e-3)
    page = use.root / "report.html"
    assert cli("report", "--experiment", EXPERIMENT, "--output", str(page)).code == 0
    assert f"ensemble: study {doc['study_name']}" in page.read_text()


def test_the_ensemble_is_scored_on_windows_its_weights_did_not_see(cli, use):
    """Its validation score is cross-fitted: each of the two validation windows scored by
    weights chosen on the other two kept windows, the mean ranked with the members' own."""
    from mlforecast_cli.ensembles.ensemble import combine, greedy_weights

    doc = _ensemble(cli)
    client = MlflowClient(use.uri)
    names = sorted(m["model"] for m in doc["members"])
    ids = {m["model"]: m["run_id"] for m in doc["members"]}
    windows = [read_artifact(client, ids[m], ENSEMBLE_ARTIFACT) for m in names]
    scores = []
    for w in (1, 2):
        seen = [t.take(t.window != w) for t in windows]
        weights = greedy_weights(seen, "mape", 25).weights
        scores.append(combine([t.take(t.window == w) for t in windows], weights).metrics()["mape"])
    assert doc["val"] == pytest.approx(np.mean(scores))
    run = client.get_run(doc["run_id"])
    assert run.data.metrics["best_val_MAPE"] == pytest.approx(doc["val"])
    assert run.data.metrics["weighing_val_MAPE"] == pytest.approx(doc["in_sample_val"])
    board = json.loads(cli("leaderboard", "--experiment", EXPERIMENT, "--json").out)["models"]
    ensemble = next(r for r in board if r["model"] == "ensemble" and r["run_id"] == doc["run_id"])
    assert ensemble["val"] == pytest.approx(doc["val"])
    assert [r["val"] for r in board] == sorted(r["val"] for r in board)


def test_an_ensemble_of_one_kept_window_has_no_validation_score():
    from mlforecast_cli.optimize.ensemble_run import EnsembleOptions, cross_fitted
    from tests.test_intervals import table

    actual = np.arange(1.0, 13.0).reshape(6, 2)
    one, three = table(actual, actual + 1), table(actual, actual + 1, windows=3)
    assert cross_fitted([one, one], 1, "mape", EnsembleOptions()) is None
    assert cross_fitted([three, three], 1, "mape", EnsembleOptions()) == pytest.approx(
        three.take(three.window == 2).metrics()["mape"]
    )


def test_mean_of_the_top_one_is_the_best_member(cli, use):
    doc = _ensemble(cli, "--method", "mean", "--top", "1")
    best = min(doc["members"], key=lambda m: m["val"])
    assert [m["model"] for m in doc["members"] if m["weight"] > 0] == [best["model"]]
    assert doc["test_metrics"]["mape"] == pytest.approx(best["test"])


def test_predict_ensemble_is_the_weighted_members_with_intervals(cli, use, tmp_path):
    doc = _ensemble(cli, "seasonal_naive", "mean_model", "--method", "mean", "--top", "2")
    assert {m["model"]: m["weight"] for m in doc["members"]} == {
        "seasonal_naive": 0.5,
        "mean_model": 0.5,
    }
    frames = {}
    for model in ("ensemble", "seasonal_naive", "mean_model"):
        out = tmp_path / f"{model}.csv"
        args = ["predict", model, "--experiment", EXPERIMENT, "--data", str(use.data), "-o"]
        if model == "ensemble":  # this one, not the best ensemble by validation so far
            args = [*args[:-1], "--run-id", doc["run_id"], "-o"]
        result = cli(*args, str(out), "--level", "80", "--level", "95")
        assert result.code == 0, result
        frames[model] = pd.read_csv(out)
    ens = frames["ensemble"]
    assert list(ens.columns) == ["shop", "week", "forecast", "lo-80", "hi-80", "lo-95", "hi-95"]
    assert len(ens) == 4 * HORIZON
    mean = 0.5 * frames["seasonal_naive"]["forecast"] + 0.5 * frames["mean_model"]["forecast"]
    assert np.allclose(ens["forecast"], mean)
    for frame in frames.values():  # nested, each holds its forecast (a biased model's
        # interval may end at it: equal tails), none is a point
        assert (frame["lo-95"] <= frame["lo-80"]).all() and (
            frame["lo-80"] <= frame["forecast"]
        ).all()
        assert (frame["forecast"] <= frame["hi-80"]).all() and (
            frame["hi-80"] <= frame["hi-95"]
        ).all()
        assert (frame["hi-80"] > frame["lo-80"]).all()
    # the logged pyfunc model takes the levels as a parameter, and gives the same numbers
    model = mlflow.pyfunc.load_model(doc["model_uri"])
    served = model.predict(_sales(), params={"level": [80.0, 95.0]})
    assert np.allclose(served["hi-95"], ens["hi-95"])
    assert "lo-80" not in model.predict(_sales()).columns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ensemble", "--method", "best"], "--method 'best' is not one of greedy, mean"),
        (["ensemble", "--metric", "nope"], "--metric 'nope' is not one of"),
        (["ensemble", "arima"], "no finished study of arima with a refit model"),
        (["ensemble", "theta"], "an ensemble needs at least 2 models"),
        (["ensemble", "--metric", "mae"], "no finished study with a refit model"),
        (["predict", "theta", "--level", "100"], "--level 100.0 is not a level in percent"),
        (["predict", "theta", "--level", "0"], "--level 0.0 is not a level in percent"),
    ],
)
def test_bad_input_is_one_line(cli, use, args, message):
    result = cli(*args, "--experiment", EXPERIMENT)
    assert result.code != 0
    assert message in result.err, result
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_a_model_without_residuals_refuses_levels_in_one_line(use):
    """A model saved before intervals existed forecasts, but refuses --level clearly."""
    import dataclasses

    from mlforecast_cli.errors import UsageError
    from mlforecast_cli.forecasting.forecast import forecast_frame
    from mlforecast_cli.forecasting.pyfunc import load_saved_model

    run = next(r for r in _studies(use.uri) if r.data.params["model"] == "theta")
    saved = dataclasses.replace(load_saved_model(run.data.tags["mlf.model_uri"]), conformal=None)
    assert len(forecast_frame(saved, _sales())) == 4 * HORIZON
    with pytest.raises(UsageError, match="has no validation residuals to give prediction"):
        forecast_frame(saved, _sales(), levels=[80])


def test_members_whose_rows_differ_are_refused():
    from types import SimpleNamespace

    from mlforecast_cli.errors import MlfError
    from mlforecast_cli.optimize.ensemble_run import check_same_rows
    from tests.test_intervals import table

    actual = np.ones((4, 2))
    a = SimpleNamespace(study="a", validation=table(actual, actual), test=table(actual, actual))
    b = SimpleNamespace(study="b", validation=table(actual[:3], actual[:3]), test=a.test)
    check_same_rows([a, a])
    with pytest.raises(MlfError, match="validation forecasts of studies a and b do not cover"):
        check_same_rows([a, b])


def test_members_with_different_ensemble_windows_are_weighed_on_validation_with_a_warning():
    from types import SimpleNamespace

    from mlforecast_cli.optimize.ensemble_run import weighing_tables
    from tests.test_intervals import table

    actual = np.arange(1.0, 13.0).reshape(6, 2)
    validation = table(actual[4:], actual[4:])
    three = table(actual, actual + 1, windows=3)
    a = SimpleNamespace(model="a", validation=validation, windows=three)
    b = SimpleNamespace(
        model="b", validation=validation, windows=validation
    )  # an --ensemble-windows 1 study
    warnings: list[str] = []
    assert weighing_tables([a, a], warnings) == ([0, 1], [three, three]) and warnings == []
    assert weighing_tables([a, b], warnings) == ([0, 1], [validation, validation])
    assert warnings == [
        "the members kept forecasts on different windows (a 3, b 1): the weights are chosen "
        "on the validation windows only; rerun 'mlf optimize' with the same --ensemble-windows"
    ]
    # two members kept all three windows: the ensemble is weighed (and cross-fitted) on them
    c = SimpleNamespace(model="c", validation=validation, windows=three)
    warnings.clear()
    assert weighing_tables([a, b, c], warnings) == ([0, 2], [three, three])
    assert warnings == [
        "the members kept forecasts on different windows (a 3, b 1, c 3): the ensemble is "
        "weighed on the 3 windows of those that kept them all, and leaves out b; rerun "
        "'mlf optimize' with the same --ensemble-windows (and time) to weigh them too"
    ]


def _optimize_with_failing(cli, monkeypatch, module, name: str, message: str):
    """A one-trial seasonal-naive study whose ``module.name`` raises ``ValueError(message)``;
    the study's JSON row and the command's result."""

    def broken(*args, **kwargs):
        raise ValueError(message)

    monkeypatch.setattr(module, name, broken)
    result = cli("optimize", "seasonal_naive", "--trials", "1", "--json")
    assert result.code == 0, result
    [model] = json.loads(result.out)["models"]
    assert model["error"] is None and "mape" in model["test_metrics"]
    return model, result


def test_a_study_whose_intervals_fail_still_finishes_with_a_warning(cli, mlflow_uri, monkeypatch):
    import mlforecast_cli.ensembles.intervals

    model, result = _optimize_with_failing(
        cli, monkeypatch, mlforecast_cli.ensembles.intervals, "study_forecasts", "disk on fire"
    )
    assert "coverage_80" not in model["test_metrics"]
    assert "no validation forecasts, so no intervals: ValueError: disk on fire" in result.err


def test_a_study_whose_older_windows_fail_keeps_its_validation_windows(
    cli, mlflow_uri, monkeypatch
):
    """A failed fit on an older window costs the ensemble windows, nothing else."""
    import mlforecast_cli.ensembles.held_out

    model, result = _optimize_with_failing(
        cli, monkeypatch, mlforecast_cli.ensembles.held_out, "fit_best", "out of memory"
    )
    assert "coverage_80" in model["test_metrics"]
    assert (
        "no forecasts on 3 windows for ensembles, only on the validation windows: ValueError: "
        "out of memory" in result.err
    )
    client = MlflowClient(mlflow_uri)
    [run] = [
        r
        for r in client.search_runs(
            [e.experiment_id for e in client.search_experiments()], "tags.`mlf.role` = 'study'"
        )
    ]
    assert run.data.params["ensemble_windows"] == "1"
    assert read_artifact(client, run.info.run_id, VALIDATION_ARTIFACT) is not None
    assert read_artifact(client, run.info.run_id, ENSEMBLE_ARTIFACT) is None
