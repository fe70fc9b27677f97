"""Faults of a real Dask cluster (`dask scheduler` and two `dask worker` processes on
loopback) under `mlf optimize --cluster`: a worker killed mid-trial costs only time (Dask runs
its chunks again on the other worker: the same trial values), the scheduler lost mid-study is
exit 3 with one line and a rerun resumes. A worker missing a library is refused before any
trial: `tests/test_dask.py`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tests.test_dask import SERIES, DaskCluster
from tests.test_faults import states, wait_until
from tests.test_series import M1
from tests.test_services import lost_line

pytest.importorskip("distributed")
pytest.importorskip("statsforecast")
pytestmark = pytest.mark.slow

PROMPT_EXIT = 30.0
"""Seconds within which a command that lost its scheduler exits."""


@pytest.fixture
def panel_csv(tmp_path) -> Path:
    frame = pd.read_csv(f"{M1}/m1_quarterly.csv")
    frame = frame[frame["id"].isin(frame["id"].unique()[:SERIES])]
    path = tmp_path / "m1q.csv"
    frame.to_csv(path, index=False)
    return path


def optimize(data: Path, folder: Path, *extra: str) -> subprocess.Popen:
    """`mlf optimize ets` on ``data`` in ``folder`` (its own study storage and MLflow store)."""
    folder.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "MLF_HOME": str(folder / ".mlf"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
    }
    args = ["--data", str(data), "--target", "value", "--time-col", "date", "--id-col", "id"]
    return subprocess.Popen(
        [sys.executable, "-m", "mlforecast_cli", "optimize", "ets", *args, "--horizon", "8",
         "--json", "--quiet", *extra],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def study_of(folder: Path) -> optuna.Study:
    from mlforecast_cli.services.storage import open_storage

    storage = open_storage(f"journal:///{folder / '.mlf' / 'optuna.journal'}")
    summaries = optuna.get_all_study_summaries(storage)
    if not summaries:
        raise KeyError("no study yet")  # wait_until tries again
    [summary] = summaries
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def busy_worker_pid(address: str, timeout: float = 300.0) -> int:
    """The process id of a worker running one of a trial's chunks (waits for one), one that
    holds the scattered histories when there is one (the harder case: they die with it)."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        pids = client.run(os.getpid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items() if any(
                "run_chunk" in str(key) for key in keys)]  # fmt: skip
            if busy:
                holders = {w for key, ws in client.who_has().items() if "ndarray" in str(key)
                           for w in ws}  # fmt: skip
                return pids[next((w for w in busy if w in holders), busy[0])]
            time.sleep(0.1)
    raise AssertionError("no chunk ran on the cluster in time")


def trial_runs(folder: Path, role: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, filter_string=f"tags.`mlf.role` = '{role}'", max_results=100)


def test_a_worker_killed_mid_trial_costs_time_not_the_trial(tmp_path, panel_csv):
    cluster = DaskCluster(tmp_path, workers=2)
    try:
        proc = optimize(panel_csv, tmp_path / "cluster", "--trials", "2", "--cluster",
                        cluster.address)  # fmt: skip
        victim = busy_worker_pid(cluster.address)
        os.killpg(os.getpgid(victim), signal.SIGKILL)  # the worker and its nanny: no restart
        out, err = proc.communicate(timeout=900)
    finally:
        cluster.stop()
    assert proc.returncode == 0, err[-2000:]
    local = optimize(panel_csv, tmp_path / "local", "--trials", "2")
    local_out, local_err = local.communicate(timeout=900)
    assert local.returncode == 0, local_err[-2000:]
    remote, here = study_of(tmp_path / "cluster"), study_of(tmp_path / "local")
    assert states(remote) == ["COMPLETE", "COMPLETE"]
    assert [t.value for t in remote.trials] == [t.value for t in here.trials]
    [model] = json.loads(out)["models"]
    [local_model] = json.loads(local_out)["models"]
    assert model["test_metrics"] == local_model["test_metrics"]


def test_the_scheduler_lost_mid_study_exits_3_and_a_rerun_resumes(tmp_path, panel_csv):
    folder = tmp_path / "run"
    cluster = DaskCluster(tmp_path, workers=2)
    try:
        # trials enough that one is still sending chunks after the first completes (on a quiet
        # machine four ended before the poll saw one)
        proc = optimize(panel_csv, folder, "--trials", "40", "--cluster", cluster.address)
        wait_until(lambda: "COMPLETE" in states(study_of(folder)), timeout=600)
        busy_worker_pid(cluster.address)  # the next trial is on the cluster
        os.killpg(cluster.procs[0].pid, signal.SIGKILL)  # the scheduler
        killed = time.monotonic()
        out, err = proc.communicate(timeout=120)
        seconds = time.monotonic() - killed
    finally:
        cluster.stop()
    line = lost_line(proc, err)
    assert line == (
        f"error: lost the Dask cluster {cluster.address} (scheduler-connection-lost): the "
        "finished trials are kept in the study storage; rerun the same command once the "
        "scheduler and its workers are back to resume"
    )
    assert seconds < PROMPT_EXIT, f"{seconds:.1f} s to exit"
    before = {t.number: t for t in study_of(folder).trials}
    assert "RUNNING" not in [t.state.name for t in before.values()]
    [stopped] = [t for t in before.values() if t.state.name == "FAIL"]
    assert "lost the Dask cluster" in stopped.user_attrs["error"]
    assert stopped.number == max(before)  # the study stopped at the trial that lost it

    cluster = DaskCluster(tmp_path, workers=2)  # back, at another port
    try:
        rerun = optimize(panel_csv, folder, "--trials", "1", "--cluster", cluster.address)
        out, err = rerun.communicate(timeout=900)
    finally:
        cluster.stop()
    assert rerun.returncode == 0, err[-2000:]
    after = {t.number: t for t in study_of(folder).trials}
    assert len(after) == len(before) + 1
    assert all(after[n].state == t.state and after[n].value == t.value for n, t in before.items())
    children = trial_runs(folder, "trial")
    assert sorted(int(c.data.tags["mlf.trial_number"]) for c in children) == sorted(after)
    assert len(trial_runs(folder, "study")) == 1


def test_no_worker_left_is_the_cluster_lost(tmp_path, monkeypatch):
    import numpy as np

    from mlforecast_cli.errors import ServiceLost
    from mlforecast_cli.services import executors

    values, offsets = np.arange(100.0), np.arange(0, 101, 10)
    cluster = DaskCluster(tmp_path, workers=1)
    try:
        with executors.use_executor(executors.connect_cluster(cluster.address)) as executor:
            executor.map_series(np.take, values, offsets, None, None, "clip")
            os.killpg(cluster.procs[1].pid, signal.SIGKILL)
            monkeypatch.setattr(executors, "WORKER_WAIT_S", 2.0)
            with pytest.raises(ServiceLost, match=r"lost the Dask cluster .* \(no worker left"):
                executor.map_series(np.take, values, offsets, None, None, "clip")
    finally:
        cluster.stop()
