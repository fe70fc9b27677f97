"""Per-series work on a real Dask cluster: a `dask scheduler` and two `dask worker` processes
started here (loopback), the same forecasts as the local path to the digit, and the refusals
of a bad `--cluster` before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_mlf
from tests.test_series import M1, m1, stats_entry
from tests.test_services import free_port

pytest.importorskip("distributed")
pytest.importorskip("statsforecast")

SERIES = 70
"""Above the whole-series plugins' in-process threshold (64), so the cluster is used."""


class DaskCluster:
    """`dask scheduler` and ``workers`` `dask worker` processes on loopback ports; ``wrap``
    goes before each worker's command line."""

    def __init__(
        self, folder: Path, workers: int = 2, env: dict | None = None, wrap: list[str] = ()
    ) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        base = [sys.executable, "-m", "dask"]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.procs.append(
            subprocess.Popen(
                [*base, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                 "--no-dashboard"],
                cwd=folder, start_new_session=True, **quiet,
            )
        )  # fmt: skip
        for _ in range(workers):
            self.procs.append(
                subprocess.Popen(
                    [*wrap, *base, "worker", self.address, "--nthreads", "1", "--no-dashboard",
                     "--host", "127.0.0.1"],
                    cwd=folder, env={**os.environ, **(env or {})}, start_new_session=True,
                    **quiet,
                )
            )  # fmt: skip
        from distributed import Client

        with Client(self.address, timeout=120) as client:
            client.wait_for_workers(workers, timeout=180)

    def stop(self) -> None:
        import signal

        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    cluster = DaskCluster(tmp_path_factory.mktemp("dask"))
    yield cluster
    cluster.stop()


@pytest.mark.slow
def test_the_cluster_forecasts_what_the_local_path_does_sending_the_histories_once(dask_cluster):
    from mlforecast_cli.plugins import _stats

    from mlforecast_cli.data.histories import make_histories
    from mlforecast_cli.models.contract import TaskInfo
    from mlforecast_cli.services.executors import connect_cluster, use_executor

    panel = m1("m1_quarterly", SERIES)
    hist = make_histories(panel, panel.lengths - 8, 8)
    task = TaskInfo(horizon=8, season_length=4, n_series=SERIES)
    configs = [{"error": "A", "trend": "N", "season": "N"}, {"error": "Z", "trend": "A"}]
    _stats.clear_cache()
    local = [stats_entry("ets").create(c, task).predict(hist) for c in configs]
    _stats.clear_cache()
    with use_executor(connect_cluster(dask_cluster.address, ["statsforecast"])) as executor:
        first = stats_entry("ets").create(configs[0], task).predict(hist)
        sent = executor.scattered_bytes
        assert sent == hist.values.nbytes + hist.offsets.nbytes
        second = stats_entry("ets").create(configs[1], task).predict(hist)
        assert executor.scattered_bytes == sent  # the second trial sends no history again
    _stats.clear_cache()
    np.testing.assert_array_equal(first, local[0])
    np.testing.assert_array_equal(second, local[1])


