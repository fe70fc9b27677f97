"""`--n-jobs N`: N worker processes share one study (no GIL between their trials).

The command's own process runs trials with progress and tracking; it starts N-1 copies of the
same command with ``--worker``. Every process pulls trials until the study holds the target
count; the workers send their finished trials through a pipe (``--tracking-fd``) to the
command's MLflow writer, under the same parent run, and leave the refit to the first process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def data_options(
    dataset: str | None,
    data: Path | None,
    target: str | None,
    time_col: str | None,
    id_cols: Sequence[str] | None,
    features: Sequence[str] | None,
) -> list[str]:
    """The data flags of the command, repeated for a worker."""
    args: list[str] = []
    if data is not None:
        args += [
            "--data",
            str(Path(data).resolve()),
            "--target",
            target or "",
            "--time-col",
            time_col or "",
        ]
        for column in id_cols or ():
            args += ["--id-col", column]
    elif dataset:
        args += ["--dataset", dataset]
    for column in features or ():
        args += ["--feature", column]
    return args


def start(
    commands: Sequence[Sequence[str]], pipes: Sequence[int | None] = ()
) -> list[subprocess.Popen]:
    """Start one ``python -m mlforecast_cli`` process per argument list; command i inherits
    file descriptor ``pipes[i]`` (closed here once it has), passed as ``--tracking-fd``."""
    procs = []
    for i, args in enumerate(commands):
        fd = pipes[i] if i < len(pipes) else None
        extra = ["--tracking-fd", str(fd)] if fd is not None else []
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "mlforecast_cli", *args, *extra],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                pass_fds=(fd,) if fd is not None else (),
            )
        )
        if fd is not None:
            os.close(fd)
    return procs


def stop(procs: Sequence[subprocess.Popen], sig: int = signal.SIGTERM) -> None:
    """Ask every running worker to stop (it fails its running trial and closes its runs)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(sig)


def wait(procs: Sequence[subprocess.Popen]) -> list[str]:
    """Wait for the workers; the last error line of each one that failed."""
    errors = []
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode not in (0, 130, 143):
            lines = [line for line in (err or "").splitlines() if line.strip()]
            errors.append(
                f"worker {proc.pid} exited {proc.returncode}: "
                f"{lines[-1] if lines else 'no message'}"
            )
    return errors
