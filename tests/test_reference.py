"""Every leaderboard has its reference: a study of any model records the seasonal naive's
validation and test metrics on its own split, so `mlf optimize MODEL` alone and `mlf
leaderboard` show the "seasonal_naive (reference)" row and each model's ratio to it."""

from __future__ import annotations

import json

import pytest

from tests.plugin_factories import SPACE, MeanModel, spec_plugin

SEASONAL_NAIVE_TEST_MAPE = 8.90
"""The seasonal naive's test MAPE on Walmart, h=13 (see test_optimize)."""


@pytest.fixture
def tiny(registry, tmp_path):
    registry.add_plugin(spec_plugin("tiny", MeanModel, SPACE, tmp_path), name="tiny")


def test_optimize_of_one_model_shows_the_reference_row_and_ratio(cli, tiny, mlflow_uri):
    result = cli("optimize", "tiny", "--trials", "2", "--json")
    assert result.code == 0, result
    document = json.loads(result.out)
    reference = document["reference"]
    assert reference["model"] == "seasonal_naive"
    test_mape = reference["test_metrics"]["mape"]
    assert test_mape == pytest.approx(SEASONAL_NAIVE_TEST_MAPE, abs=0.005)
    assert reference["val_metrics"]["mape"] > 0
    [model] = document["models"]
    assert model["vs_reference"] == pytest.approx(model["test_metrics"]["mape"] / test_mape)

    table = cli("optimize", "tiny", "--trials", "1")
    assert table.code == 0, table
    assert "seasonal_naive (reference)" in table.out and "vs ref" in table.out
    [line] = [line for line in table.out.splitlines() if "(reference)" in line]
    assert "8.9" in line and "1.00" in line


def test_recorded_reference_is_the_seasonal_naive_study_on_the_same_split(cli, tiny, mlflow_uri):
    args = ("optimize", "tiny", "seasonal_naive", "--trials", "1", "--cv-windows", "2", "--json")
    result = cli(*args)
    assert result.code == 0, result
    document = json.loads(result.out)
    models = {m["model"]: m for m in document["models"]}
    naive, reference = models["seasonal_naive"], document["reference"]
    point = {k: naive["test_metrics"][k] for k in reference["test_metrics"]}  # not intervals
    assert reference["test_metrics"] == pytest.approx(point)
    assert reference["val_metrics"]["mape"] == pytest.approx(naive["best_value"])
    assert naive["vs_reference"] == pytest.approx(1.0)


def test_leaderboard_shows_the_reference_of_a_study_without_it(cli, tiny, mlflow_uri):
    assert cli("optimize", "tiny", "--trials", "2", "--quiet").code == 0
    result = cli("leaderboard", "--json")
    assert result.code == 0, result
    rows = {r["model"]: r for r in json.loads(result.out)["models"]}
    assert set(rows) == {"tiny", "seasonal_naive"}
    naive = rows["seasonal_naive"]
    assert naive["test"] == pytest.approx(SEASONAL_NAIVE_TEST_MAPE, abs=0.005)
    assert naive["reference"] is True and naive["run_id"] is None
    assert rows["tiny"]["vs_reference"] == pytest.approx(rows["tiny"]["test"] / naive["test"])
    table = cli("leaderboard")
    assert table.code == 0, table
    assert "seasonal_naive (reference)" in table.out and "vs ref" in table.out
    # predict and the report use only studies with a run: the reference row is not one
    assert cli("predict", "--output", "f.csv").code == 0
