"""Processes sharing one study: who runs a trial, whether that process is alive, and waiting
for a value another process is about to write.

A trial records its host and process id (:data:`WORKER_ATTR`); a RUNNING trial whose process
on this host is gone (SIGKILL, OOM) is failed by the next command that opens the study
(:func:`reap_dead_trials`). Workers on other hosts are left to Optuna's heartbeat (RDB).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

WORKER_ATTR = "mlf_worker"
"""Trial user attribute naming the host and process that runs it (to reap dead workers)."""


def worker_stamp() -> dict[str, Any]:
    """The value of :data:`WORKER_ATTR` for a trial this process runs."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def pid_alive(pid: Any) -> bool:
    """False only when process ``pid`` of this host is known to be gone."""
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_trials(study) -> list:
    """Fail the RUNNING trials whose worker process on this host has died (SIGKILL, OOM).

    Returns the trials this call failed; when several workers reap at once the storage lets
    only one of them fail each trial.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    host = socket.gethostname()
    storage = study._storage  # Optuna exposes no public handle on a study's storage
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR) or {}
        if worker.get("host") != host or pid_alive(worker.get("pid")):
            continue
        try:
            storage.set_trial_user_attr(
                trial._trial_id, "error", f"worker process {worker.get('pid')} died"
            )
            if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                reaped.append(storage.get_trial(trial._trial_id))
        except UpdateFinishedTrialError:
            continue
    return reaped


def wait_for_user_attr(study, key: str, timeout: float) -> Any:
    """The study's user attribute ``key``, waiting up to ``timeout`` s for another worker to
    write it (a study that predates the attribute gets None at once if it has trials)."""
    deadline = time.monotonic() + timeout
    while True:
        value = study.user_attrs.get(key)
        if value is not None or study.get_trials(deepcopy=False):
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)
