"""Optuna's RDB storage, with a heartbeat that leaves a lost database to the study's thread.

Optuna records a running trial's heartbeat from a thread of its own. When the database stops
(a restart, a failover) the first heartbeat after it raises in that thread, and Python prints
the thread's traceback on stderr before the command's one line about the lost storage. A missed
heartbeat is harmless: the study's own next read or write meets the same loss and is reported
once (``services.outages``), and a trial whose heartbeats stop is failed by the next process
(``grace_period``).
"""

from __future__ import annotations

import logging

from optuna.storages import RDBStorage

_log = logging.getLogger(__name__)


class QuietHeartbeatRDBStorage(RDBStorage):
    """An ``RDBStorage`` whose heartbeat skips a beat instead of raising in its thread."""

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:  # the study's thread reports the loss
            _log.debug("heartbeat of trial %s not recorded: %s", trial_id, exc)
