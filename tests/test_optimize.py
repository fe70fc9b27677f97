"""`mlf optimize` end to end: real Optuna studies, a real MLflow store, real data."""

from __future__ import annotations

import json
import textwrap

import optuna
import pytest
from mlflow.tracking import MlflowClient

from mlforecast_cli.services.storage import open_storage
from tests.plugin_factories import (
    CURVE_SPACE,
    SPACE,
    CurveModel,
    FlakyModel,
    InterruptingModel,
    MeanModel,
    spec_plugin,
)

EXPERIMENT = "walmart_sales_forecasting"
VAL_KEYS = {"val_MAPE", "val_RMSE", "val_MAE", "val_sMAPE", "val_MASE", "val_WAPE", "val_WMAE"}


def runs(uri: str, role: str, experiment: str = EXPERIMENT):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`mlf.role` = '{role}'", max_results=1000
    )


def study_trials(name: str):
    study = optuna.load_study(study_name=name, storage=open_storage(None))
    return study.get_trials(deepcopy=False)


@pytest.mark.slow  # a second process (workers or the MLflow writer)
@pytest.mark.full_optimize  # the writer process and the plots, as a user runs it
def test_seasonal_naive_one_trial_tracked_in_mlflow(cli, mlflow_uri, monkeypatch):
    monkeypatch.setenv("MLF_CHILD_RUNS", "process")  # a one-trial study would write inline
    result = cli("optimize", "seasonal_naive", "--trials", "3", "--quiet")
    assert result.code == 0, result
    assert "seasonal_naive (reference)" in result.out
    [parent] = runs(mlflow_uri, "study")
    children = runs(mlflow_uri, "trial")
    assert len(children) == 1  # nothing to search: one trial, whatever --trials says
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    for child in children:
        assert child.info.status == "FINISHED"
        assert set(child.data.metrics) >= VAL_KEYS
        assert {"train_MAPE", "training_time_s"} <= set(child.data.metrics)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["test_MAPE"] == pytest.approx(8.90, abs=0.005)
    assert parent.data.params["model"] == "seasonal_naive"
    assert parent.data.params["data_fingerprint"]
    client = MlflowClient(mlflow_uri)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"space.yaml", "best_params.json", "plots", "environment.json"} <= artifacts
    assert parent.data.tags["mlf.model_uri"].startswith("models:/")
    assert parent.data.tags["mlf.command"].startswith("mlf optimize")


def test_rerun_resumes_the_study_and_adds_trials(cli, registry, mlflow_uri, tmp_path):
    registry.add_plugin(spec_plugin("tiny", MeanModel, SPACE, tmp_path), name="tiny")
    for _ in range(2):
        assert cli("optimize", "tiny", "--trials", "2", "--quiet").code == 0
    assert len(study_trials("tiny-walmart-h13-mape")) == 4
    assert len(runs(mlflow_uri, "study")) == 1
    assert len(runs(mlflow_uri, "trial")) == 4


def test_test_model_registered_by_the_tests(cli, registry, mlflow_uri, tmp_path):
    registry.add_plugin(spec_plugin("tiny", MeanModel, SPACE, tmp_path), name="tiny")
    result = cli("optimize", "tiny", "--trials", "4", "--json")
    assert result.code == 0, result
    document = json.loads(result.out)
    [model] = document["models"]
    assert model["trials"] == {"complete": 4, "pruned": 0, "fail": 0}
    assert set(model["best_params"]) >= {"shrink", "window_size", "scaler"}
    assert model["test_metrics"]["mape"] > 0
    [parent] = runs(mlflow_uri, "study")
    assert parent.info.run_id == model["mlflow_parent_run_id"]
    trials = study_trials(model["study_name"])
    assert all(t.user_attrs["config"]["scaler"] == "window" for t in trials)