@pytest.mark.slow
def test_optimize_and_predict_through_the_cluster_equal_the_local_run(dask_cluster, tmp_path):
    frame = pd.read_csv(f"{M1}/m1_quarterly.csv")
    frame = frame[frame["id"].isin(frame["id"].unique()[:SERIES])]
    data = tmp_path / "m1q.csv"
    frame.to_csv(data, index=False)
    common = ["--data", str(data), "--target", "value", "--time-col", "date", "--id-col", "id"]
    outputs = {}
    for label, extra in (("local", []), ("cluster", ["--cluster", dask_cluster.address])):
        folder = tmp_path / label
        folder.mkdir()
        env = {"MLF_HOME": str(folder / ".mlf"), "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/m.db"}
        done = run_mlf(
            "optimize", "ets", *common, "--horizon", "8", "--trials", "2", "--json", *extra,
            env=env, cwd=folder, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        [model] = json.loads(done.stdout)["models"]
        out = folder / "forecast.csv"
        done = run_mlf(
            "predict", "ets", "--data", str(data), "--output", str(out), *extra,
            env=env, cwd=folder, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        outputs[label] = (model, pd.read_csv(out), trial_values(folder, model["study_name"]))
    (local, local_forecast, values), (remote, remote_forecast, remote_values) = outputs.values()
    assert remote_values == values and len(values) == 2
    for key in ("best_value", "test_metrics", "best_params"):
        assert remote[key] == local[key], key
    pd.testing.assert_frame_equal(remote_forecast, local_forecast, check_exact=True)


def trial_values(folder: Path, study_name: str) -> list[float]:
    import optuna

    from mlforecast_cli.services.storage import open_storage

    storage = open_storage(f"journal:///{folder / '.mlf' / 'optuna.journal'}")
    return [t.value for t in optuna.load_study(study_name=study_name, storage=storage).trials]


@pytest.mark.slow
def test_a_worker_missing_a_library_is_refused_before_any_trial(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "statsforecast.py").write_text("raise ImportError('not on this worker')\n")
    cluster = DaskCluster(tmp_path, workers=1, env={"PYTHONPATH": str(shadow)})
    try:
        done = run_mlf(
            "optimize", "ets", "--trials", "1", "--cluster", cluster.address, cwd=tmp_path
        )
    finally:
        cluster.stop()
    assert done.returncode == 2, done.stderr
    [line] = [s for s in done.stderr.splitlines() if s.strip()]
    assert (
        line.startswith("error: Dask worker tcp://127.0.0.1:")
        and "cannot import statsforecast" in line
    )
    assert "Traceback" not in done.stderr and not (tmp_path / ".mlf").exists()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("nowhere", "is not a Dask scheduler address"),
        ("local:0", "must be a whole number of at least 1"),
        ("local:x", "must be a whole number of at least 1"),
    ],
)
def test_a_bad_cluster_address_is_refused_in_one_line(cli, value, words):
    result = cli("optimize", "seasonal_naive", "--trials", "1", "--cluster", value)
    assert result.code == 2
    [line] = [s for s in result.err.splitlines() if s.strip()]
    assert line.startswith("error: --cluster") and words in line


GATED = textwrap.dedent(
    """
    import time
    from pathlib import Path

    import numpy as np

    from mlforecast_cli import Forecaster, ModelSpec, hookimpl

    HERE = Path(__file__).parent
    MARK = HERE / "a-worker-fitted"


    def on_a_dask_worker():
        try:
            from distributed import get_worker

            get_worker()
        except (ImportError, ValueError):
            return False
        return True


    class Gated(Forecaster):
        \"\"\"Its fits in the command's process wait (60 s at most) until a trial has begun
        on a Dask worker, so the cluster's task cannot find the study already full.\"\"\"

        def fit(self, train, valid=None, report=None):
            if on_a_dask_worker():
                MARK.touch()
            else:
                deadline = time.monotonic() + 60
                while not MARK.exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
            return self

        def predict(self, windows):
            return np.repeat(windows.x[:, -1:], windows.horizon, axis=1) * (1 + self.params["x"])


    @hookimpl
    def register_models(register):
        register(ModelSpec(name="gated", summary="waits for a worker", family="other",
                           factory=Gated, space=HERE / "gated.yaml"))
    """
)


