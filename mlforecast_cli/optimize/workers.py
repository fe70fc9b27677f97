"""`--n-jobs N`: N processes share one study (no GIL between their trials).

The command's own process runs trials with progress and tracking; it starts N-1 worker
processes as functions (:func:`run_worker`, ``multiprocessing`` spawn context) with
everything they need in one picklable :class:`WorkerJob`: the registry's settings (so a
``--plugins-dir`` reaches them), the study's config and split, the panel, the target trial count and
where to log. Every process pulls trials until the study holds the target count; a worker
hands its finished trials to the command's MLflow writer through a pipe (or, with inline
child runs, writes them itself) under the same parent run, and leaves the refit to the
command's process.

With ``--cluster``, the N-1 workers are tasks on the Dask cluster's workers instead
(:func:`start_on_cluster`): each writes its child runs itself and sends its per-series work
back to the cluster; the study storage and the MLflow store must be ones every worker reaches
(checked before the first task).

Spawned, a worker imports the parent's main module under another name (``__mp_main__``):
`mlf` and ``python -m mlforecast_cli`` are guarded; a library caller's script that uses
``n_jobs > 1`` needs an ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import MlfError, debug_enabled, described

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from ..data.panel import Panel
    from ..data.split import Split
    from ..services.executors import DaskExecutor
    from ..trials.optuna_study import StudyConfig

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the running trial fails, runs are closed) but exit 143."""


def raise_terminated(signum, frame) -> None:
    """A SIGTERM handler: raise :class:`Terminated` in the main thread."""
    raise Terminated()


def exit_code(exc: KeyboardInterrupt) -> int:
    """The exit status of a process stopped by ``exc``: 143 for SIGTERM, 130 for Ctrl-C."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


@dataclass(frozen=True)
class WorkerJob:
    """What one worker process needs; pickled to it when it is spawned."""

    registry: dict[str, Any]
    """:meth:`Registry.settings` of the command's registry."""
    study: StudyConfig
    split: Split
    """The study's split, computed once when it was planned."""
    panel: Panel
    until_total: int
    timeout: float | None
    tracking_uri: str
    child_runs: str = "process"
    """``process``: trials go through the pipe to the command's writer; ``inline``: the
    worker writes them itself."""


@dataclass
class Worker:
    """A started worker process and the pipe its error message comes back through."""

    process: BaseProcess
    result: Connection

    def stop(self) -> None:
        """Ask it to stop (it fails its running trial and closes its runs)."""
        if self.process.is_alive():
            self.process.terminate()  # SIGTERM

    def wait(self) -> str | None:
        """Wait for it; one line when it failed."""
        self.process.join()
        message = None
        try:
            if self.result.poll():
                message = self.result.recv()
        except (EOFError, OSError):
            pass
        finally:
            self.result.close()
        code = self.process.exitcode
        if code in (0, EXIT_INTERRUPTED, EXIT_TERMINATED):
            return None
        return f"worker {self.process.pid} exited {code}: {message or 'no message'}"


@dataclass
class TaskWorker:
    """A worker run as a task on the Dask cluster (:func:`run_task`), and the cluster-wide
    event that asks it to stop after its running trial."""

    future: Any
    stop_event: Any

    def stop(self) -> None:
        """Ask it to stop once its running trial ends (a Dask task cannot be interrupted)."""
        import contextlib

        with contextlib.suppress(Exception):  # a lost cluster: the task is gone with it
            self.stop_event.set()

    def wait(self) -> str | None:
        """Wait for the task; one line when it failed."""
        try:
            self.future.result()
        except Exception as exc:
            message = str(exc) if isinstance(exc, MlfError) else described(exc)
            return f"worker task {self.future.key} on the Dask cluster failed: {message}"
        return None


def registry_settings() -> dict[str, Any]:
    """The settings of this process's registry, for :attr:`WorkerJob.registry`."""
    from ..models.registry import get_registry

    return get_registry().settings()


