"""Real processes, real signals: killed workers, SIGINT/SIGTERM, several workers on one study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from mlforecast_cli.services.storage import open_storage

PLUGIN = textwrap.dedent(
    """
    import os
    import time

    import numpy as np

    from mlforecast_cli import Forecaster, ModelSpec, hookimpl

    SPACE = __file__.replace("slow_plugin.py", "slow.yaml")


    class Slow(Forecaster):
        def fit(self, train, valid=None, report=None):
            time.sleep(float(os.environ.get("SLOW_DELAY", "0")))
            return self

        def predict(self, windows):
            return np.repeat(windows.x[:, -1:], windows.horizon, axis=1) * (1 + self.params["x"])


    @hookimpl
    def register_models(register):
        register(ModelSpec(name="slow", summary="sleeps", family="other", factory=Slow,
                           space=SPACE))
    """
)
pytestmark = [pytest.mark.slow, pytest.mark.full_optimize]

SPACE = "params:\n  x: {type: float, low: 0.0, high: 0.1}\nfixed: {window_size: 4}\n"
STUDY = "slow-walmart-h13-mape"


@pytest.fixture
def worker_env(tmp_path, mlflow_uri):
    """Environment for `mlf` worker processes: a plugins dir with a slow model, own MLF_HOME."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "slow_plugin.py").write_text(PLUGIN)

    (folder / "slow.yaml").write_text(SPACE)

    def env(delay: float) -> dict:
        """The environment of a run whose every fit sleeps ``delay`` seconds (the same study
        and space whatever the delay, so a run can resume another's study)."""
        return {
            **os.environ,
            "SLOW_DELAY": str(delay),
            "MLF_PLUGINS_DIR": str(folder),
            "MLF_HOME": str(tmp_path / ".mlf"),
            "MLFLOW_TRACKING_URI": mlflow_uri,
        }

    return env


def start(env: dict, *args: str, cwd: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mlforecast_cli", "optimize", "slow", "--quiet", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def load(storage: str | None = None) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=open_storage(storage))


def wait_until(predicate, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except KeyError:
            pass  # the study does not exist yet
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def runs(uri: str, role: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("walmart_sales_forecasting")
    return client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`mlf.role` = '{role}'", max_results=1000
    )


def test_sigkill_mid_trial_leaves_a_usable_study(worker_env, mlflow_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("MLF_HOME", str(tmp_path / ".mlf"))
    env = worker_env(delay=1.5)
    proc = start(env, "--trials", "20", cwd=tmp_path)
    wait_until(lambda: states(load()).count("COMPLETE") >= 2 and "RUNNING" in states(load()))
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    before = load().get_trials(deepcopy=False)
    killed = [t.number for t in before if t.state.name == "RUNNING"]
    completed = [t.number for t in before if t.state.name == "COMPLETE"]
    assert len(killed) == 1
    # the same command resumes, fails the dead worker's trial and keeps every finished one
    env = worker_env(delay=0.0)
    resumed = start(env, "--trials", "2", cwd=tmp_path)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    after = {t.number: t for t in load().get_trials(deepcopy=False)}
    assert after[killed[0]].state.name == "FAIL"
    assert "died" in after[killed[0]].user_attrs["error"]
    assert all(after[n].state.name == "COMPLETE" for n in completed)
    assert len(after) == len(before) + 2
    children = runs(mlflow_uri, "trial")
    numbers = sorted(int(c.data.tags["mlf.trial_number"]) for c in children)
    assert numbers == sorted(after)  # every trial, exactly one child run
    assert all(c.info.status != "RUNNING" for c in children)
    by_number = {int(c.data.tags["mlf.trial_number"]): c for c in children}
    assert by_number[killed[0]].info.status == "FAILED"
    [parent] = runs(mlflow_uri, "study")
    assert parent.info.status == "FINISHED"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_end_cleanly(worker_env, mlflow_uri, tmp_path, monkeypatch, sig, code):
    monkeypatch.setenv("MLF_HOME", str(tmp_path / ".mlf"))
    # started as a background job of a script is: SIGINT ignored; mlf still ends on it
    ignore = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    proc = start(worker_env(delay=1.0), "--trials", "20", cwd=tmp_path, preexec_fn=ignore)
    wait_until(lambda: "COMPLETE" in states(load()) and "RUNNING" in states(load()))
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "resume" in err and "Traceback" not in err
    trial_states = states(load())
    assert "RUNNING" not in trial_states and trial_states[-1] == "FAIL"
    [parent] = runs(mlflow_uri, "study")
    assert parent.info.status == "KILLED"
    children = runs(mlflow_uri, "trial")
    assert len(children) == len(trial_states)
    assert sorted(c.info.status for c in children).count("KILLED") == 1


def _two_workers(worker_env, mlflow_uri, tmp_path, storage_args: list[str]) -> optuna.Study:
    env = worker_env(delay=0.2)
    procs = [start(env, "--trials", "5", *storage_args, cwd=tmp_path) for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    study = load(storage_args[1] if storage_args else None)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 10
    assert sorted(t.number for t in trials) == list(range(10))
    workers = {t.user_attrs["mlf_worker"]["pid"] for t in trials}
    assert len(workers) == 2
    [parent] = runs(mlflow_uri, "study")
    children = runs(mlflow_uri, "trial")
    assert sorted(int(c.data.tags["mlf.trial_number"]) for c in children) == list(range(10))
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    return study


def test_two_workers_share_the_default_storage(worker_env, mlflow_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("MLF_HOME", str(tmp_path / ".mlf"))
    _two_workers(worker_env, mlflow_uri, tmp_path, [])


@pytest.mark.skipif(
    not os.environ.get("MLF_TEST_POSTGRES_URL"),
    reason="MLF_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL and sets it)",
)
def test_two_workers_share_a_postgresql_study(worker_env, mlflow_uri, tmp_path):
    import uuid

    base = os.environ["MLF_TEST_POSTGRES_URL"]
    global STUDY
    name = f"pg-{uuid.uuid4().hex[:8]}"
    old, STUDY = STUDY, name
    try:
        _two_workers(worker_env, mlflow_uri, tmp_path, ["--storage", base, "--study-name", name])
    finally:
        STUDY = old


def test_n_jobs_runs_worker_processes_on_one_study(worker_env, mlflow_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("MLF_HOME", str(tmp_path / ".mlf"))
    proc = start(worker_env(delay=1.5), "--trials", "8", "--n-jobs", "2", cwd=tmp_path)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    trials = load().get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(8))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["mlf_worker"]["pid"] for t in trials}) == 2
    [parent] = runs(mlflow_uri, "study")
    assert parent.info.status == "FINISHED"
    assert "test_MAPE" in parent.data.metrics
    children = runs(mlflow_uri, "trial")
    assert sorted(int(c.data.tags["mlf.trial_number"]) for c in children) == list(range(8))
