"""A run of several models ends with their ensemble, and --time-limit bounds the whole run:
its models share the time, each search stopping in time for its refit (real studies, a real
MLflow store, the built-in data)."""

from __future__ import annotations

import json
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient

from mlforecast_cli.optimize.budget import (
    RunBudget,
    StopInTime,
    TimeShare,
    duration_text,
    parse_duration,
)
from mlforecast_cli.optimize.plan import select_models
from tests.plugin_factories import SPACE, MeanModel, spec_plugin


def ensemble_runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("walmart_sales_forecasting")
    return client.search_runs([exp.experiment_id], filter_string="params.model = 'ensemble'")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1.5m", 90)],
)
def test_durations_read_as_a_user_writes_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10 minutes", "m", "-5m", "5d"])
def test_what_is_no_duration_is_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_duration_text():
    assert [duration_text(s) for s in (45, 600, 3900, 0)] == ["45s", "10m", "1h 5m", "0s"]


def test_each_model_gets_an_equal_share_of_what_is_left_after_the_ensemble():
    budget = RunBudget(100.0)
    share = budget.share(3)
    assert share.deadline - time.monotonic() == pytest.approx((100 - 5) / 3, abs=0.5)
    budget.record(7.5)
    assert budget.share(1).fixed == 7.5
    without = RunBudget(100.0, ensemble=False).share(4)
    assert without.deadline - time.monotonic() == pytest.approx(25, abs=0.5)


def test_a_search_stops_before_a_trial_that_would_leave_no_time_for_the_finish():
    """Trials of 0.1 s, a finish of 2 fits (0.2 s) and 0.2 s fixed: a 1.5 s share stops after
    about 10 trials, and the study then ends before its deadline."""
    started = time.monotonic()
    share = TimeShare(deadline=started + 1.5, fixed=0.2)
    study = optuna.create_study()
    study.optimize(lambda t: time.sleep(0.1) or 1.0, n_trials=100, callbacks=[StopInTime(share, 2)])
    assert 5 <= len(study.trials) <= 12
    assert time.monotonic() + 0.2 + 0.2 <= share.deadline + 0.15


def test_models_are_left_out_once_the_time_is_spent(cli, registry, mlflow_uri, tmp_path):
    """A limit too short for more than one model: the first runs its one trial, the others are
    left out with a warning, and the run ends without an ensemble and without an error."""
    registry.add_plugin(spec_plugin("tiny", MeanModel, SPACE, tmp_path), name="tiny")
    result = cli("optimize", "seasonal_naive", "tiny", "--time-limit", "1s", "--json")
    assert result.code == 0, result
    document = json.loads(result.out)
    assert [m["model"] for m in document["models"]] == ["seasonal_naive"]
    assert document["left_out"] == ["tiny"] and document["ensemble"] is None
    assert "--time-limit 1s is spent: tiny left out" in result.err
    [warning] = document["models"][0]["warnings"]  # no time for the older ensemble windows
    assert warning.startswith("--time-limit: no time left for forecasts on 3 windows")


def test_at_least_one_trial_runs_when_the_time_is_spent():
    share = TimeShare(deadline=time.monotonic() - 1, fixed=0.0)
    study = optuna.create_study()
    study.optimize(lambda t: 1.0, n_trials=5, callbacks=[StopInTime(share, 1)])
    assert len(study.trials) == 1


def test_a_plain_run_leaves_out_the_slow_models_and_naming_one_runs_it(registry):
    chosen = {e.name for e in select_models(registry, None).entries}
    assert not chosen & {"lstm", "tcn", "transformer", "arima"} and "seasonal_naive" in chosen
    named = select_models(registry, ["arima"])
    assert [e.name for e in named.entries] == ["arima"] or "arima" in named.broken


def test_several_models_end_with_their_ensemble_and_no_ensemble_skips_it(
    cli, registry, mlflow_uri, tmp_path
):
    registry.add_plugin(spec_plugin("tiny", MeanModel, SPACE, tmp_path), name="tiny")
    result = cli("optimize", "tiny", "seasonal_naive", "--trials", "2", "--json")
    assert result.code == 0, result
    ensemble = json.loads(result.out)["ensemble"]
    assert {m["model"] for m in ensemble["members"]} == {"tiny", "seasonal_naive"}
    assert ensemble["test_metrics"]["mape"] > 0 and ensemble["run_id"]
    [run] = ensemble_runs(mlflow_uri)
    assert run.info.run_id == ensemble["run_id"] and run.info.status == "FINISHED"
    text = cli("optimize", "tiny", "seasonal_naive", "--trials", "1")
    assert "then their ensemble" in text.out and "mlf predict ensemble" in text.out
    assert len(ensemble_runs(mlflow_uri)) == 2
    skipped = cli("optimize", "tiny", "seasonal_naive", "--trials", "1", "--no-ensemble", "--json")
    assert skipped.code == 0 and json.loads(skipped.out)["ensemble"] is None
    assert len(ensemble_runs(mlflow_uri)) == 2
    alone = cli("optimize", "tiny", "--trials", "1", "--json")
    assert json.loads(alone.out)["ensemble"] is None


def test_a_time_limit_bounds_the_run_and_its_models_share_it(cli, registry, mlflow_uri, tmp_path):
    registry.add_plugin(spec_plugin("tiny", MeanModel, SPACE, tmp_path), name="tiny")
    started = time.monotonic()
    result = cli("optimize", "seasonal_naive", "tiny", "--time-limit", "30s", "--json")
    wall = time.monotonic() - started
    assert result.code == 0, result
    document = json.loads(result.out)
    assert document["time_limit"] == 30 and document["ensemble"] is not None
    tiny = next(m for m in document["models"] if m["model"] == "tiny")
    assert tiny["trials"]["complete"] + tiny["trials"]["pruned"] > 2  # the time, not 20 trials
    assert wall < 30 * 1.1 + 5  # a loaded 2-core machine: a little slack for start-up


@pytest.mark.parametrize("limit", ["abc", "0", "0s", "-3m"])
def test_a_bad_time_limit_is_one_line(cli, mlflow_uri, limit):
    result = cli("optimize", "seasonal_naive", "--time-limit", limit)
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert line.startswith("error: --time-limit") and "30m" in line
    client = MlflowClient(mlflow_uri)
    assert not any(client.search_runs([e.experiment_id]) for e in client.search_experiments())


def test_a_model_that_validates_best_so_far_may_finish_on_the_later_models_time():
    """Its older ensemble windows may end by ``lead_deadline``: what is left after the
    ensemble's reserve and half an equal share for each model after it."""
    budget = RunBudget(100.0)
    first = budget.share(3)
    now = time.monotonic()
    assert first.deadline - now == pytest.approx(95 / 3, abs=0.5)
    assert first.lead_deadline - now == pytest.approx(95 - 2 * (95 / 3) / 2, abs=0.5)
    assert first.finish_deadline(20.0) == first.lead_deadline  # the first model leads
    budget.record(1.0, 20.0)
    budget.record(1.0, 25.0)
    assert budget.best == 20.0
    later = budget.share(2)
    assert later.best_before == 20.0
    assert later.finish_deadline(19.0) == later.lead_deadline > later.deadline
    assert later.finish_deadline(21.0) == later.finish_deadline(None) == later.deadline
    assert later.finish_deadline(float("nan")) == later.deadline
    last = budget.share(1)  # no model after it: no time to take
    assert last.finish_deadline(1.0) == pytest.approx(last.deadline)
