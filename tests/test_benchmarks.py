"""benchmarks/run.py runs and writes its markdown; the helpers it shares behave."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


@pytest.fixture
def bench_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import accuracy
    import common

    return common, accuracy


@pytest.mark.slow  # twenty fresh `mlf` processes
def test_run_quick_startup_writes_the_table(tmp_path):
    out = tmp_path / "bench.md"
    done = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--only", "startup"]
        + ["--repeats", "1", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert text.startswith("# Benchmarks")
    assert "python benchmarks/run.py --quick --only startup" in text  # the command line used
    for fact in ("- Date: ", "- CPU: ", "cores", "- Python ", "optuna ", "mlflow "):
        assert fact in text
    assert "## Start-up" in text
    for command in ("`mlf --help`", "`mlf list-models`", "`mlf show-space lstm`"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {command}"))
        assert "failed" not in row
        assert int(row.split("|")[2]) > 0  # a median in ms
    assert "## Start-up" in done.stdout  # printed as it finishes, too


@pytest.mark.parametrize(
    ("only", "message"),
    [
        ("nope", "unknown section"),
        ("overhead", "pass --output FILE"),  # a part would replace docs/benchmarks.md
    ],
)
def test_a_bad_only_is_refused(only, message):
    done = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--only", only],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr


def test_table_and_machine(bench_modules):
    common, _ = bench_modules
    md = common.table(["a", "b"], [["x|y", 1.5]])
    assert md.splitlines() == ["| a | b |", "| --- | ---: |", "| x\\|y | 1.5 |"]
    info = common.machine_info()
    assert info["cores"] >= 1 and info["cpu"]
    assert info["versions"]["python"] == sys.version.split()[0]


def test_run_mlf_is_isolated_and_measures_memory(bench_modules, tmp_path):
    common, _ = bench_modules
    run = common.run_mlf(["datasets", "--json"], folder=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.document and "datasets" in str(run.document)
    assert run.max_rss_mib > 10
    env = common.isolated_env(tmp_path)
    assert env["MLF_HOME"] == str(tmp_path / ".mlf")
    assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_m4_weekly_gets_one_weekday_and_keeps_its_values(bench_modules, tmp_path):
    common, accuracy = bench_modules
    source = common.DATA_DIR / "m4_weekly.csv"
    path, note = accuracy.prepared(source, tmp_path)
    assert path != source and "W120" in note
    before, after = pd.read_csv(source), pd.read_csv(path)
    assert before["value"].equals(after["value"]) and before["id"].equals(after["id"])
    assert pd.to_datetime(after["date"]).dt.day_of_week.nunique() == 1
    for name in ("m4_monthly.csv", "m4_daily.csv", "m4_hourly.csv"):
        assert accuracy.prepared(common.DATA_DIR / name, tmp_path) == (
            common.DATA_DIR / name,
            "",
        )


def test_synthetic_panel_is_seeded_and_mixed(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import synthetic

    a = synthetic.sales_panel(300, seed=3)
    b = synthetic.sales_panel(300, seed=3)
    pd.testing.assert_frame_equal(a, b)
    lengths = a.groupby("item").size()
    assert lengths.max() == 150 and lengths.min() >= 20
    assert (lengths < 2 * synthetic.SEASON).any() and (lengths == 150).mean() > 0.5
    last = a.groupby("item")["week"].max()
    assert last.nunique() == 1  # every series ends on the same week
    assert (a["sales"] == 0).any() and (a["sales"] >= 0).all()
    assert not synthetic.sales_panel(300, seed=4).equals(a)


def test_seasonal_panel_is_seeded_monthly_and_strongly_seasonal(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import synthetic

    a = synthetic.seasonal_panel(60, seed=3)
    pd.testing.assert_frame_equal(a, synthetic.seasonal_panel(60, seed=3))
    assert not synthetic.seasonal_panel(60, seed=4).equals(a)
    lengths = a.groupby("id").size()
    assert lengths.min() >= 90 and lengths.max() <= 330 and lengths.nunique() > 10
    assert a.groupby("id")["date"].max().nunique() == 1
    assert (a["value"] > 0).all()
    month = pd.to_datetime(a["date"]).dt.month
    profile = a.assign(month=month).groupby(["id", "month"])["value"].mean().unstack()
    assert (profile.max(axis=1) / profile.min(axis=1)).median() > 2


def test_peers_score_a_seasonal_naive_on_the_test_window(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import numpy as np
    import peers

    weeks = pd.date_range("2020-01-03", periods=12, freq="W-FRI")
    frame = pd.DataFrame(
        {
            "id": ["a"] * 12 + ["b"] * 12,
            "date": list(weeks) * 2,
            "value": list(np.arange(1.0, 13.0)) + [5.0, 7.0] * 6,
        }
    )
    train, test = peers.split_test(frame, 3)
    assert len(test) == 6 and test.groupby("id")["date"].min().eq(weeks[9]).all()
    naive = test[["id", "date"]].copy()
    naive["yhat"] = [9.0, 9.0, 9.0, 5.0, 5.0, 5.0]  # the last training value of each
    metrics = peers.score(frame, naive, 3, 1)
    # a: last value 9 against 10, 11, 12; b: 5 against 7, 5, 7
    expected = 100 * np.mean([1 / 10, 2 / 11, 3 / 12, 2 / 7, 0, 2 / 7])
    assert metrics["mape"] == pytest.approx(expected)
    assert metrics["mase"] == pytest.approx(np.mean([1, 2, 3, 1, 0, 1]))
    assert "coverage_80" not in metrics  # a peer without intervals

    naive["lo-80"], naive["hi-80"] = naive["yhat"] - 1.5, naive["yhat"] + 1.5
    metrics = peers.score(frame, naive, 3, 1)
    # inside: a's 10 and b's 5; misses 0.5, 1.5 (a; scale 1) and 0.5, 0.5 (b; scale 2)
    assert metrics["coverage_80"] == pytest.approx(100 * 2 / 6)
    scores = [3, 3 + 10 * 0.5, 3 + 10 * 1.5, (3 + 10 * 0.5) / 2, 3 / 2, (3 + 10 * 0.5) / 2]
    assert metrics["msis_80"] == pytest.approx(np.mean(scores))
    assert "coverage_95" not in metrics


def test_interval_backtest_scores_each_kept_window_on_the_next(
    monkeypatch, cli, mlflow_uri, tmp_path
):
    """`interval_coverage.py --backtest`: calibrated on one kept ensemble window, scored on the
    next, with mlf's scale the same figures as the core's interval metrics."""
    import numpy as np

    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.chdir(tmp_path)
    import interval_coverage
    from mlflow.tracking import MlflowClient

    from mlforecast_cli.ensembles.held_out import ENSEMBLE_ARTIFACT, read_artifact
    from mlforecast_cli.ensembles.intervals import conformal_scores, interval_metrics

    assert cli("optimize", "seasonal_naive", "--trials", "1", "--quiet").code == 0
    rows = interval_coverage.backtest_rows(mlflow_uri)
    assert [r[1] for r in rows] == ["0 → 1", "1 → 2", "val → test"]
    assert {r[0] for r in rows} == {"seasonal_naive"}
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs(["0", "1"], "tags.`mlf.role` = 'study'")
    kept = read_artifact(client, run.info.run_id, ENSEMBLE_ARTIFACT)
    cal, target = (kept.take(kept.window == w) for w in (1, 2))
    want = interval_metrics(conformal_scores(cal), target)
    got = [float(x) for x in rows[1][2].split(" / ")]
    assert got == pytest.approx(
        [want["coverage_80"], want["coverage_95"], want["msis_95"]], abs=0.051
    )
    for cell in rows[1][3:]:
        assert np.isfinite([float(x) for x in cell.split(" / ")]).all()
    below, above = (float(x) for x in rows[1][5].split(" / "))
    assert below + above + got[0] == pytest.approx(100, abs=0.11)  # the 80 % misses
    logged = run.data.metrics
    got = [float(x) for x in rows[2][2].split(" / ")]
    assert got == pytest.approx(
        [logged[f"test_{k}"] for k in ("coverage_80", "coverage_95", "MSIS_95")], abs=0.051
    )


def test_layout_prints_the_rooms_and_the_widest_functions(capsys):
    import runpy
    import sys

    sys.argv = ["layout.py"]
    runpy.run_path(
        str(Path(__file__).resolve().parents[1] / "benchmarks" / "layout.py"), run_name="__main__"
    )
    out = capsys.readouterr().out
    assert "| mlforecast_cli/trials |" in out
    assert "rooms 16," in out
    assert "| parameters | lines | function |" in out


def test_device_check_runs_every_step_of_a_neural_model_and_refuses_a_missing_device(
    monkeypatch, tmp_path, capsys
):
    """The GPU check of issue 26, on the CPU: a trial, the refit and the loaded model's
    forecast, the table written; a device torch does not have is one line and exit 2."""
    pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(BENCH))
    import device_check
    import torch

    out = tmp_path / "device.md"
    argv = ["--devices", "cpu", "--data", "walmart", "--models", "nhits", "lstm", "--epochs", "1"]
    assert device_check.main([*argv, "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if " | cpu | " in line]
    assert [row.split(" | ")[:2] for row in rows] == [["| nhits", "cpu"], ["| lstm", "cpu"]]
    assert all(row.rstrip(" |").endswith("yes") for row in rows)  # loaded forecast = refit's
    if not torch.cuda.is_available():
        assert device_check.main(["--devices", "cuda", "--data", "walmart"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: --devices cuda: this machine's torch has no cuda")
