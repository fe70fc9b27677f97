"""MLflow tracking details: what a killed worker leaves behind is repaired on the next start."""

from __future__ import annotations

import socket
import subprocess
import sys

import optuna
from mlflow.tracking import MlflowClient

from mlforecast_cli.tracking import PARENT_TAG, MlflowTracker


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

    first = MlflowTracker(experiment="e", tracking_uri=mlflow_uri)
    parent = first.start(study)
    study.optimize(objective, n_trials=3)
    # trial 0: logged; trial 1: its run was created, then the worker died; trial 2: never logged
    first.log_trial(study.trials[0])
    half = first.client.create_run(
        first.experiment_id,
        tags={PARENT_TAG: parent, "mlf.trial_number": "1", "mlf.role": "trial"},
    )
    first.close(None)

    second = MlflowTracker(experiment="e", tracking_uri=mlflow_uri)
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
    tracker = MlflowTracker(experiment="e", tracking_uri=mlflow_uri)
    parent = tracker.start(study)
    tracker.client.create_run(
        tracker.experiment_id, tags={PARENT_TAG: parent, "mlf.trial_number": "0"}
    )
    assert tracker.repair_children() == 0
    tracker.close()
