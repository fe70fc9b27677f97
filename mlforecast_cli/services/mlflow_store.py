"""Opening an MLflow tracking store: one client per process, safe when processes race.

Shared by the command's tracker (:mod:`.tracking`) and the child-run writers
(:mod:`.child_runs`), so neither imports the other. MLflow is imported inside the functions.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

T = TypeVar("T")


def quiet_mlflow_logs() -> None:
    """Keep MLflow's and Alembic's INFO lines (store creation, migrations) off the terminal,
    and the traceback MLflow's SQL store logs before it raises a database error (mlf reports
    the error itself, in one line)."""
    import logging

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
"""mlf's bounds on MLflow's HTTP retries (MLflow's defaults: 7 retries with a back-off factor
of 2 and a 120 s timeout, over 4 minutes per call on a dead server): a refused connection
fails in about 3 s, a server that stops answering in under a minute."""


def bound_http_retries() -> None:
    """Apply :data:`HTTP_LIMITS` to this process (and the processes it starts) where the user
    has not set them: MLflow reads them at every request."""
    import os

    for name, value in HTTP_LIMITS.items():
        os.environ.setdefault(name, value)


MIGRATION_RACE = ("duplicate column", "already exists", "duplicate key", "alembic_version")


def connect(tracking_uri: str, attempts: int = 5):
    """An ``MlflowClient`` on ``tracking_uri``, safe when several processes open the same new
    store at once: MLflow creates its tables on first use, and two commands started together
    on a fresh SQLite file raced to migrate it ("duplicate column: step"). Local SQLite opens
    are serialised with a lock file; a race on a database server is retried. MLflow's HTTP
    retries are bounded first (:func:`bound_http_retries`)."""
    from mlflow.tracking import MlflowClient

    bound_http_retries()
    with _sqlite_open_lock(tracking_uri):
        for attempt in range(attempts):
            try:
                return MlflowClient(tracking_uri)
            except Exception as exc:
                if not any(s in str(exc) for s in MIGRATION_RACE) or attempt == attempts - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def get_or_create_experiment(client, name: str, attempts: int = 5) -> str:
    """The id of MLflow experiment ``name``, created when missing; safe when many processes
    ask at once: one creates it, the others' "already exists" is answered by reading it back
    (eight commands started together on a fresh server failed with RESOURCE_ALREADY_EXISTS)."""
    for attempt in range(attempts):
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(name)
        except Exception as exc:
            if not _already_exists(exc) or attempt == attempts - 1:
                raise
        time.sleep(0.2 * (attempt + 1))  # the winner's row may not be readable yet
    raise AssertionError("unreachable")


def retried_on_race(write: Callable[[], T], attempts: int = 5) -> T:
    """``write()``, again when another process wrote the same new row first.

    MLflow's SQL store inserts a run's new tag with a read then a write, so two processes that
    tag the one parent run of a shared study with the same new key at the same moment can meet
    "duplicate key value violates unique constraint "tag_pk"" (eight commands finishing
    together on a fresh server did); written again, the tag exists and is updated."""
    for attempt in range(attempts):
        try:
            return write()
        except Exception as exc:
            if not _already_exists(exc) or attempt == attempts - 1:
                raise
        time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))
    raise AssertionError("unreachable")


def _already_exists(exc: Exception) -> bool:
    """Whether ``exc`` says another process created the same thing first."""
    code = getattr(exc, "error_code", "")
    text = str(exc).lower()
    return code == "RESOURCE_ALREADY_EXISTS" or any(
        s in text for s in ("resource_already_exists", "already exists", "unique constraint")
    )


@contextmanager
def _sqlite_open_lock(tracking_uri: str) -> Iterator[None]:
    """An exclusive ``flock`` per SQLite file while it is opened, on a lock file in the temp
    folder that the holder removes when done. A process that waited on a removed file (its
    inode no longer at the path) locks the path again, so two holders never overlap."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    import fcntl
    import hashlib
    import os
    import tempfile

    path = os.path.abspath(tracking_uri[len("sqlite:///") :])
    name = hashlib.sha1(path.encode()).hexdigest()[:16]
    lock = os.path.join(tempfile.gettempdir(), f"mlf-mlflow-{name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder before us removed this file: lock the new one
    try:
        yield
    finally:
        with suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)


_WAL_INSTALLED = False


def use_wal_for_sqlite() -> None:
    """Open SQLite databases in WAL mode with ``synchronous=NORMAL``.

    In its default mode SQLite syncs the disk several times per commit (about 100 ms per
    child run here); WAL commits without a sync and still never corrupts the file, and a
    killed process loses nothing. Applies to every SQLite connection SQLAlchemy opens.
    """
    global _WAL_INSTALLED
    if _WAL_INSTALLED:
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    _WAL_INSTALLED = True


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's logging, warnings and download progress bars."""
    import os
    import warnings

    logger = logging.getLogger("mlflow")
    level = logger.level
    bar = os.environ.get(_PROGRESS_BAR)
    logger.setLevel(logging.ERROR)
    os.environ[_PROGRESS_BAR] = "false"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
        if bar is None:
            os.environ.pop(_PROGRESS_BAR, None)
        else:
            os.environ[_PROGRESS_BAR] = bar


_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
