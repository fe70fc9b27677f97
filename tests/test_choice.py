"""The test window scores, it never chooses: `mlf leaderboard`, `mlf report`, the end-of-run
table and `mlf predict` (no model) rank and choose by validation; and the experiment a plain
command means is found in the store."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from tests.plugin_factories import SPACE, MeanModel, spec_plugin
from tests.test_ensemble import DATA_ARGS, _sales


@pytest.fixture
def tiny(registry, tmp_path):
    registry.add_plugin(spec_plugin("tiny", MeanModel, SPACE, tmp_path), name="tiny")


def _rows(cli, *args: str) -> list[dict]:
    result = cli("leaderboard", "--json", *args)
    assert result.code == 0, result
    return json.loads(result.out)["models"]


def test_validation_chooses_when_the_test_order_disagrees(cli, tiny, mlflow_uri, tmp_path):
    run = ("optimize", "tiny", "seasonal_naive", "--trials", "2", "--quiet", "--no-ensemble")
    assert cli(*run).code == 0
    rows = _rows(cli)
    winner, loser = rows[0], rows[1]
    assert winner["val"] < loser["val"]
    # make the validation winner the test loser: its recorded test MAPE twice the other's
    MlflowClient(mlflow_uri).log_metric(winner["run_id"], "test_MAPE", 2 * loser["test"])
    rows = _rows(cli)
    assert [r["model"] for r in rows] == [winner["model"], loser["model"]]
    assert rows[0]["test"] > rows[1]["test"]
    table = cli("leaderboard")
    assert "ranked by validation MAPE" in table.out and "never ranks" in table.out
    page = tmp_path / "report.html"
    assert cli("report", "--output", str(page)).code == 0
    html = page.read_text()
    assert "ranked by validation MAPE" in html
    first, second = (html.index(f"{r['model']}: study") for r in (winner, loser))
    assert first < second
    result = cli("predict", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["run_id"] == winner["run_id"]


def test_the_end_of_run_table_ranks_by_validation():
    from mlforecast_cli.tracking.leaderboard import outcome_rows

    def outcome(model: str, val: float, test: float):
        return SimpleNamespace(
            model=model,
            study_name=f"{model}-study",
            best_value=val,
            test_metrics={"mape": test},
            reference=None,
            counts={"complete": 1},
            naive_fallback=0,
            seconds=1.0,
        )

    rows = outcome_rows([outcome("a", 6.0, 5.0), outcome("b", 5.0, 9.0)], "mape")
    assert [r["model"] for r in rows] == ["b", "a"]


def test_a_plain_command_finds_the_experiment_of_a_data_file_run(cli, tiny, mlflow_uri, tmp_path):
    data = tmp_path / "sales.csv"
    _sales().to_csv(data, index=False)
    args = ["--data", str(data), *DATA_ARGS, "--horizon", "4", "--trials", "1", "--quiet"]
    assert cli("optimize", "tiny", "seasonal_naive", *args).code == 0
    table = cli("leaderboard")
    assert table.code == 0, table
    assert "experiment 'sales' (the only one with studies in this store)" in table.out
    assert json.loads(cli("leaderboard", "--json").out)["experiment"] == "sales"
    ensemble = cli("ensemble", "--json")
    assert ensemble.code == 0, ensemble
    assert json.loads(ensemble.out)["experiment"] == "sales"
    # a later run in another experiment is the one a plain command means; it names the other
    assert cli("optimize", "tiny", "--trials", "1", "--quiet").code == 0
    table = cli("leaderboard")
    assert "experiment 'walmart_sales_forecasting' (its study ran last; also here: sales" in (
        table.out
    )
    assert json.loads(cli("leaderboard", "--json", "--experiment", "sales").out)["experiment"] == (
        "sales"
    )


@pytest.mark.parametrize("command", ["leaderboard", "ensemble", "report", "predict"])
def test_a_store_without_studies_is_one_line(cli, mlflow_uri, command):
    result = cli(command)
    assert result.code == 2, result
    assert "no mlf study in any experiment of sqlite:///" in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_a_rerun_with_another_space_is_its_own_study(cli, tiny, mlflow_uri):
    """--set makes a new default study name (the same --set resumes it); a named study
    resumed with another space is refused with the params that changed."""

    def study(*args: str) -> dict:
        result = cli("optimize", "tiny", "--trials", "1", "--json", *args)
        assert result.code == 0, result
        return json.loads(result.out)["models"][0]

    plain = study()
    narrow = study("--set", "shrink=0.2..0.4")
    assert plain["study_name"] == "tiny-walmart-h13-mape"
    assert narrow["study_name"].startswith("tiny-walmart-h13-mape-s")
    assert study("--set", "shrink=0.2..0.4")["study_name"] == narrow["study_name"]
    assert study()["study_name"] == plain["study_name"]
    assert study("--study-name", "mine")["study_name"] == "mine"
    result = cli("optimize", "tiny", "--trials", "1", "--study-name", "mine", "--set", "shrink=0.5")
    assert result.code == 2, result
    assert (
        "study 'mine' was created for another task (search space: changed shrink): pass a new "
        "--study-name" in result.err
    )
    assert len(result.err.strip().splitlines()) == 1
