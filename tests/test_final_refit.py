"""The production model: after the test, the tested configuration is fitted on the whole
history and saved for `mlf predict`; the test-scored refit stays on the parent run."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from mlforecast_cli import ModelSpec, hookimpl
from mlforecast_cli.data.panel import Panel
from mlforecast_cli.datasets import load_dataset
from mlforecast_cli.forecasting.pyfunc import load_saved_model
from mlforecast_cli.forecasting.saved_model import TRAIN_VALID, WHOLE_HISTORY, SavedModel
from mlforecast_cli.models.registry import Registry, set_registry
from mlforecast_cli.search.metrics import mlflow_key
from mlforecast_cli.tracking.parent_run import TESTED_MODEL_ARTIFACT
from tests.plugin_factories import MeanModel

SPACE = textwrap.dedent(
    """
    params:
      shrink: {type: float, low: 0.0, high: 0.0001}
    fixed:
      window_size: 8
      scaler: window
    """
)


class SeenModel(MeanModel):
    """MeanModel that remembers how far into each series its training labels reached."""

    def fit(self, train, valid=None, report=None):
        reach = train.step_offset + train.horizon  # one past each sample's last label
        self.reach = np.zeros(int(train.series.max()) + 1, dtype=np.int64)
        np.maximum.at(self.reach, train.series, reach)
        return self


class SeenSeries(SeenModel):
    """A whole-series model that remembers the length of each history it was fitted on."""

    def fit(self, train, valid=None, report=None):
        self.reach = np.diff(train.offsets)
        return self

    def predict(self, histories):
        last = histories.values[histories.offsets[1:] - 1]
        return np.repeat(last[:, None], histories.horizon, axis=1)


class LastStepFails(SeenModel):
    """Fails to fit on samples that reach the last step of a series (the final fit only)."""

    def fit(self, train, valid=None, report=None):
        super().fit(train, valid, report)
        if (self.reach >= 143).any():
            raise RuntimeError("cannot fit on the last week")
        return self


def _plugin(name: str, factory, tmp_path, kind: str = "windows"):
    space = tmp_path / f"{name}.yaml"
    space.write_text(SPACE if kind == "windows" else "params: {}\n")

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(
                ModelSpec(
                    name=name,
                    summary="test model",
                    family="other",
                    factory=factory,
                    space=space,
                    input=kind,
                )
            )

    return Plugin()


@pytest.fixture
def seen(tmp_path):
    registry = Registry()
    registry.add_plugin(_plugin("seen", SeenModel, tmp_path), name="seen_plugin")
    registry.add_plugin(
        _plugin("seen_series", SeenSeries, tmp_path, kind="series"), name="series_plugin"
    )
    registry.add_plugin(_plugin("fails_last", LastStepFails, tmp_path), name="fails_plugin")
    set_registry(registry)
    yield
    set_registry(None)


def _parent(uri: str):
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    [run] = client.search_runs(experiments, filter_string="tags.`mlf.role` = 'study'")
    return client, run


def _walmart() -> Panel:
    return load_dataset("walmart")


def test_the_saved_model_has_seen_the_whole_history(cli, mlflow_uri, seen, tmp_path):
    result = cli("optimize", "seen", "--trials", "2", "--json")
    assert result.code == 0, result
    [model] = json.loads(result.out)["models"]
    assert model["trained_on"] == WHOLE_HISTORY
    assert model["final_refit_seconds"] >= 0

    client, run = _parent(mlflow_uri)
    saved = load_saved_model(run.data.tags["mlf.model_uri"])
    lengths = _walmart().lengths
    assert saved.trained_on == WHOLE_HISTORY
    np.testing.assert_array_equal(saved.forecaster.reach, lengths)  # the test weeks included

    # the tested refit stays on the parent run: never saw the test window, holds its metrics
    local = client.download_artifacts(run.info.run_id, TESTED_MODEL_ARTIFACT, str(tmp_path))
    tested = SavedModel.load(local)
    assert tested.trained_on == TRAIN_VALID
    np.testing.assert_array_equal(tested.forecaster.reach, lengths - 13)
    assert tested.test_metrics == saved.test_metrics
    key = mlflow_key("test", "mape")
    assert run.data.metrics[key] == pytest.approx(saved.test_metrics["mape"])
    assert run.data.tags["mlf.trained_on"] == WHOLE_HISTORY
    assert run.data.metrics["final_refit_seconds"] >= 0
    assert run.data.metrics["refit_seconds"] >= 0

    predicted = cli("predict", "seen", "--json")
    assert predicted.code == 0, predicted
    assert json.loads(predicted.out)["trained_on"] == WHOLE_HISTORY


def test_no_final_refit_saves_the_tested_refit(cli, mlflow_uri, seen, tmp_path):
    result = cli("optimize", "seen", "--trials", "1", "--no-final-refit", "--json")
    assert result.code == 0, result
    [model] = json.loads(result.out)["models"]
    assert model["trained_on"] == TRAIN_VALID
    assert model["final_refit_seconds"] is None

    client, run = _parent(mlflow_uri)
    saved = load_saved_model(run.data.tags["mlf.model_uri"])
    assert saved.trained_on == TRAIN_VALID
    np.testing.assert_array_equal(saved.forecaster.reach, _walmart().lengths - 13)
    assert "final_refit_seconds" not in run.data.metrics
    assert run.data.tags["mlf.trained_on"] == TRAIN_VALID
    logged = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert TESTED_MODEL_ARTIFACT not in logged


def test_a_whole_series_model_is_fitted_on_each_whole_history(cli, mlflow_uri, seen):
    result = cli("optimize", "seen_series", "--trials", "1", "--json")
    assert result.code == 0, result
    _, run = _parent(mlflow_uri)
    saved = load_saved_model(run.data.tags["mlf.model_uri"])
    assert saved.trained_on == WHOLE_HISTORY
    np.testing.assert_array_equal(saved.forecaster.reach, _walmart().lengths)


def test_a_failed_final_fit_keeps_the_tested_refit_and_says_so(cli, mlflow_uri, seen):
    result = cli("optimize", "fails_last", "--trials", "1", "--json")
    assert result.code == 0, result
    [model] = json.loads(result.out)["models"]
    assert model["trained_on"] == TRAIN_VALID
    [warning] = [w for w in model["warnings"] if "whole history" in w]
    assert "saved model is the one refit on train + valid" in warning
    assert "cannot fit on the last week" in warning
    assert "\n" not in warning
    _, run = _parent(mlflow_uri)
    saved = load_saved_model(run.data.tags["mlf.model_uri"])
    assert saved.trained_on == TRAIN_VALID
