"""One MLflow child run per finished trial, behind one small interface (:class:`ChildRunSink`).

Two implementations: :class:`ChildRunWriter`, a separate writer process (what `mlf optimize`
uses), and :class:`InlineChildRuns`, which writes in the calling process (tests, library use,
and the writer process itself). A ``--n-jobs`` worker holds a :class:`ChildRunSender`, its end
of a pipe to the command's writer.

Why a process:
MLflow's SQL store spends 15–30 ms of Python (SQLAlchemy) per child run. On a thread of the
trial's own process that time holds the GIL the trial needs between its native calls, and a
LightGBM trial of ~120 ms got 30–50 ms slower; in a process of its own it runs beside the trial.
A trial is sent to the writer when it ends and is written in three calls (create, one batch,
terminate), so a live trial has no RUNNING child run; the writer finishes what it was sent
even if the process that sent it is killed.
"""

from __future__ import annotations

import atexit
import json
import math
import signal
import time
from typing import Any

from ..errors import debug_enabled, first_line
from ..search.metrics import mlflow_key

PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
BATCH = 900
MAX_PARAM_LENGTH = 6000
ERROR_TAG = "mlf.error"
"""A failed trial's child-run tag: why it failed, in one line."""
TRACEBACK_ARTIFACT = "traceback.txt"
"""A failed trial's child-run artifact: the traceback of what it raised."""
STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED", "RUNNING": "KILLED"}


def _ms(moment) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


def create_child(client, experiment_id: str, parent_run_id: str, study_name: str, trial) -> str:
    """Create trial ``trial``'s (still empty) child run under ``parent_run_id``; its id."""
    end = _ms(trial.datetime_complete) or int(time.time() * 1000)
    run = client.create_run(
        experiment_id,
        start_time=_ms(trial.datetime_start) or end,
        tags={
            PARENT_TAG: parent_run_id,
            RUN_NAME_TAG: f"trial-{trial.number}",
            "mlf.role": "trial",
            "mlf.study": study_name,
            "mlf.trial_number": str(trial.number),
            "mlf.trial_state": trial.state.name,
        },
    )
    return run.info.run_id


def write_trial(client, run_id: str, trial, status: str | None = None) -> None:
    """Log a finished trial's params, metrics and error (a tag, and its traceback as an
    artifact) into ``run_id``, then end it."""
    from mlflow.entities import Metric, Param, RunTag

    end = _ms(trial.datetime_complete) or int(time.time() * 1000)
    attrs = trial.user_attrs
    metrics = [
        Metric("intermediate_value", float(v), end, int(step))
        for step, v in sorted(trial.intermediate_values.items())
        if math.isfinite(v)
    ]
    for prefix, key in (("val", "val_metrics"), ("train", "train_metrics")):
        for name, value in (attrs.get(key) or {}).items():
            if value is not None and math.isfinite(value):
                metrics.append(Metric(mlflow_key(prefix, name), float(value), end, 0))
    if trial.value is not None and math.isfinite(trial.value):
        metrics.append(Metric("objective", float(trial.value), end, 0))
    if "training_time_s" in attrs:
        metrics.append(Metric("training_time_s", float(attrs["training_time_s"]), end, 0))
    config = attrs.get("config") or trial.params
    params = [Param(k, param_text(v)) for k, v in config.items()]
    tags = []
    if attrs.get("error"):
        tags.append(RunTag(ERROR_TAG, first_line(str(attrs["error"]))[:5000]))
    if attrs.get("traceback"):
        client.log_text(run_id, str(attrs["traceback"]), TRACEBACK_ARTIFACT)
    for i in range(0, max(len(metrics), len(params), 1), BATCH):
        client.log_batch(
            run_id,
            metrics=metrics[i : i + BATCH],
            params=params[i : i + BATCH],
            tags=tags if i == 0 else [],
        )
    client.set_terminated(run_id, status or STATUS.get(trial.state.name, "FAILED"), end)