@pytest.mark.slow
def test_n_jobs_runs_trials_as_tasks_on_the_cluster(dask_cluster, tmp_path):
    from distributed import Client
    from mlflow.tracking import MlflowClient

    from mlforecast_cli.services.liveness import WORKER_ATTR

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "gated_plugin.py").write_text(GATED)
    (plugins / "gated.yaml").write_text(
        "params:\n  x: {type: float, low: 0.0, high: 0.1}\nfixed: {window_size: 4}\n"
    )
    env = {
        "MLF_HOME": str(tmp_path / ".mlf"),
        "MLF_PLUGINS_DIR": str(plugins),  # the tasks build the registry from the same folder
        "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",  # relative: the tasks get it absolute
        "MLF_CHILD_RUNS": "process",  # the command's writer, beside the tasks' own writes
    }
    done = run_mlf(
        "optimize", "gated", "--trials", "4", "--n-jobs", "2", "--json",
        "--cluster", dask_cluster.address, env=env, cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    [model] = json.loads(done.stdout)["models"]
    import optuna

    from mlforecast_cli.services.storage import open_storage

    storage = open_storage(f"journal:///{tmp_path / '.mlf' / 'optuna.journal'}")
    trials = optuna.load_study(study_name=model["study_name"], storage=storage).trials
    with Client(dask_cluster.address) as client:
        on_workers = set(client.run(os.getpid).values())
    # at least 4: a process that ends a short trial while another runs a long one may start
    # one more (the local --n-jobs processes do it too)
    assert len(trials) >= 4 and all(t.state.name == "COMPLETE" for t in trials)
    pids = {t.user_attrs[WORKER_ATTR]["pid"] for t in trials}
    assert pids & on_workers and pids - on_workers  # the task's trials and the command's
    mlflow = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    ids = [e.experiment_id for e in mlflow.search_experiments()]
    children = mlflow.search_runs(ids, "tags.`mlf.role` = 'trial'", max_results=100)
    numbers = sorted(int(c.data.tags["mlf.trial_number"]) for c in children)
    assert numbers == [t.number for t in trials]  # one child run per trial
    assert len(mlflow.search_runs(ids, "tags.`mlf.role` = 'study'")) == 1


def hiding(folder: Path) -> list[str]:
    """A command prefix that runs its command where ``folder`` is an empty tmpfs (a private
    mount namespace): another machine's view of the file system, on this one."""
    script = 'mount -t tmpfs none "$0" && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(folder)]


@pytest.mark.slow
def test_trials_on_workers_that_cannot_open_the_study_are_refused_before_any_run(
    tmp_path_factory, tmp_path
):
    from mlflow.tracking import MlflowClient

    here = tmp_path / "here"
    here.mkdir()
    if subprocess.run([*hiding(here), "true"], capture_output=True).returncode != 0:
        pytest.skip("this machine cannot make a private mount namespace (unshare -m)")
    cluster = DaskCluster(tmp_path_factory.mktemp("elsewhere"), wrap=hiding(here))
    try:
        env = {"MLF_HOME": str(here / ".mlf"), "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}
        done = run_mlf(
            "optimize", "seasonal_naive", "--trials", "2", "--n-jobs", "2", "--cluster",
            cluster.address, env=env, cwd=here, timeout=300,
        )  # fmt: skip
    finally:
        cluster.stop()
    assert done.returncode == 2, done.stderr
    [line] = [s for s in done.stderr.splitlines() if s.strip()]
    journal = here / ".mlf" / "optuna.journal"
    assert line.startswith("error: Dask worker tcp://127.0.0.1:")
    assert f"cannot open the study seasonal_naive-walmart-h13-mape in journal:///{journal}" in line
    assert f"(no file {journal} on the worker)" in line and "--n-jobs 1" in line
    mlflow = MlflowClient(f"sqlite:///{here / 'mlflow.db'}")
    ids = [e.experiment_id for e in mlflow.search_experiments()]
    assert mlflow.search_runs(ids) == []  # refused before the parent run


@pytest.mark.slow
def test_a_study_storage_a_worker_cannot_reach_is_named(dask_cluster, tmp_path):
    from distributed import Client

    from mlforecast_cli.optimize.workers import storage_problem

    missing = tmp_path / "elsewhere" / "optuna.journal"  # another machine's file
    with Client(dask_cluster.address) as client:
        problems = client.run(storage_problem, f"journal:///{missing}", "a-study")
    assert set(problems.values()) == {f"no file {missing} on the worker"}
    assert not missing.parent.exists()  # nothing created there


def test_the_environment_variable_names_the_cluster(cli, monkeypatch):
    monkeypatch.setenv("MLF_CLUSTER", "nowhere")
    result = cli("predict", "seasonal_naive")
    assert result.code == 2 and "--cluster 'nowhere'" in result.err


def test_an_unreachable_scheduler_is_refused_in_one_line(cli):
    start = time.monotonic()
    result = cli("optimize", "seasonal_naive", "--cluster", f"tcp://127.0.0.1:{free_port()}")
    assert result.code == 2, result
    [line] = [s for s in result.err.splitlines() if s.strip()]
    assert line.startswith("error: cannot reach the Dask scheduler tcp://127.0.0.1:")
    assert time.monotonic() - start < 60


def test_optimize_help_imports_no_dask():
    from tests.test_cli_basics import _imported

    assert not _imported("optimize", "--help") & {"dask", "distributed"}