def test_pruned_trial_is_killed_in_mlflow(cli, registry, mlflow_uri, tmp_path):
    registry.add_plugin(spec_plugin("curve", CurveModel, CURVE_SPACE, tmp_path), name="curve")
    result = cli("optimize", "curve", "--trials", "12", "--quiet")
    assert result.code == 0, result
    trials = study_trials("curve-walmart-h13-mape")
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned, [t.params for t in trials]
    children = {int(c.data.tags["mlf.trial_number"]): c for c in runs(mlflow_uri, "trial")}
    client = MlflowClient(mlflow_uri)
    for trial in pruned:
        child = children[trial.number]
        assert child.info.status == "KILLED"
        assert child.data.metrics["training_time_s"] > 0  # the time it ran until pruned
        history = client.get_metric_history(child.info.run_id, "intermediate_value")
        assert [m.step for m in history] == sorted(trial.intermediate_values)


def test_failing_and_nan_trials_fail_alone(cli, registry, mlflow_uri, tmp_path):
    space = (
        "params:\n  mode: {type: categorical, choices: [raise, nan, ok]}\nfixed: {shrink: 0.0}\n"
    )
    registry.add_plugin(spec_plugin("flaky", FlakyModel, space, tmp_path), name="flaky")
    result = cli("optimize", "flaky", "--trials", "9", "--quiet")
    assert result.code == 0, result
    trials = study_trials("flaky-walmart-h13-mape")
    by_mode = {t.params["mode"]: t for t in trials}
    assert set(by_mode) == {"raise", "nan", "ok"}
    assert by_mode["raise"].state.name == "FAIL"
    assert "flaky model exploded" in by_mode["raise"].user_attrs["error"]
    assert "second line" not in by_mode["raise"].user_attrs["error"]
    assert by_mode["nan"].state.name == "FAIL"
    assert "NaN" in by_mode["nan"].user_attrs["error"]
    assert by_mode["ok"].state.name == "COMPLETE"
    failed = [c for c in runs(mlflow_uri, "trial") if c.info.status == "FAILED"]
    assert failed and all(c.data.tags.get("mlf.error") for c in failed)


def test_all_trials_failing_exits_1(cli, registry, mlflow_uri, tmp_path):
    space = "params:\n  mode: {type: categorical, choices: [raise]}\nfixed: {shrink: 0.0}\n"
    registry.add_plugin(spec_plugin("doomed", FlakyModel, space, tmp_path), name="doomed")
    result = cli("optimize", "doomed", "--trials", "2", "--quiet")
    assert result.code == 1
    assert "no trial completed" in result.err and "flaky model exploded" in result.err
    assert "Traceback" not in result.err


def test_interrupt_keeps_finished_trials_and_kills_runs(cli, registry, mlflow_uri, tmp_path):
    InterruptingModel.fits = 0
    registry.add_plugin(spec_plugin("stopper", InterruptingModel, SPACE, tmp_path), name="s")
    result = cli("optimize", "stopper", "--trials", "5", "--quiet")
    assert result.code == 130
    assert "resume" in result.err
    trials = study_trials("stopper-walmart-h13-mape")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    [parent] = runs(mlflow_uri, "study")
    assert parent.info.status == "KILLED"
    statuses = sorted(c.info.status for c in runs(mlflow_uri, "trial"))
    assert statuses == ["FINISHED", "FINISHED", "KILLED"]
    # the same command resumes
    assert cli("optimize", "stopper", "--trials", "2", "--quiet").code == 0
    assert len(study_trials("stopper-walmart-h13-mape")) == 5


def test_resuming_with_another_task_is_refused(cli, mlflow_uri):
    assert cli("optimize", "seasonal_naive", "--trials", "1", "--quiet").code == 0
    result = cli(
        "optimize",
        "seasonal_naive",
        "--trials",
        "1",
        "--horizon",
        "8",
        "--study-name",
        "seasonal_naive-walmart-h13-mape",
    )
    assert result.code == 2
    assert "horizon 13 → 8" in result.err and "--study-name" in result.err