def param_text(value: Any) -> str:
    """A parameter value as MLflow stores it (JSON for non-strings, cut to its limit)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_PARAM_LENGTH]


class ChildRunSink:
    """Where a tracker hands finished trials: :meth:`start` once, :meth:`submit` per trial,
    :meth:`flush` to wait until they are written, :meth:`close` at the end."""

    seconds: float = 0.0
    """Time spent writing child runs (known to the writer's owner only)."""
    closed: bool = False
    lost: str | None = None
    """Why the tracking store was lost (unreachable, full), once it was: the trials after that
    are not tried (each would wait out MLflow's retries); a rerun writes them."""

    @property
    def errors(self) -> list[str]:
        """Trials that could not be handed over or written."""
        return []

    def start(
        self, tracking_uri: str, experiment_id: str | None, parent_run_id: str, study_name: str
    ) -> None:
        """Write child runs of study ``study_name`` under ``parent_run_id`` in that store
        (``experiment_id`` None: the parent run's experiment)."""

    def submit(self, trial, status: str | None = None) -> None:
        """Hand over finished trial ``trial`` (a FrozenTrial) to be written as a child run."""
        raise NotImplementedError

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every trial submitted so far is written."""

    def close(self, timeout: float | None = None) -> None:
        """Write what is left and release the store (once)."""
        self.closed = True


class InlineChildRuns(ChildRunSink):
    """Writes each trial in this process as it is submitted (three MLflow calls): no process
    to start, so nothing to wait for; the trial's process pays the writing time."""

    def __init__(self) -> None:
        self.client = None
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.study_name = ""
        self.seconds = 0.0
        self.lost: str | None = None
        self._errors: list[str] = []

    @property
    def errors(self) -> list[str]:
        return list(self._errors)

    def start(
        self, tracking_uri: str, experiment_id: str | None, parent_run_id: str, study_name: str
    ) -> None:
        from ..services.mlflow_store import connect, quiet_mlflow_logs, use_wal_for_sqlite

        quiet_mlflow_logs()
        if tracking_uri.startswith("sqlite:"):
            use_wal_for_sqlite()
        self.client = connect(tracking_uri)
        self.parent_run_id, self.study_name = parent_run_id, study_name
        self.experiment_id = experiment_id
        if experiment_id is None:  # a worker: the parent run's experiment
            try:
                self.experiment_id = self.client.get_run(parent_run_id).info.experiment_id
            except Exception as exc:
                self._errors.append(f"parent run {parent_run_id}: {type(exc).__name__}: {exc}")

    def submit(self, trial, status: str | None = None) -> None:
        if self.experiment_id is None or self.parent_run_id is None:
            return
        if self.lost is not None:
            self._errors.append(f"trial {trial.number}: not tried, the store was lost")
            return
        start = time.perf_counter()
        try:
            run_id = create_child(
                self.client, self.experiment_id, self.parent_run_id, self.study_name, trial
            )
            write_trial(self.client, run_id, trial, status)
        except Exception as exc:  # tracking must never stop the study
            from ..services.outages import lost_reason

            self.lost = lost_reason(exc)
            self._errors.append(f"trial {trial.number}: {type(exc).__name__}: {exc}")
        self.seconds += time.perf_counter() - start


class ChildRunSender(ChildRunSink):
    """One end of a pipe to a writer process: :meth:`submit` hands it a finished trial.

    A ``--n-jobs`` worker process holds one (a pipe from :meth:`ChildRunWriter.take_input`,
    as a file descriptor or a ``multiprocessing`` connection); the command's own process holds
    the :class:`ChildRunWriter` itself. :meth:`start` has nothing to do: the writer was told
    where to write by the command that owns it.
    """

    def __init__(self, pipe) -> None:
        from multiprocessing.connection import Connection

        self._out = pipe if isinstance(pipe, Connection) else Connection(pipe, readable=False)
        self.seconds = 0.0
        self._errors: list[str] = []
        self.closed = False

    @property
    def errors(self) -> list[str]:
        return list(self._errors)

    def submit(self, trial, status: str | None = None) -> None:
        try:
            self._out.send(("trial", trial, status))
        except OSError:
            self._errors.append(f"trial {trial.number}: the MLflow writer process has ended")

    def close(self, timeout: float | None = None) -> None:
        if not self.closed:
            self.closed = True
            self._out.close()


class ChildRunWriter(ChildRunSender):
    """The writer process of one ``mlf optimize`` command: :meth:`submit` returns at once.

    It is ``python -m mlforecast_cli.tracking.child_runs`` fed over pipes, not a ``multiprocessing``
    child: spawning one re-imports the caller's main module, which breaks scripts without an
    ``if __name__ == "__main__"`` guard. It starts (and imports MLflow, about 2 s) as soon as
    it is made; :meth:`start` tells it where to write. ``inputs`` more pipes are made for the
    command's ``--n-jobs`` worker processes (:meth:`take_input`), so one writer serves them
    all: a writer per process would cost each one the MLflow import and make them queue for
    the SQLite store's write lock.
    """

    def __init__(self, inputs: int = 0) -> None:
        import os
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        # The writer's three calls per trial are mlf's bookkeeping: they send MLflow no usage
        # telemetry (a fifth of the writer's time); the command's own MLflow calls keep the
        # user's setting.
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        from_parent, to_child = os.pipe()
        from_child, to_parent = os.pipe()
        pipes = [os.pipe() for _ in range(inputs)]
        readers = [r for r, _ in pipes]
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlforecast_cli.tracking.child_runs",
                ",".join(str(fd) for fd in (from_parent, to_parent, *readers)),
            ],
            pass_fds=(from_parent, to_parent, *readers),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None if debug_enabled() else subprocess.DEVNULL,
        )
        for fd in (from_parent, to_parent, *readers):
            os.close(fd)
        super().__init__(to_child)
        self._in = Connection(from_child, writable=False)
        self._inputs = [w for _, w in pipes]
        self._started = False
        self._reported: list[str] = []
        """Errors the writer process reported (it keeps the whole list)."""
        atexit.register(self.close)

    def start(
        self, tracking_uri: str, experiment_id: str | None, parent_run_id: str, study_name: str
    ) -> None:
        self._out.send((tracking_uri, experiment_id, parent_run_id, study_name))
        self._started = True

    def take_input(self) -> int | None:
        """A pipe (file descriptor) for one worker process to send its trials through
        (:class:`ChildRunSender`); close this process's copy once the worker has it."""
        return self._inputs.pop() if self._inputs else None

    def release_inputs(self) -> None:
        """Close the pipes no worker took (the writer waits for every pipe to close)."""
        import os

        while self._inputs:
            os.close(self._inputs.pop())

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every trial submitted so far (workers' included) is written.

        The writer's workers' pipes count too; a worker's own sender has nothing to wait for:
        the command's process flushes the writer at its end."""
        if self.closed:
            return
        try:
            self._out.send(("flush",))
            self._receive(timeout)
        except (OSError, EOFError):
            self._errors.append("the MLflow writer process ended early")

    def close(self, timeout: float | None = 120.0) -> None:
        """Write what is queued, then stop the writer (once)."""
        if self.closed:
            return
        self.closed = True
        atexit.unregister(self.close)
        self.release_inputs()
        try:
            if not self._started:
                self._out.send((None, None, None, None))
            self._out.send(None)
            self._receive(timeout)
        except (OSError, EOFError):
            self._errors.append("the MLflow writer process ended early")
        finally:
            self._out.close()
            self._in.close()
            try:
                self._process.wait(timeout=5)
            except Exception:
                self._process.kill()

    def _receive(self, timeout: float | None) -> None:
        if timeout is not None and not self._in.poll(timeout):
            self._errors.append(f"the MLflow writer did not finish within {timeout:.0f} s")
            return
        self.seconds, self._reported, self.lost = self._in.recv()

    @property
    def errors(self) -> list[str]:
        return [*self._errors, *self._reported]


CLOSE_WAIT_S = 60.0
"""How long a closing writer still waits for workers' pipes to close."""


def _serve(fds: list[int]) -> None:
    """The writer process: write each trial it receives until told to stop and every
    worker's pipe is closed (or the command's process is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group
    from multiprocessing.connection import Connection, wait

    import mlflow.tracking  # noqa: F401  (the slow import, while the study is being opened)

    receive = Connection(fds[0], writable=False)
    send = Connection(fds[1], readable=False)
    inputs = [Connection(fd, writable=False) for fd in fds[2:]]
    try:
        tracking_uri, experiment_id, parent_run_id, study_name = receive.recv()
    except (EOFError, OSError):
        return
    if tracking_uri is None:  # closed before it was started
        send.send((0.0, [], None))
        return
    sink = InlineChildRuns()
    sink.start(tracking_uri, experiment_id, parent_run_id, study_name)

    def write(message) -> None:
        _, trial, status = message
        sink.submit(trial, status)

    def drain(timeout: float) -> None:
        """Write what the workers have sent, waiting up to ``timeout`` for more."""
        deadline = time.monotonic() + timeout
        while inputs:
            ready = wait(inputs, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                return
            for conn in ready:
                try:
                    write(conn.recv())
                except (EOFError, OSError):
                    inputs.remove(conn)

    stopping = False
    while True:
        if stopping:
            drain(CLOSE_WAIT_S)
            send.send((sink.seconds, sink.errors, sink.lost))
            return
        for conn in wait([receive, *inputs]):
            if conn is not receive and conn not in inputs:
                continue  # closed while a flush drained the workers' pipes
            try:
                message = conn.recv()
            except (EOFError, OSError):
                if conn is receive:  # the command's process is gone: finish the workers'
                    drain(CLOSE_WAIT_S)
                    return
                inputs.remove(conn)
                continue
            if conn is not receive:
                write(message)
            elif message is None:
                stopping = True
            elif message[0] == "flush":
                drain(0.0)
                send.send((sink.seconds, sink.errors, sink.lost))
            else:
                write(message)


if __name__ == "__main__":
    import sys

    _serve([int(fd) for fd in sys.argv[1].split(",")])