def start(jobs: Sequence[WorkerJob], pipes: Sequence[int | None] = ()) -> list[Worker | TaskWorker]:
    """Start one process per job; job i gets file descriptor ``pipes[i]`` (a pipe to the
    command's child-run writer, closed here once the worker has its copy). With a Dask
    cluster (``--cluster``), one task per job on it instead (:func:`start_on_cluster`)."""
    import multiprocessing
    from multiprocessing.connection import Connection

    from ..services.executors import DaskExecutor, current_executor

    executor = current_executor()
    if jobs and isinstance(executor, DaskExecutor):
        for fd in pipes:
            if fd is not None:
                os.close(fd)  # a task on another machine writes its child runs itself
        return start_on_cluster(executor, jobs)

    ctx = multiprocessing.get_context("spawn")
    started = []
    for i, job in enumerate(jobs):
        fd = pipes[i] if i < len(pipes) else None
        sender = Connection(fd, readable=False) if fd is not None else None
        receive, send = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=run_worker, args=(job, sender, send), name=f"mlf-worker-{i + 1}"
        )
        process.start()
        send.close()
        if sender is not None:
            sender.close()
        started.append(Worker(process, receive))
    return started


def stop(workers: Sequence[Worker | TaskWorker]) -> None:
    """Ask every running worker to stop (it fails its running trial and closes its runs; a
    task on a cluster ends its running trial first)."""
    for worker in workers:
        worker.stop()


def wait(workers: Sequence[Worker | TaskWorker]) -> list[str]:
    """Wait for the workers; one line for each that failed."""
    return [line for line in (worker.wait() for worker in workers) if line is not None]


def start_on_cluster(executor: DaskExecutor, jobs: Sequence[WorkerJob]) -> list[TaskWorker]:
    """One Dask task per job on ``executor``'s cluster (``--cluster`` with ``--n-jobs``); each
    task writes its child runs itself, to the command's MLflow store (a relative SQLite or file
    store made absolute). :func:`check_cluster_storage` has checked that every worker opens
    the study."""
    import dataclasses
    import uuid

    from distributed import Event

    client = executor.client
    storage = cluster_storage(jobs[0].study)
    started = []
    for job in jobs:
        settings = dataclasses.replace(job.study.settings, storage=storage)
        job = dataclasses.replace(
            job,
            study=dataclasses.replace(job.study, settings=settings),
            tracking_uri=absolute_uri(job.tracking_uri),
            child_runs="inline",
        )
        event = Event(f"mlf-stop-{uuid.uuid4().hex}", client=client)
        future = client.submit(run_task, job, event.name, executor.address, pure=False)
        started.append(TaskWorker(future, event))
    return started


def check_cluster_storage(study: StudyConfig) -> None:
    """With ``--cluster`` and ``--n-jobs`` above 1, refuse in one line when a Dask worker
    cannot open ``study`` in its storage; called once the study exists, before its parent run
    is started (a refusal leaves no run behind)."""
    from ..services.executors import DaskExecutor, current_executor

    executor = current_executor()
    if study.n_jobs < 2 or not isinstance(executor, DaskExecutor):
        return
    from ..errors import UsageError
    from ..services.storage import redact

    storage = cluster_storage(study)
    name = study.study_name
    for worker, problem in sorted(executor.client.run(storage_problem, storage, name).items()):
        if problem is not None:
            raise UsageError(
                f"Dask worker {worker} cannot open the study {name} in {redact(storage)} "
                f"({problem}): with --cluster and --n-jobs, use a --storage every worker "
                "reaches (postgresql://...), or pass --n-jobs 1"
            )


def cluster_storage(study: StudyConfig) -> str:
    """The storage URL the cluster's tasks open ``study`` with (a relative path made
    absolute)."""
    from ..services.storage import default_storage_url

    return absolute_uri(study.storage or default_storage_url())


