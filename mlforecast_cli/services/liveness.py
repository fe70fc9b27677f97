"""Processes sharing one study: who runs a trial, whether that process is alive, and waiting
for a value another process is about to write.

A trial records its host and process id (:data:`WORKER_ATTR`); a RUNNING trial whose process
on this host is gone (SIGKILL, OOM) is failed by the next command that opens the study
(:func:`reap_dead_trials`), and so is a trial no process claimed within
:data:`CLAIM_GRACE_S` (its process lost the storage between creating and claiming it).
Workers on other hosts are left to Optuna's heartbeat (RDB).
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


def reap_dead_trials(study, grace: float | None = None) -> list:
    """Fail the RUNNING trials whose worker process on this host has died (SIGKILL, OOM), and
    those that no process claimed within ``grace`` seconds (:func:`unclaimed`).

    Returns the trials this call failed; when several workers reap at once the storage lets
    only one of them fail each trial.
    """
    from optuna.trial import TrialState

    host = socket.gethostname()
    dead = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR)
        if worker is None:
            continue
        if worker.get("host") == host and not pid_alive(worker.get("pid")):
            dead.append((trial, f"worker process {worker.get('pid')} died"))
    reason = "its process died before it started (the storage was lost between the two)"
    grace = CLAIM_GRACE_S if grace is None else grace
    dead += [(trial, reason) for trial in unclaimed(study, grace)]
    return [reaped for trial, why in dead if (reaped := _fail(study, trial, why)) is not None]


CLAIM_GRACE_S = 15.0
"""How long a RUNNING trial may go without :data:`WORKER_ATTR` before it counts as orphaned:
a live process writes it right after the storage creates the trial."""


def unclaimed(study, grace: float = CLAIM_GRACE_S) -> list:
    """The RUNNING trials that name no worker ``grace`` seconds after they started: their
    process lost the storage, or died, between creating the trial and claiming it, so no
    liveness check could ever end them. Younger ones are left to a later command (a live
    process may be about to claim them)."""
    import datetime

    from optuna.trial import TrialState

    now = datetime.datetime.now()
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if WORKER_ATTR not in t.user_attrs
        and (t.datetime_start is None or (now - t.datetime_start).total_seconds() >= grace)
    ]


def _fail(study, trial, reason: str):
    """Fail RUNNING ``trial`` with ``reason``; None when another process finished it first."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage  # Optuna exposes no public handle on a study's storage
    try:
        storage.set_trial_user_attr(trial._trial_id, "error", reason)
        if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            return storage.get_trial(trial._trial_id)
    except UpdateFinishedTrialError:
        pass
    return None


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