def test_leaderboard_ranks_models(cli, registry, mlflow_uri, tmp_path):
    registry.add_plugin(spec_plugin("tiny", MeanModel, SPACE, tmp_path), name="tiny")
    args = ["optimize", "tiny", "seasonal_naive", "--trials", "2", "--quiet", "--no-ensemble"]
    assert cli(*args).code == 0
    result = cli("leaderboard", "--json")
    assert result.code == 0, result
    rows = json.loads(result.out)["models"]
    assert {r["model"] for r in rows} == {"tiny", "seasonal_naive"}
    assert [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["val"] <= rows[1]["val"]  # validation ranks, never test
    table = cli("leaderboard")
    assert "seasonal_naive (reference)" in table.out


def test_own_data_file_and_experiment_name(cli, mlflow_uri, tmp_path):
    import numpy as np
    import pandas as pd

    dates = pd.date_range("2020-01-05", periods=60, freq="W-SUN")
    rng = np.random.default_rng(0)
    frame = pd.concat(
        pd.DataFrame({"shop": s, "week": dates, "units": 100 + 10 * s + rng.normal(0, 1, 60)})
        for s in range(3)
    )
    path = tmp_path / "my_sales.csv"
    frame.to_csv(path, index=False)
    result = cli(
        "optimize",
        "seasonal_naive",
        "--trials",
        "1",
        "--data",
        str(path),
        "--target",
        "units",
        "--time-col",
        "week",
        "--id-col",
        "shop",
        "--horizon",
        "4",
        "--json",
    )
    assert result.code == 0, result
    document = json.loads(result.out)
    assert document["experiment"] == "my_sales"
    assert runs(mlflow_uri, "study", experiment="my_sales")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["optimize", "lightgbmm"], "unknown model"),
        (["optimize", "seasonal_naive", "--trials", "0"], "--trials"),
        (["optimize", "seasonal_naive", "--metric", "r2"], "--metric 'r2'"),
        (["optimize", "seasonal_naive", "--horizon", "100"], "needs at least"),
        (
            ["optimize", "seasonal_naive", "--storage", "postgresql://u:secret@127.0.0.1:1/db"],
            "cannot open the study storage",
        ),
        (["optimize", "seasonal_naive", "--set", "nonsense"], "--set"),
        (["optimize", "seasonal_naive", "--device", "tpu"], "--device"),
        (["optimize", "seasonal_naive", "--dataset", "nope"], "nope"),
        (["optimize", "seasonal_naive", "--target", "x"], "--data"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, mlflow_uri, args, message):
    result = cli(*args)
    assert result.code == 2, result
    assert message in result.err
    assert "Traceback" not in result.err
    assert "secret" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert runs_count(mlflow_uri) == 0


def runs_count(uri: str) -> int:
    client = MlflowClient(uri)
    return sum(len(client.search_runs([e.experiment_id])) for e in client.search_experiments())


def test_space_override_reaches_the_trials(cli, registry, mlflow_uri, tmp_path):
    registry.add_plugin(spec_plugin("tiny", MeanModel, SPACE, tmp_path), name="tiny")
    result = cli(
        "optimize",
        "tiny",
        "--trials",
        "2",
        "--json",
        "--set",
        "shrink=0.25",
        "--set",
        "window_size=5..6",
    )
    assert result.code == 0, result
    [model] = json.loads(result.out)["models"]
    assert model["study_name"].startswith("tiny-walmart-h13-mape-s")  # its own space, own study
    trials = study_trials(model["study_name"])
    assert all(t.user_attrs["config"]["shrink"] == 0.25 for t in trials)
    assert all(5 <= t.params["window_size"] <= 6 for t in trials)
    space_file = tmp_path / "mine.yaml"
    space_file.write_text(textwrap.dedent(SPACE).replace("high: 12", "high: 5"))
    result = cli(
        "optimize",
        "tiny",
        "--trials",
        "1",
        "--quiet",
        "--space",
        str(space_file),
        "--study-name",
        "custom",
    )
    assert result.code == 0, result
    assert study_trials("custom")[0].params["window_size"] <= 5