def storage_problem(url: str, study_name: str) -> str | None:
    """Why this process cannot load ``study_name`` from the storage at ``url`` (None: it
    can); runs on each Dask worker. A journal file that is not here is not created."""
    import optuna

    from ..services.storage import open_storage

    if url.startswith("journal:///"):
        path = url.split(":///", 1)[1]
        if not os.path.exists(path):
            return f"no file {path} on the worker"
    try:
        optuna.load_study(study_name=study_name, storage=open_storage(url))
    except Exception as exc:
        return described(exc)
    return None


def absolute_uri(uri: str) -> str:
    """``uri`` with a relative SQLite or file path made absolute (a task runs elsewhere)."""
    for prefix in ("sqlite:///", "journal:///", "file://", ""):
        if uri.startswith(prefix) and (prefix or "://" not in uri):
            path = uri[len(prefix) :]
            if path and not os.path.isabs(path):
                return prefix + os.path.abspath(path)
            return uri
    return uri


def run_task(job: WorkerJob, stop_event: str, address: str) -> None:
    """The body of a worker task on a Dask worker: :func:`run_worker`'s trials, its
    per-series work sent back to the cluster through the worker's own client, until the
    study holds ``job.until_total`` or ``stop_event`` is set."""
    from distributed import Event, worker_client

    from ..services.executors import DaskExecutor, use_executor

    with worker_client() as client:  # seceded: its worker's thread runs chunks meanwhile
        executor = DaskExecutor(client, address=address, owned=False)
        with use_executor(executor, thread=True):
            _work(job, None, stop=Event(stop_event, client=client))


def run_worker(job: WorkerJob, sender: Connection | None, result: Connection) -> None:
    """The body of a worker process: run trials until the study holds ``job.until_total``.

    Its output goes to /dev/null (an error comes back through ``result`` as one line);
    SIGTERM and Ctrl-C fail the running trial, log it KILLED and exit 143 or 130."""
    signal.signal(signal.SIGTERM, raise_terminated)
    _quiet_output()
    code = 0
    try:
        _work(job, sender)
    except KeyboardInterrupt as exc:
        code = exit_code(exc)
    except BaseException as exc:
        if debug_enabled():  # stderr is the terminal's then
            traceback.print_exc()
        result.send(str(exc) if isinstance(exc, MlfError) else described(exc))
        code = 1
    finally:
        result.close()
    sys.exit(code)


def _work(job: WorkerJob, sender: Connection | None, stop: Any = None) -> None:
    from ..models.registry import Registry, set_registry
    from ..tracking.child_runs import ChildRunSender
    from ..tracking.parent_run import MlflowTracker
    from ..trials.objective import build_objective, run_study
    from ..trials.optuna_study import create_study

    registry = Registry(**job.registry)
    set_registry(registry)
    entry = registry.get(job.study.model)
    objective = build_objective(entry, job.panel, job.study, job.split)
    study, _ = create_study(job.study, job.panel)
    tracker = MlflowTracker(
        experiment="",
        tracking_uri=job.tracking_uri,
        metric=job.study.metric,
        worker=True,
        sink=ChildRunSender(sender) if sender is not None else job.child_runs,
    )
    try:
        tracker.start(study, created=False)
        try:
            run_study(
                objective,
                study,
                n_trials=None,
                until_total=job.until_total,
                timeout=job.timeout,
                callbacks=[tracker] if stop is None else [tracker, StopWhenSet(stop)],
            )
        except KeyboardInterrupt:
            tracker.log_unfinished(objective.started, status="KILLED")
            raise
    finally:
        tracker.close(None)


@dataclass(frozen=True)
class StopWhenSet:
    """An Optuna callback: stop the study after a trial once ``event`` (a Dask ``Event``) is
    set."""

    event: Any

    def __call__(self, study, trial) -> None:
        if self.event.is_set():
            study.stop()


def _quiet_output() -> None:
    """Send this process's stdout (and stderr unless MLF_DEBUG is set) to /dev/null: the
    command's process owns the terminal."""
    streams = [1] if debug_enabled() else [1, 2]
    null = os.open(os.devnull, os.O_WRONLY)
    for fd in streams:
        os.dup2(null, fd)
    os.close(null)
