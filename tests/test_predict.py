"""`mlf predict` and the logged MLflow pyfunc model: real studies, a real MLflow store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlforecast_cli.cli import main
from mlforecast_cli.datasets import dataset_path, dataset_table
from mlforecast_cli.models.registry import Registry, set_registry
from tests.plugin_factories import MeanModel, spec_plugin

EXPERIMENT = "walmart_sales_forecasting"
ROOT = Path(__file__).resolve().parents[1]


class FeatureModel(MeanModel):
    """The window mean plus twice the first known feature: a model that uses its features."""

    def predict(self, windows):
        mean = windows.x.mean(axis=1, keepdims=True)
        return mean + 2.0 * windows.features[:, :, 0]


FEATURE_SPACE = textwrap.dedent(
    """
    params:
      shrink: {type: float, low: 0.0, high: 0.0001}
    fixed:
      window_size: 8
      scaler: window
    """
)


@dataclass
class Store:
    """A finished `mlf optimize` in its own folder with its own MLflow store."""

    root: Path
    uri: str
    run_id: str
    model_uri: str
    data: Path | None = None


def _call(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    return 0


def _optimize(tmp_path_factory, template: Path, name: str, args, plugins=()) -> Store:
    """Run `mlf optimize ARGS` once in a fresh folder and MLflow store."""
    root = tmp_path_factory.mktemp(name)
    db = root / "mlflow.db"
    shutil.copy(template, db)
    uri = f"sqlite:///{db}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLF_HOME", str(root / ".mlf"))
        mp.setenv("MLF_CHILD_RUNS", "inline")  # as the tests' _fast_optimize fixture
        mp.setenv("MLF_PLOTS", "0")
        registry = Registry()
        for plugin, plugin_name in plugins:
            registry.add_plugin(plugin, name=plugin_name)
        set_registry(registry)
        try:
            assert _call("optimize", *args, "--quiet") == 0
        finally:
            set_registry(None)
    client = MlflowClient(uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.`mlf.role` = 'study'",
    )
    [run] = runs
    return Store(root, uri, run.info.run_id, run.data.tags["mlf.model_uri"])


@pytest.fixture(scope="module")
def naive(tmp_path_factory, _mlflow_template) -> Store:
    """seasonal_naive, 3 trials, on the built-in Walmart data."""
    return _optimize(
        tmp_path_factory, _mlflow_template, "naive", ["seasonal_naive", "--trials", "3"]
    )


def _sales(n_series: int = 3, length: int = 70, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2020-01-03", periods=length, freq="W-FRI")
    parts = []
    for s, shop in enumerate("ABC"[:n_series]):
        promo = rng.integers(0, 2, length)
        units = 100 + 10 * s + 15 * promo + rng.normal(0, 2, length)
        parts.append(pd.DataFrame({"shop": shop, "week": dates, "units": units, "promo": promo}))
    return pd.concat(parts, ignore_index=True)


def _future(frame: pd.DataFrame, steps: int, promo) -> pd.DataFrame:
    """Rows after each series' end with the promo values and no target."""
    rows = []
    for shop, part in frame.groupby("shop"):
        last = part["week"].max()
        for j in range(steps):
            value = promo[j] if isinstance(promo, list | tuple) else promo
            rows.append(
                {
                    "shop": shop,
                    "week": last + pd.Timedelta(weeks=j + 1),
                    "units": None,
                    "promo": value,
                }
            )
    return pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)


PROMO = ("predict", "promo_model", "--experiment", "sales")
FEATURE_ARGS = ["--target", "units", "--time-col", "week", "--id-col", "shop", "--feature", "promo"]