def test_same_seed_same_best(cli, registry, mlflow_uri, tmp_path, monkeypatch):
    registry.add_plugin(spec_plugin("tiny", MeanModel, SPACE, tmp_path), name="tiny")
    results = []
    for home in ("a", "b"):
        monkeypatch.setenv("MLF_HOME", str(tmp_path / home))
        result = cli("optimize", "tiny", "--trials", "5", "--seed", "7", "--json")
        assert result.code == 0, result
        [model] = json.loads(result.out)["models"]
        results.append((model["best_value"], model["best_params"], model["test_metrics"]))
    assert results[0] == results[1]


MEET_PLUGIN = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    import numpy as np

    from mlforecast_cli import Forecaster, ModelSpec, hookimpl

    HERE = Path(__file__).parent


    class Meet(Forecaster):
        # every fit waits (up to 60 s) until two processes have started one
        def fit(self, train, valid=None, report=None):
            (HERE / f"pid-{os.getpid()}").touch()
            deadline = time.monotonic() + 60
            while len(list(HERE.glob("pid-*"))) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            return self

        def predict(self, windows):
            return np.repeat(windows.x[:, -1:], windows.horizon, axis=1) * (1 + self.params["x"])


    @hookimpl
    def register_models(register):
        register(ModelSpec(name="meet", summary="meets a second process", factory=Meet,
                           space=str(HERE / "meet.yaml")))
    """
)


@pytest.mark.slow  # a second process (workers or the MLflow writer)
def test_plugins_dir_flag_reaches_the_worker_processes(tmp_path, mlflow_uri):
    """`mlf --plugins-dir D optimize M --n-jobs 2`: the worker process loads D's plugins too
    (from the flag: MLF_PLUGINS_DIR is not set) and runs trials that reach MLflow."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "meet_plugin.py").write_text(MEET_PLUGIN)
    (folder / "meet.yaml").write_text(
        "params:\n  x: {type: float, low: 0.0, high: 0.1}\nfixed: {window_size: 4}\n"
        "optimizer:\n  first_trial: {x: 0.05}\n"  # enqueued: one of the 4, not a fifth
    )
    env = {k: v for k, v in os.environ.items() if k != "MLF_PLUGINS_DIR"}
    args = ["--plugins-dir", str(folder), "optimize", "meet", "--quiet", "--trials", "4"]
    done = subprocess.run(
        [sys.executable, "-m", "mlforecast_cli", *args, "--n-jobs", "2"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr, done.stderr
    trials = study_trials("meet-walmart-h13-mape")
    assert sorted(t.number for t in trials) == list(range(4))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert trials[0].params == {"x": 0.05}
    assert len({t.user_attrs["mlf_worker"]["pid"] for t in trials}) == 2
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("walmart_sales_forecasting")
    children = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`mlf.role` = 'trial'"
    )
    assert sorted(int(c.data.tags["mlf.trial_number"]) for c in children) == list(range(4))


def test_short_series_never_fail_a_trial_and_fallbacks_are_counted(cli, mlflow_uri, tmp_path):
    """Series of 300 points beside one of 20 (too short for the window) and one of 9 (too
    short for a validation window): every trial completes, all three are forecast on test, and
    the one with no training sample of its own is the seasonal naive's, counted everywhere."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    frames = []
    for name, n in (("long", 300), ("short", 20), ("tiny", 9)):
        t = np.arange(n)
        value = 100 + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, n)
        dates = pd.date_range(end="2020-12-01", periods=n, freq="MS")
        frames.append(pd.DataFrame({"id": name, "date": dates, "value": value}))
    path = tmp_path / "mixed.csv"
    pd.concat(frames).to_csv(path, index=False)
    flags = ["--data", str(path), "--target", "value", "--time-col", "date", "--id-col", "id"]
    result = cli(
        "optimize", "lightgbm", "seasonal_naive", *flags, "--horizon", "6", "--trials", "2",
        "--set", "window_size=24", "--set", "n_estimators=20", "--json",
    )  # fmt: skip
    assert result.code == 0, result
    models = json.loads(result.out)["models"]
    for model in models:
        trials = 1 if model["model"] == "seasonal_naive" else 2  # nothing to search: one trial
        assert model["trials"]["fail"] == 0 and model["trials"]["complete"] == trials
        assert model["naive_fallback"] == 1  # "tiny": 3 points before test < horizon + 1
        assert np.isfinite(model["test_metrics"]["mape"])
    parents = runs(mlflow_uri, "study", experiment="mixed")
    studies = [p for p in parents if p.data.params["model"] != "ensemble"]  # the run's ensemble
    assert {p.data.metrics["naive_fallback_series"] for p in studies} == {1.0}


def test_refuses_only_when_no_series_can_be_split(cli, tmp_path):
    import pandas as pd

    dates = pd.date_range("2020-01-01", periods=10, freq="MS")
    frame = pd.DataFrame({"id": "a", "date": dates, "value": range(1, 11)})
    path = tmp_path / "short.csv"
    frame.to_csv(path, index=False)
    result = cli(
        "optimize", "seasonal_naive", "--data", str(path), "--target", "value", "--time-col",
        "date", "--id-col", "id", "--horizon", "4",
    )  # fmt: skip
    assert result.code == 2
    assert "no series in" in result.err and "the longest, 'a', has 10 time points" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_resuming_under_another_experiment_says_so(cli, mlflow_uri):
    first = cli("optimize", "seasonal_naive", "--trials", "1", "--experiment", "first", "--quiet")
    assert first.code == 0, first
    again = cli("optimize", "seasonal_naive", "--experiment", "second", "--json")
    assert again.code == 0, again
    err = " ".join(again.err.split())
    assert "study 'seasonal_naive-walmart-h13-mape' was tracked in MLflow experiment 'first'" in err
    assert "--experiment first" in err
    [model] = json.loads(again.out)["models"]
    assert any("experiment 'first'" in w for w in model["warnings"])
    [old] = runs(mlflow_uri, "study", "first")
    [new] = runs(mlflow_uri, "study", "second")
    assert old.info.run_id != new.info.run_id == model["mlflow_parent_run_id"]


def test_short_studies_write_their_child_runs_inline(monkeypatch):
    """``auto``: the writer process only where it pays for its start (more than 10 trials in
    one process); ``MLF_CHILD_RUNS`` still decides when set."""
    from mlforecast_cli.datasets import load_dataset
    from mlforecast_cli.models.registry import get_registry
    from mlforecast_cli.optimize.plan import OptimizeConfig, child_runs_for, plan_study
    from mlforecast_cli.trials.optuna_study import StudySettings

    monkeypatch.delenv("MLF_CHILD_RUNS")
    panel, registry = load_dataset("walmart"), get_registry()

    def sink(model: str, trials: int, n_jobs: int = 1, **env: str) -> str:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        run = OptimizeConfig(
            StudySettings(horizon=13, n_jobs=n_jobs), "walmart", "e", trials=trials
        )
        study, _ = plan_study(registry.get(model), run, panel)
        return child_runs_for(run, study)

    assert sink("seasonal_naive", 50) == "inline"  # nothing to search: one trial
    assert sink("lightgbm", 10) == "inline"
    assert sink("lightgbm", 11) == "process"
    assert sink("lightgbm", 5, n_jobs=2) == "process"
    assert sink("seasonal_naive", 1, MLF_CHILD_RUNS="process") == "process"
