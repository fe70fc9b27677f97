"""One model's study as a library user runs it: ``StudyRun.plan(...).execute()``, no CLI.

Real Optuna studies in a journal file, a real MLflow store in the test's folder, real fits.
"""

from __future__ import annotations

import math

import pytest

from mlforecast_cli.datasets import load_dataset
from mlforecast_cli.errors import UsageError
from mlforecast_cli.models.registry import get_model
from mlforecast_cli.optimize.plan import OptimizeConfig
from mlforecast_cli.optimize.study_run import StudyRun
from mlforecast_cli.trials.optuna_study import StudyConfig, StudySettings

HORIZON = 13


def run_config(mlflow_uri: str, **settings) -> OptimizeConfig:
    return OptimizeConfig(
        study=StudySettings(horizon=HORIZON, **settings),
        data_name="walmart",
        experiment="library",
        trials=3,
        tracking_uri=mlflow_uri,
    )


@pytest.fixture
def counted_splits(monkeypatch):
    """Every call of ``split_panel`` from here on, counted."""
    from mlforecast_cli.data import split as split_module

    calls = []
    real = split_module.split_panel

    def counting(*args, **kwargs):
        calls.append(args[1:])
        return real(*args, **kwargs)

    monkeypatch.setattr(split_module, "split_panel", counting)
    return calls


def test_a_study_run_plans_its_split_once_and_runs_end_to_end(mlflow_uri, counted_splits):
    from mlflow.tracking import MlflowClient

    panel = load_dataset("walmart")
    run = StudyRun.plan(get_model("ets"), run_config(mlflow_uri, cv_windows=2), panel)
    assert run.config.study_name == "ets-walmart-h13-mape-cv2"
    assert [len(f.train_end) for f in run.split.folds] == [panel.n_series] * 2
    outcome = run.execute()
    assert counted_splits == [(HORIZON, 2)]  # planned once; search, refit, tables take it
    assert outcome.error is None
    assert outcome.counts["complete"] == 3
    assert math.isfinite(outcome.best_value) and math.isfinite(outcome.test_metrics["mape"])
    assert "coverage_80" in outcome.test_metrics
    assert outcome.reference is not None
    parent = MlflowClient(mlflow_uri).get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["study_name"] == run.config.study_name
    assert parent.data.params["cv_windows"] == "2"


def test_the_reference_and_the_refit_use_the_planned_split(mlflow_uri):
    from mlforecast_cli.trials.reference import reference_scores

    panel = load_dataset("walmart")
    run = StudyRun.plan(get_model("seasonal_naive"), run_config(mlflow_uri), panel)
    outcome = run.execute()
    expected = reference_scores(panel, run.split)
    assert outcome.reference.test_metrics == pytest.approx(expected.test_metrics)
    # the searched seasonal naive is the reference, scored on the same test window
    assert outcome.test_metrics["mape"] == pytest.approx(expected.test_metrics["mape"])


def test_the_logged_model_carries_the_study_metrics_and_mlflow_is_left_as_found(mlflow_uri):
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient
    from mlflow.utils import environment

    checks = [m.warn_dependency_requirement_mismatches for m in (environment, mlflow.pyfunc)]
    panel = load_dataset("walmart")
    outcome = StudyRun.plan(get_model("seasonal_naive"), run_config(mlflow_uri), panel).execute()
    after = [m.warn_dependency_requirement_mismatches for m in (environment, mlflow.pyfunc)]
    assert after == checks  # restored after use
    client = MlflowClient(mlflow_uri)
    run = client.get_run(outcome.parent_run_id)
    uri = run.data.tags["mlf.model_uri"]
    assert uri.startswith("models:/")
    model = client.get_logged_model(uri.removeprefix("models:/"))
    linked = {m.key: m.value for m in model.metrics}
    # the summary is logged after the model and names it: each metric once, on the run too
    assert linked["test_MAPE"] == pytest.approx(outcome.test_metrics["mape"])
    assert linked["test_MAPE"] == run.data.metrics["test_MAPE"]
    assert len(client.get_metric_history(outcome.parent_run_id, "test_MAPE")) == 1


def test_a_resumed_study_adds_its_trials_to_the_first_run(mlflow_uri):
    panel = load_dataset("walmart")
    config = run_config(mlflow_uri)
    first = StudyRun.plan(get_model("theta"), config, panel).execute()
    again = StudyRun.plan(get_model("theta"), config, panel).execute()
    assert first.study_name == again.study_name
    assert sum(again.counts.values()) == sum(first.counts.values()) + 3


def test_a_plan_is_checked_before_anything_is_written(mlflow_uri, tmp_path):
    from mlforecast_cli.errors import DataError

    panel = load_dataset("walmart")
    config = OptimizeConfig(StudySettings(horizon=80), "walmart", "library", 3)
    with pytest.raises(DataError, match="no series in .* is long enough"):
        StudyRun.plan(get_model("ets"), config, panel)
    assert not (tmp_path / ".mlf").exists()


def test_settings_are_checked_when_made():
    with pytest.raises(UsageError, match="--cv-windows 0 must be a whole number of at least 1"):
        StudySettings(horizon=HORIZON, cv_windows=0)
    with pytest.raises(UsageError, match="--device 'tpu' is not one of"):
        StudySettings(horizon=HORIZON, device="tpu")


def test_a_study_config_from_flat_values_sets_the_metric_in_its_space():
    space = get_model("ets").load_space()
    config = StudyConfig.of("ets", "s", space, horizon=8, metric="mae", cv_windows=2)
    assert config.metric == "mae" == config.space.metric
    assert (config.horizon, config.cv_windows, config.seed) == (8, 2, 42)
    assert config.with_seed(7).seed == 7 and config.seed == 42


def test_theta_tries_each_of_its_configurations_once_and_a_rerun_adds_none(mlflow_uri):
    panel = load_dataset("walmart")
    config = run_config(mlflow_uri)
    config = OptimizeConfig(config.study, "walmart", "library", trials=20, tracking_uri=mlflow_uri)
    first = StudyRun.plan(get_model("theta"), config, panel)
    assert first.config.space.size == 10
    outcome = first.execute()
    assert outcome.counts == {"complete": 10, "pruned": 0, "fail": 0}  # not 20: no repeats
    configs = {tuple(sorted(t.params.items())) for t in first.study.trials}
    assert len(configs) == 10
    again = StudyRun.plan(get_model("theta"), config, panel)
    again.execute()
    assert len(again.study.trials) == 10  # every configuration was tried: nothing to add