@pytest.fixture(scope="module")
def featured(tmp_path_factory, _mlflow_template) -> Store:
    """FeatureModel trained on a small file with a known-in-advance promo flag, horizon 4."""
    folder = tmp_path_factory.mktemp("featured-data")
    path = folder / "sales.csv"
    _sales().to_csv(path, index=False)
    plugin = spec_plugin("promo_model", FeatureModel, FEATURE_SPACE, folder)
    store = _optimize(
        tmp_path_factory,
        _mlflow_template,
        "featured",
        ["promo_model", "--trials", "2", "--data", str(path), *FEATURE_ARGS, "--horizon", "4"],
        plugins=[(plugin, "promo_plugin")],
    )
    store.data = path
    return store


@pytest.fixture
def use(monkeypatch):
    """Point this test at a store."""

    def point(store: Store) -> Store:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
        return store

    return point


def _mlflow_models_predict(model_uri, path, kind, tracking_uri, folder) -> pd.DataFrame:
    """`mlflow models predict` (the real MLflow CLI, local environment) on an input file."""
    served = folder / "served.json"
    done = subprocess.run(
        [sys.executable, "-m", "mlflow", "models", "predict", "-m", model_uri, "-i", str(path)]
        + ["-t", kind, "--env-manager", "local", "-o", str(served)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,  # the test models live in tests/
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return pd.DataFrame(json.loads(served.read_text())["predictions"])


def _walmart() -> pd.DataFrame:
    with dataset_path("walmart") as path:
        return pd.read_csv(path)


# --------------------------------------------------------------------------- the forecast


def test_predict_writes_13_weeks_per_walmart_series(cli, naive, use, tmp_path):
    use(naive)
    out = tmp_path / "f.csv"
    result = cli("predict", "seasonal_naive", "--output", str(out))
    assert result.code == 0, result
    assert "91 rows (7 series × 13 steps)" in result.out
    forecast = pd.read_csv(out, parse_dates=["Date"])
    assert list(forecast.columns) == ["Store", "Dept", "Date", "forecast"]
    data = _walmart()
    data["Date"] = pd.to_datetime(data["Date"])
    assert forecast.groupby(["Store", "Dept"]).size().tolist() == [13] * 7
    for (store, dept), part in forecast.groupby(["Store", "Dept"]):
        history = data[(data.Store == store) & (data.Dept == dept)].sort_values("Date")
        last = history["Date"].max()
        expected = pd.date_range(last + pd.Timedelta(weeks=1), periods=13, freq="W-FRI")
        assert list(part["Date"]) == list(expected)  # the weekly index goes on
        # the seasonal naive forecast is the value 52 weeks earlier
        back = history.set_index("Date")["Weekly_Sales"]
        want = [back[d - pd.Timedelta(weeks=52)] for d in expected]
        np.testing.assert_allclose(part["forecast"], want)


@pytest.mark.slow  # the MLflow CLI in a subprocess
def test_mlflow_models_predict_and_pyfunc_give_the_mlf_predict_numbers(cli, naive, use, tmp_path):
    use(naive)
    out = tmp_path / "f.csv"
    assert cli("predict", "--run-id", naive.run_id, "--output", str(out)).code == 0
    ours = pd.read_csv(out, parse_dates=["Date"])
    frame = _walmart()

    model = mlflow.pyfunc.load_model(f"runs:/{naive.run_id}/model")
    loaded = model.predict(frame)
    pd.testing.assert_frame_equal(
        loaded.reset_index(drop=True), ours, check_dtype=False, check_exact=False, rtol=1e-12
    )
    # the real MLflow CLI, on a CSV file (dates as text, extra columns ignored)
    csv = tmp_path / "input.csv"
    frame.to_csv(csv, index=False)
    predictions = _mlflow_models_predict(naive.model_uri, csv, "csv", naive.uri, tmp_path)
    predictions["Date"] = pd.to_datetime(predictions["Date"])
    pd.testing.assert_frame_equal(predictions, ours, check_dtype=False, rtol=1e-12)


def test_the_logged_model_is_linked_typed_and_has_an_example(naive, use):
    use(naive)
    client = MlflowClient(naive.uri)
    run = client.get_run(naive.run_id)
    model_id = naive.model_uri.removeprefix("models:/")
    assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
    logged = client.get_logged_model(model_id)
    assert logged.source_run_id == naive.run_id
    assert logged.name == "model"
    info = mlflow.models.get_model_info(naive.model_uri)
    inputs = {c.name: str(c.type) for c in info.signature.inputs.inputs}
    assert set(inputs) == {"Store", "Dept", "Date", "Weekly_Sales", "IsHoliday"}
    assert [c.name for c in info.signature.outputs.inputs] == ["Store", "Dept", "Date", "forecast"]
    assert {p.name: p.default for p in info.signature.params.params} == {
        "horizon": 13,
        "fill_features": "error",
        "level": [],  # no interval unless asked for
    }
    assert info.saved_input_example_info["type"] == "dataframe"
    # the serving example MLflow keeps with the model is valid for serving
    local = Path(mlflow.artifacts.download_artifacts(naive.model_uri))
    served = local.parent / "served.json"
    mlflow.models.predict(
        naive.model_uri,
        input_path=str(local / "serving_input_example.json"),
        content_type="json",
        output_path=str(served),
        env_manager="local",
    )
    assert len(json.loads(served.read_text())["predictions"]) == 3 * 13  # 3 series in it
    requirements = (local / "requirements.txt").read_text()
    assert "mlforecast-cli==" in requirements and "mlflow==" in requirements


def test_pyfunc_params_horizon(naive, use):
    use(naive)
    model = mlflow.pyfunc.load_model(naive.model_uri)
    frame = _walmart()
    short = model.predict(frame, params={"horizon": 4})
    full = model.predict(frame)
    assert len(short) == 7 * 4
    first4 = full.groupby(["Store", "Dept"]).head(4).reset_index(drop=True)
    pd.testing.assert_frame_equal(short.reset_index(drop=True), first4)
    with pytest.raises(Exception, match="longer than the 13 steps"):
        model.predict(frame, params={"horizon": 14})


def test_horizon_shorter_truncates_longer_refuses(cli, naive, use):
    use(naive)
    result = cli("predict", "seasonal_naive", "--horizon", "3", "--json")
    assert result.code == 0, result
    document = json.loads(result.out)
    assert document["horizon"] == 3 and document["series"] == 7
    assert len(document["forecast"]) == 21
    assert document["forecast"][0] == {
        "Store": 1,
        "Dept": 1,
        "Date": "2012-11-02",
        "forecast": pytest.approx(document["forecast"][0]["forecast"]),
    }
    assert document["run_id"] == naive.run_id and document["model_uri"] == naive.model_uri
    result = cli("predict", "seasonal_naive", "--horizon", "14")
    assert result.code == 2
    assert "longer than the 13 steps" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_table_output(cli, naive, use):
    use(naive)
    result = cli("predict", "--study-name", "seasonal_naive-walmart-h13-mape", "--horizon", "2")
    assert result.code == 0, result
    assert "7 series × 2 steps" in result.out
    assert "2012-11-09" in result.out and "forecast" in result.out


def test_parquet_output(cli, naive, use, tmp_path):
    pytest.importorskip("pyarrow")
    use(naive)
    out = tmp_path / "f.parquet"
    assert cli("predict", "--output", str(out)).code == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 91 and list(frame.columns) == ["Store", "Dept", "Date", "forecast"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "f.txt"], "unknown file type '.txt'"),
        (["--output", "f"], "unknown file type '(no extension)'"),
        (["--output", "missing/f.csv"], "folder missing does not exist"),
        (["--output", "/proc/f.csv"], "cannot write there"),
        (["--run-id", "0123456789abcdef"], "no MLflow run with id"),
        (["--study-name", "nope"], "no study named 'nope'"),
        (["lightgbmm"], "no study of model 'lightgbmm'"),
        (["--experiment", "nothing"], "no MLflow experiment named 'nothing'"),
        (["--study-name", "a", "--run-id", "b"], "exclude each other"),
        (["--fill-features", "mean"], "--fill-features 'mean'"),
        (["--data", "nofile.csv"], "data file not found"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_file(cli, naive, use, tmp_path, args, message):
    use(naive)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli("predict", *args)
    assert result.code == 2, result
    assert message in result.err
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_failed_write_leaves_no_half_file(cli, naive, use, tmp_path, monkeypatch):
    use(naive)
    out = tmp_path / "f.csv"
    out.write_text("the old forecast\n")

    def broken(self, path, *args, **kwargs):
        Path(path).write_text("Store,Dept,Da")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    result = cli("predict", "--output", str(out))
    assert result.code == 3, result  # a full disk: ServiceLost, free space and rerun
    assert "No space left on device" in result.err
    assert out.read_text() == "the old forecast\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv"]


def test_a_run_without_model_is_a_clear_error(cli, naive, use, tmp_path):
    use(naive)
    client = MlflowClient(naive.uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    run = client.create_run(exp.experiment_id, tags={"mlf.role": "study", "mlf.study": "empty"})
    client.set_terminated(run.info.run_id, "FAILED")
    try:
        result = cli("predict", "--run-id", run.info.run_id)
        assert result.code == 2, result
        assert "has no usable refit model" in result.err
    finally:
        client.delete_run(run.info.run_id)


# --------------------------------------------------------------------------- known features


def test_missing_future_features_are_named(cli, featured, use):
    use(featured)
    result = cli(*PROMO, "--data", str(featured.data))
    assert result.code == 2, result
    err = " ".join(result.err.split())
    assert "uses the feature(s) promo" in err
    assert "A: 2021-05-07..2021-05-28" in err
    assert "--fill-features season" in err


def test_future_feature_rows_drive_the_forecast(cli, featured, use, tmp_path):
    use(featured)
    frame = _future(_sales(), 4, [1, 0, 1, 0])
    path = tmp_path / "with_future.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "f.csv"
    result = cli(*PROMO, "--data", str(path), "--output", str(out))
    assert result.code == 0, result
    forecast = pd.read_csv(out, parse_dates=["week"])
    assert list(forecast.columns) == ["shop", "week", "forecast"]
    for _, part in forecast.groupby("shop"):
        values = part["forecast"].to_numpy()
        assert values[0] > values[1] and values[2] > values[3]  # promo weeks sell more
        assert values[0] == pytest.approx(values[2]) and values[1] == pytest.approx(values[3])
    # the pyfunc model gives the same numbers from the same table
    model = mlflow.pyfunc.load_model(featured.model_uri)
    loaded = model.predict(frame)
    np.testing.assert_allclose(loaded["forecast"], forecast["forecast"], rtol=1e-12)


@pytest.mark.slow  # the MLflow CLI in a subprocess
def test_mlflow_models_predict_with_json_params_and_future_rows(cli, featured, use, tmp_path):
    use(featured)
    frame = _future(_sales(), 2, 1)  # 2 of the 4 weeks known: fill the rest one season back
    request = {
        "dataframe_split": json.loads(
            frame.to_json(orient="split", index=False, date_format="iso")
        ),
        "params": {"fill_features": "season"},
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    served = _mlflow_models_predict(featured.model_uri, path, "json", featured.uri, tmp_path)
    data = tmp_path / "future.csv"
    frame.to_csv(data, index=False)
    result = cli(*PROMO, "--data", str(data), "--fill-features", "season", "--json")
    assert result.code == 0, result
    ours = pd.DataFrame(json.loads(result.out)["forecast"])
    assert len(served) == len(ours) == 12
    np.testing.assert_allclose(served["forecast"], ours["forecast"], rtol=1e-12)
    assert list(pd.to_datetime(served["week"])) == list(pd.to_datetime(ours["week"]))


def test_partial_future_features_and_fill_choices(cli, featured, use, tmp_path):
    use(featured)
    path = tmp_path / "two_weeks.csv"
    _future(_sales(), 2, 1).to_csv(path, index=False)
    assert cli(*PROMO, "--data", str(path), "--horizon", "2").code == 0
    result = cli(*PROMO, "--data", str(path))
    assert result.code == 2
    assert "2021-05-21..2021-05-28" in " ".join(result.err.split())
    for choice in ("season", "zero"):
        result = cli(*PROMO, "--data", str(path), "--fill-features", choice)
        assert result.code == 0, (choice, result)
    result = cli(*PROMO, "--data", str(path), "--fill-features", "season", "--json")
    season = json.loads(result.out)["forecast"]
    frame = _sales()
    for shop in "ABC":
        rows = [r for r in season if r["shop"] == shop]
        history = frame[frame.shop == shop].set_index("week")["promo"]
        back = [history[pd.Timestamp(r["week"]) - pd.Timedelta(weeks=52)] for r in rows]
        # steps 3-4 take the promo of 52 weeks before: the forecast moves with it
        step = rows[3]["forecast"] - rows[2]["forecast"]
        assert np.sign(step) == np.sign(back[3] - back[2])


def test_a_model_that_ignores_features_needs_no_future_rows(
    cli, use, tmp_path, tmp_path_factory, _mlflow_template, capsys
):
    path = tmp_path / "sales.csv"
    _sales().to_csv(path, index=False)
    plugin = spec_plugin("plain_mean", MeanModel, FEATURE_SPACE, tmp_path)
    store = _optimize(
        tmp_path_factory,
        _mlflow_template,
        "plain",
        ["plain_mean", "--trials", "1", "--data", str(path), *FEATURE_ARGS, "--horizon", "4"],
        plugins=[(plugin, "plain_plugin")],
    )
    capsys.readouterr()  # what optimize printed
    use(store)
    result = cli("predict", "plain_mean", "--experiment", "sales", "--data", str(path), "--json")
    assert result.code == 0, result
    assert len(json.loads(result.out)["forecast"]) == 12


def test_data_problems_are_named(cli, featured, use, tmp_path):
    use(featured)
    frame = _sales()
    other = frame[frame.shop == "A"].assign(shop="Z")
    path = tmp_path / "new_shop.csv"
    pd.concat([frame, other]).to_csv(path, index=False)
    result = cli(*PROMO, "--data", str(path), "--fill-features", "zero")
    assert result.code == 2 and "series 'Z'" in result.err and "was not in the data" in result.err
    path = tmp_path / "no_promo.csv"
    frame.drop(columns=["promo"]).to_csv(path, index=False)
    result = cli(*PROMO, "--data", str(path))
    assert result.code == 2 and "lacks the column(s) 'promo'" in result.err
    odd = _future(frame, 1, 1)
    odd.loc[odd.units.isna(), "week"] += pd.Timedelta(days=3)
    path = tmp_path / "off_grid.csv"
    odd.to_csv(path, index=False)
    result = cli(*PROMO, "--data", str(path))
    assert result.code == 2 and "not on the W-FRI grid" in result.err
    result = cli(*PROMO)  # trained on a file: --data is needed
    assert result.code == 2 and "pass the data file with --data" in result.err


# --------------------------------------------------------------------------- known future rows


def test_optimize_on_a_file_with_future_rows_then_predict_uses_them(
    cli, featured, use, tmp_path, tmp_path_factory, _mlflow_template, capsys
):
    """A --data file may hold the known future (empty target, features filled): optimize
    leaves those rows out of its split (same data as without them), predict forecasts from them
    with no flag."""
    path = tmp_path / "sales_and_future.csv"
    _future(_sales(), 4, [1, 0, 1, 0]).to_csv(path, index=False)
    plugin = spec_plugin("promo_model", FeatureModel, FEATURE_SPACE, tmp_path)
    args = ["--data", str(path), *FEATURE_ARGS, "--horizon", "4"]
    store = _optimize(
        tmp_path_factory,
        _mlflow_template,
        "future-rows",
        ["promo_model", "--trials", "2", *args, "--experiment", "sales"],
        plugins=[(plugin, "promo_plugin")],
    )
    capsys.readouterr()
    fingerprints = {
        s.uri: MlflowClient(s.uri).get_run(s.run_id).data.params["data_fingerprint"]
        for s in (store, featured)
    }
    assert len(set(fingerprints.values())) == 1  # the future rows are not in the data
    use(store)
    result = cli(*PROMO, "--data", str(path), "--json")
    assert result.code == 0, result
    rows = json.loads(result.out)["forecast"]
    assert len(rows) == 12
    for shop in "ABC":
        values = [r["forecast"] for r in rows if r["shop"] == shop]
        assert values[0] > values[1] and values[2] > values[3]  # promo weeks sell more


def test_predict_on_walmart_needs_no_flag_the_card_knows_the_holidays(
    cli, use, tmp_path, tmp_path_factory, _mlflow_template, capsys
):
    """A model that uses IsHoliday, trained on the built-in data: `mlf predict MODEL` forecasts
    2012-11-02 ... 2013-01-25 with Thanksgiving and Christmas weeks marked from the card."""
    plugin = spec_plugin("holiday_model", FeatureModel, FEATURE_SPACE, tmp_path)
    store = _optimize(
        tmp_path_factory,
        _mlflow_template,
        "walmart-holidays",
        ["holiday_model", "--trials", "1"],
        plugins=[(plugin, "holiday_plugin")],
    )
    capsys.readouterr()
    use(store)
    result = cli("predict", "holiday_model", "--json")
    assert result.code == 0, result
    rows = json.loads(result.out)["forecast"]
    assert len(rows) == 7 * 13
    days = sorted({r["Date"] for r in rows})
    assert days[0] == "2012-11-02" and days[-1] == "2013-01-25" and len(days) == 13
    holidays = {"2012-11-23", "2012-12-28"}
    for dept in {r["Dept"] for r in rows}:
        by_day = {r["Date"]: r["forecast"] for r in rows if r["Dept"] == dept}
        [plain] = {v for d, v in by_day.items() if d not in holidays}  # the window mean
        assert all(by_day[d] > plain for d in holidays)
    table = cli("predict", "holiday_model")
    assert table.code == 0, table
    marked = [line for line in table.out.splitlines() if "True" in line]
    assert len(marked) == 7 * 2
    assert {d for line in marked for d in holidays if d in line} == holidays


# --------------------------------------------------------------------------- a real model


@pytest.mark.slow
def test_lightgbm_on_walmart(cli, use, tmp_path, tmp_path_factory, _mlflow_template, capsys):
    """The issue's check with the tree plugin: optimize, predict, and the MLflow CLI agree."""
    pytest.importorskip("lightgbm")
    if "lightgbm" not in Registry().models:
        pytest.skip("the lightgbm plugin is not registered")
    store = _optimize(tmp_path_factory, _mlflow_template, "lightgbm", ["lightgbm", "--trials", "3"])
    capsys.readouterr()
    use(store)
    out = tmp_path / "f.csv"
    result = cli("predict", "lightgbm", "--output", str(out))  # IsHoliday from the card
    assert result.code == 0, result
    ours = pd.read_csv(out)
    assert ours.groupby(["Store", "Dept"]).size().tolist() == [13] * 7
    assert ours["Date"].iloc[0] == "2012-11-02" and ours["Date"].iloc[12] == "2013-01-25"
    frame = dataset_table("walmart")  # the shipped table and its known future rows
    request = {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    served = _mlflow_models_predict(store.model_uri, path, "json", store.uri, tmp_path)
    np.testing.assert_allclose(served["forecast"], ours["forecast"], rtol=1e-12)
