"""`--n-jobs N`: N processes share one study (no GIL between their trials).

The command's own process runs trials with progress and tracking; it starts N-1 worker
processes as functions (:func:`run_worker`, ``multiprocessing`` spawn context) with
everything they need in one picklable :class:`WorkerJob`: the registry's settings (so a
``--plugins-dir`` reaches them), the study's config and split, the panel, the target trial count and
where to log. Every process pulls trials until the study holds the target count; a worker
hands its finished trials to the command's MLflow writer through a pipe (or, with inline
child runs, writes them itself) under the same parent run, and leaves the refit to the
command's process.

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


def registry_settings() -> dict[str, Any]:
    """The settings of this process's registry, for :attr:`WorkerJob.registry`."""
    from ..models.registry import get_registry

    return get_registry().settings()


def start(jobs: Sequence[WorkerJob], pipes: Sequence[int | None] = ()) -> list[Worker]:
    """Start one process per job; job i gets file descriptor ``pipes[i]`` (a pipe to the
    command's child-run writer, closed here once the worker has its copy)."""
    import multiprocessing
    from multiprocessing.connection import Connection

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


def stop(workers: Sequence[Worker]) -> None:
    """Ask every running worker to stop (it fails its running trial and closes its runs)."""
    for worker in workers:
        if worker.process.is_alive():
            worker.process.terminate()  # SIGTERM


def wait(workers: Sequence[Worker]) -> list[str]:
    """Wait for the workers; one line for each that failed."""
    errors = []
    for worker in workers:
        worker.process.join()
        message = None
        try:
            if worker.result.poll():
                message = worker.result.recv()
        except (EOFError, OSError):
            pass
        finally:
            worker.result.close()
        code = worker.process.exitcode
        if code not in (0, EXIT_INTERRUPTED, EXIT_TERMINATED):
            errors.append(f"worker {worker.process.pid} exited {code}: {message or 'no message'}")
    return errors


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


def _work(job: WorkerJob, sender: Connection | None) -> None:
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
                callbacks=[tracker],
            )
        except KeyboardInterrupt:
            tracker.log_unfinished(objective.started, status="KILLED")
            raise
    finally:
        tracker.close(None)


def _quiet_output() -> None:
    """Send this process's stdout (and stderr unless MLF_DEBUG is set) to /dev/null: the
    command's process owns the terminal."""
    streams = [1] if debug_enabled() else [1, 2]
    null = os.open(os.devnull, os.O_WRONLY)
    for fd in streams:
        os.dup2(null, fd)
    os.close(null)
