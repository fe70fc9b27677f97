"""The bad-input matrix: every case is exit 2 (1 outside the user's input), one clear line
naming the thing and the fix, no traceback, and nothing half-written left behind."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

GOOD = "params:\n  shrink: {type: float, low: 0.0, high: 1.0}\n"


def frame(n_series: int = 2, weeks: int = 60) -> pd.DataFrame:
    dates = pd.date_range("2021-01-01", periods=weeks, freq="W-FRI")
    return pd.concat(
        pd.DataFrame({"store": s, "date": dates, "sales": 100.0 + s + (dates.day_of_year % 7)})
        for s in range(n_series)
    ).reset_index(drop=True)


def csv(tmp: Path, df: pd.DataFrame | None = None, text: str | None = None) -> str:
    path = tmp / "sales.csv"
    if text is not None:
        path.write_text(text)
    else:
        df.to_csv(path, index=False)
    return str(path)


def with_data(tmp: Path, df=None, text=None, target="sales", time="date", ids=("store",)):
    args = ["--data", csv(tmp, df, text), "--target", target, "--time-col", time, "--horizon", "4"]
    for column in ids:
        args += ["--id-col", column]
    return args


def space(tmp: Path, text: str) -> list[str]:
    path = tmp / "space.yaml"
    path.write_text(text)
    return ["--space", str(path)]


def text_in_target(tmp):
    df = frame()
    df["sales"] = df["sales"].astype(object)
    df.loc[5, "sales"] = "ten"
    return with_data(tmp, df)


def duplicate_rows(tmp):
    df = frame()
    return with_data(tmp, pd.concat([df, df.iloc[[3]]]))


def gap(tmp):
    return with_data(tmp, frame().drop(index=10))


def missing_target(tmp):
    df = frame()
    df.loc[7, "sales"] = None
    return with_data(tmp, df)


def two_kinds_in_target(tmp):
    df = frame()
    df["sales"] = df["sales"].astype(object)
    df.loc[5, "sales"] = "n/a"
    df.loc[9, "sales"] = "12,345.00"
    return with_data(tmp, df)


def bad_dates(tmp):
    df = frame()
    df["date"] = df["date"].astype(str)
    df.loc[2, "date"] = "someday"
    return with_data(tmp, df)


CASES = {
    # --- command line
    "unknown model": (lambda t: ["optimize", "lightgbmx"], "unknown model 'lightgbmx'"),
    "negative trials": (lambda t: ["optimize", "seasonal_naive", "--trials", "-3"], "--trials"),
    "zero trials": (lambda t: ["optimize", "seasonal_naive", "--trials", "0"], "--trials"),
    "unknown metric": (lambda t: ["optimize", "seasonal_naive", "--metric", "r2"], "--metric"),
    "unknown device": (lambda t: ["optimize", "seasonal_naive", "--device", "tpu"], "--device"),
    "zero jobs": (lambda t: ["optimize", "seasonal_naive", "--n-jobs", "0"], "--n-jobs"),
    "jobs on a memory storage": (
        lambda t: ["optimize", "seasonal_naive", "--n-jobs", "2", "--storage", "memory"],
        "--storage memory lives in one process",
    ),
    "zero horizon": (lambda t: ["optimize", "seasonal_naive", "--horizon", "0"], "--horizon"),
    "horizon too long": (
        lambda t: ["optimize", "seasonal_naive", "--horizon", "80"],
        "pass a smaller --horizon",
    ),
    "too many cv windows": (
        lambda t: ["optimize", "seasonal_naive", "--cv-windows", "12"],
        "--cv-windows",
    ),
    "zero ensemble windows": (
        lambda t: ["optimize", "seasonal_naive", "--ensemble-windows", "0"],
        "--ensemble-windows",
    ),
    "misspelt parameter in --set": (
        lambda t: ["optimize", "lightgbm", "--set", "num_leavs=1..5"],
        "--set num_leavs: model 'lightgbm' has no parameter 'num_leavs'; did you mean "
        "'num_leaves'?",
    ),
    "misspelt parameter in a space file": (
        lambda t: [
            "optimize",
            "lightgbm",
            *space(t, "params:\n  num_leavs: {type: int, low: 4, high: 64}\n"),
        ],
        "params.num_leavs: model 'lightgbm' has no parameter 'num_leavs'; did you mean "
        "'num_leaves'?",
    ),  # fmt: skip
    "misspelt parameter in --set for several models": (
        lambda t: ["optimize", "seasonal_naive", "tcn", "--set", "epoch=1"],
        "none of the models seasonal_naive, tcn has a parameter 'epoch'; did you mean "
        "'epochs' (tcn)?",
    ),
    "window_size for a whole-series model": (
        lambda t: ["optimize", "ets", "--set", "window_size=4..20"],
        "model 'ets' has no parameter 'window_size'",
    ),
    "unknown dataset": (lambda t: ["optimize", "seasonal_naive", "--dataset", "m5"], "'m5'"),
    "mapping without --data": (
        lambda t: ["optimize", "seasonal_naive", "--target", "sales"],
        "add --data",
    ),
    "--data without --target": (
        lambda t: ["optimize", "seasonal_naive", "--data", csv(t, frame())],
        "--target",
    ),
    "unknown flag value type": (lambda t: ["optimize", "--trials", "many"], "--trials"),
    "unknown flag": (lambda t: ["optimize", "--trails", "3"], "--trails"),
    "global option after the command": (
        lambda t: ["optimize", "--plugins-dir", str(t), "seasonal_naive"],
        "put it before the command, as in 'mlf --plugins-dir DIR optimize ...'",
    ),
    "storage that cannot connect": (
        lambda t: ["optimize", "seasonal_naive", "--storage", "postgresql://me:pw@127.0.0.1:9/x"],
        "cannot open the study storage",
    ),
    "storage that is no URL": (
        lambda t: ["optimize", "seasonal_naive", "--storage", "my-db"],
        "not a storage URL",
    ),
    "tracking store that cannot be used": (
        lambda t: ["optimize", "seasonal_naive", "--tracking-uri", "sqlite:////proc/none/m.db"],
        "cannot use the MLflow tracking store",
    ),
    "leaderboard of an unknown experiment": (
        lambda t: ["leaderboard", "--experiment", "nothing-here"],
        "no MLflow experiment",
    ),
    # --- data files
    "missing data file": (
        lambda t: [
            "optimize",
            "seasonal_naive",
            "--data",
            str(t / "nope.csv"),
            "--target",
            "a",
            "--time-col",
            "b",
        ],
        "nope.csv",
    ),
    "empty file": (lambda t: ["optimize", "seasonal_naive", *with_data(t, text="")], "empty"),
    "file that is not CSV": (
        lambda t: ["optimize", "seasonal_naive", *with_data(t, text="\x00\x01\x02\xff" * 50)],
        "sales.csv",
    ),
    "misnamed target column": (
        lambda t: ["optimize", "seasonal_naive", *with_data(t, frame(), target="Sales")],
        "Sales",
    ),
    "misnamed time column": (
        lambda t: ["optimize", "seasonal_naive", *with_data(t, frame(), time="week")],
        "week",
    ),
    "missing id column": (
        lambda t: ["optimize", "seasonal_naive", *with_data(t, frame(), ids=("shop",))],
        "shop",
    ),
    "text in the target": (lambda t: ["optimize", "seasonal_naive", *text_in_target(t)], "ten"),
    "missing and thousands-separated target values, in one message": (
        lambda t: ["optimize", "seasonal_naive", *two_kinds_in_target(t)],
        "1 missing (empty, or a marker such as n/a), first at row 6 (series '0', date "
        "2021-02-05); 1 written with thousands separators, first '12,345.00' at row 10",
    ),
    "missing target values": (
        lambda t: ["optimize", "seasonal_naive", *missing_target(t)],
        "sales",
    ),
    "duplicate timestamps": (
        lambda t: ["optimize", "seasonal_naive", *duplicate_rows(t)],
        "duplicate",
    ),
    "gap in the time index": (lambda t: ["optimize", "seasonal_naive", *gap(t)], "gap"),
    "unparseable dates": (lambda t: ["optimize", "seasonal_naive", *bad_dates(t)], "someday"),
    # --- space files and overrides
    "YAML that does not parse": (
        lambda t: ["optimize", "seasonal_naive", *space(t, "params: {a: [1, 2\n")],
        "space.yaml",
    ),
    "YAML with wrong types": (
        lambda t: [
            "optimize",
            "seasonal_naive",
            *space(t, "params:\n  lr: {type: float, low: abc, high: 1}\n"),
        ],
        "params.lr.low",
    ),
    "low above high": (
        lambda t: [
            "optimize",
            "seasonal_naive",
            *space(t, "params:\n  lr: {type: float, low: 2, high: 1}\n"),
        ],
        "params.lr",
    ),
    "unknown space key": (
        lambda t: ["optimize", "seasonal_naive", *space(t, GOOD + "optimiser: {}\n")],
        "optimiser",
    ),
    "missing space file": (
        lambda t: ["optimize", "seasonal_naive", "--space", str(t / "none.yaml")],
        "none.yaml",
    ),
    "malformed --set": (lambda t: ["optimize", "seasonal_naive", "--set", "window"], "--set"),
    "wrong type in --set": (
        lambda t: ["optimize", "seasonal_naive", "--set", "optimizer.metric=accuracy"],
        "optimizer.metric",
    ),
    "bad pruner argument": (
        lambda t: ["optimize", "seasonal_naive", "--set", "optimizer.pruner.n_warmup_step=3"],
        "n_warmup_step",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, cli, mlflow_uri, tmp_path):
    build, needle = CASES[name]
    result = cli(*build(tmp_path))
    assert result.code == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.err and "pw@" not in result.err
    assert result.out == ""
    # nothing half-written: no study, no MLflow run
    journal = tmp_path / ".mlf" / "optuna.journal"
    assert not journal.exists() or journal.stat().st_size == 0
    client = MlflowClient(mlflow_uri)
    assert not any(client.search_runs([e.experiment_id]) for e in client.search_experiments())


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "num_leavs=10"],
        ["--set", "optimizer.first_trial={num_leavs: 10}"],
    ],
)
def test_show_space_refuses_a_misspelt_parameter(args, cli):
    result = cli("show-space", "lightgbm", *args)
    assert result.code == 2 and result.out == "", result
    assert "did you mean 'num_leaves'?" in result.err and len(result.err.splitlines()) == 1


def test_show_space_takes_what_a_model_declares_beyond_its_space(cli):
    result = cli("show-space", "lightgbm", "--set", "huber_delta=2.0")  # extra_params
    assert result.code == 0 and "huber_delta: 2.0" in result.out, result


def test_with_several_models_a_set_goes_to_those_that_declare_it(registry):
    from mlforecast_cli.datasets import load_dataset
    from mlforecast_cli.optimize.plan import OptimizeConfig, plan_study
    from mlforecast_cli.trials.optuna_study import StudySettings

    settings = StudySettings(horizon=4, device="cpu")
    config = OptimizeConfig(settings, "walmart", "e", assignments=("epochs=1", "window_size=9"))
    panel = load_dataset("walmart")
    tcn, _ = plan_study(registry.get("tcn"), config, panel, several=True)
    naive, _ = plan_study(registry.get("seasonal_naive"), config, panel, several=True)
    assert tcn.space.fixed["epochs"] == 1 and tcn.space.fixed["window_size"] == 9
    assert "epochs" not in naive.space.to_dict()["fixed"]
    assert naive.space.fixed["window_size"] == 9


def test_the_matrix_is_big_enough():
    assert len(CASES) >= 25


def test_a_storage_that_is_no_url_is_refused_before_mlflow_or_the_data_is_touched(cli, tmp_path):
    store = tmp_path / "fresh.db"
    result = cli("optimize", "seasonal_naive", "--storage", "my-db", "--tracking-uri",
                 f"sqlite:///{store}", "--data", str(tmp_path / "missing.csv"))  # fmt: skip
    assert result.code == 2 and "not a storage URL" in result.err, result
    assert not store.exists()
