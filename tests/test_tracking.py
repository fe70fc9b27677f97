"""MLflow tracking details: what a killed worker leaves behind is repaired on the next start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import optuna
import pytest
from mlflow.tracking import MlflowClient

from mlforecast_cli.tracking.parent_run import PARENT_TAG, MlflowTracker


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_runs_a_killed_worker_left_behind_are_completed(mlflow_uri):
    study = optuna.create_study(study_name="s")
    worker = {"host": socket.gethostname(), "pid": dead_pid()}

    def objective(trial):
        trial.set_user_attr("mlf_worker", worker)
        trial.set_user_attr("val_metrics", {"mape": 5.0})
        return trial.suggest_float("x", 0, 1)

    first = MlflowTracker(experiment="e", tracking_uri=mlflow_uri, sink="inline")
    parent = first.start(study)
    study.optimize(objective, n_trials=3)
    # trial 0: logged; trial 1: its run was created, then the worker died; trial 2: never logged
    first.log_trial(study.trials[0])
    half = first.client.create_run(
        first.experiment_id,
        tags={PARENT_TAG: parent, "mlf.trial_number": "1", "mlf.role": "trial"},
    )
    first.close(None)

    second = MlflowTracker(experiment="e", tracking_uri=mlflow_uri, sink="inline")
    assert second.start(study, created=False) == parent
    second.close()
    client = MlflowClient(mlflow_uri)
    children = client.search_runs(
        [first.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent}'"
    )
    by_trial = {int(r.data.tags["mlf.trial_number"]): r for r in children}
    assert sorted(by_trial) == [0, 1, 2]
    assert len(children) == 3
    assert all(r.info.status == "FINISHED" for r in children)
    assert by_trial[1].info.run_id == half.info.run_id
    assert by_trial[1].data.metrics["val_MAPE"] == 5.0


def test_live_workers_runs_are_left_alone(mlflow_uri):
    study = optuna.create_study(study_name="s")
    import os

    study.optimize(
        lambda t: (
            t.set_user_attr("mlf_worker", {"host": socket.gethostname(), "pid": os.getpid()}) or 1.0
        ),
        n_trials=1,
    )
    tracker = MlflowTracker(experiment="e", tracking_uri=mlflow_uri, sink="inline")
    parent = tracker.start(study)
    tracker.client.create_run(
        tracker.experiment_id, tags={PARENT_TAG: parent, "mlf.trial_number": "0"}
    )
    assert tracker.repair_children() == 0
    tracker.close()


def _children(uri: str, parent: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_run(parent).info.experiment_id
    return client.search_runs([experiment], filter_string=f"tags.`{PARENT_TAG}` = '{parent}'")


@pytest.mark.slow  # a second process (workers or the MLflow writer)
def test_a_worker_pipe_reaches_the_commands_writer(mlflow_uri):
    """--n-jobs: a worker process sends its trials through a pipe to the command's writer,
    which writes them under the one parent run before the command's flush returns."""
    study = optuna.create_study(study_name="s")
    tracker = MlflowTracker(experiment="e", tracking_uri=mlflow_uri, workers=1)
    parent = tracker.start(study)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
    fd = tracker.worker_pipe()
    assert fd is not None and tracker.worker_pipe() is None
    code = (
        "import pickle, sys; import optuna;"
        "from mlforecast_cli.tracking.child_runs import ChildRunSender;"
        "trials = pickle.load(sys.stdin.buffer); s = ChildRunSender(int(sys.argv[1]));"
        "[s.submit(t) for t in trials]; s.close()"
    )
    import pickle

    worker = subprocess.run(
        [sys.executable, "-c", code, str(fd)],
        input=pickle.dumps(study.trials[2:]),
        pass_fds=(fd,),
        check=True,
    )
    assert worker.returncode == 0
    os.close(fd)
    for trial in study.trials[:2]:
        tracker(study, trial)
    tracker.flush()
    assert sorted(int(r.data.tags["mlf.trial_number"]) for r in _children(mlflow_uri, parent)) == [
        0,
        1,
        2,
        3,
    ]
    tracker.close()
    assert tracker.errors == []
    assert tracker.seconds > 0


@pytest.mark.slow  # a second process (workers or the MLflow writer)
def test_tracking_from_a_script_without_a_main_guard(tmp_path, mlflow_uri):
    """The writer is not a multiprocessing child, so a plain script (no __main__ guard, which
    a spawned child would re-run) can track a study."""
    script = tmp_path / "plain.py"
    script.write_text(
        "import optuna\n"
        "from mlforecast_cli.tracking.parent_run import MlflowTracker\n"
        "study = optuna.create_study(study_name='plain')\n"
        f"tracker = MlflowTracker(experiment='plain', tracking_uri={mlflow_uri!r})\n"
        "parent = tracker.start(study)\n"
        "study.optimize(lambda t: t.suggest_float('x', 0, 1), n_trials=3, callbacks=[tracker])\n"
        "tracker.close()\n"
        "print(parent)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    parent = done.stdout.strip().splitlines()[-1]
    runs = _children(mlflow_uri, parent)
    assert len(runs) == 3
    assert all(r.info.status == "FINISHED" for r in runs)


@pytest.mark.slow  # a race between three fresh processes
def test_commands_started_at_once_on_a_new_store_all_connect(tmp_path):
    """Two commands started together on a fresh SQLite store race to create its tables;
    the loser retries instead of failing with 'duplicate column'."""
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = (
        "import sys; from mlforecast_cli.tracking.parent_run import MlflowTracker;"
        "t = MlflowTracker(experiment='e', tracking_uri=sys.argv[1]); t.close(None)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, uri], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
