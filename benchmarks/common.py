"""Helpers shared by the benchmark sections: the machine, running ``mlf``, markdown tables.

Every ``mlf`` run happens in a fresh temporary folder with its own ``MLF_HOME`` (Optuna
journal) and ``MLFLOW_TRACKING_URI`` (a SQLite store in that folder), so nothing of an earlier
run is resumed and nothing is left behind. :func:`run_mlf` also returns the peak resident
memory of the process (``wait4``'s ``ru_maxrss``), so every run measures its memory for free.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data"


# --------------------------------------------------------------------------- the machine
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cores() -> int:
    """Cores this process may use (affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def memory_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def versions() -> dict[str, str]:
    """Python and the installed versions of the packages the figures depend on."""
    from mlforecast_cli.tracking.parent_run import package_versions

    found = package_versions()
    found.pop("platform", None)
    return found


def git_revision() -> str:
    """The checkout's commit, with ``+changes`` when the working tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def machine_info() -> dict[str, Any]:
    memory = memory_total_gib()
    return {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": cores(),
        "memory": f"{memory:.0f} GiB" if memory else "unknown",
        "os": platform.platform(),
        "load": load_average(),
        "revision": git_revision(),
        "versions": versions(),
    }


def machine_markdown(info: dict[str, Any]) -> str:
    v = info["versions"]
    packages = ", ".join(f"{k} {val}" for k, val in v.items() if k != "python")
    return "\n".join(
        [
            f"- Date: {info['date']}",
            f"- CPU: {info['cpu']}, {info['cores']} cores, {info['memory']} RAM",
            f"- OS: {info['os']}; load average at start (1/5/15 min): {info['load']}",
            f"- Python {v['python']}; {packages}",
            f"- Code: {info['revision']}",
        ]
    )


# --------------------------------------------------------------------------- running mlf
def mlf_argv() -> list[str]:
    """How to start the CLI: the ``mlf`` console script of this interpreter, if installed
    next to it (what a user runs), else ``python -m mlforecast_cli``."""
    script = Path(sys.executable).parent / "mlf"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("mlf")
    if found and "shims" not in found:  # a pyenv shim adds a shell start-up to every call
        return [found]
    return [sys.executable, "-m", "mlforecast_cli"]


@dataclass
class MlfRun:
    """One finished ``mlf`` process."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    max_rss_mib: float
    folder: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    total_rss_mib: float = float("nan")
    """Peak summed RSS of the command and its children (sampled every 0.1 s)."""

    @property
    def document(self) -> dict[str, Any] | None:
        """The ``--json`` document, or None when the run printed none."""
        text = self.stdout.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return None

    def error_line(self) -> str:
        lines = [line for line in (self.stderr or self.stdout).splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"exit code {self.returncode}"


def isolated_env(folder: Path) -> dict[str, str]:
    """The environment of a run in ``folder``: its own study journal and MLflow store."""
    env = {
        **os.environ,
        "MLF_HOME": str(folder / ".mlf"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
        "COLUMNS": "120",
    }
    env.pop("MLF_DEBUG", None)
    return env


LAUNCHER = """
import os, sys
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""
"""Starts the measured command from a small process. A child's ru_maxrss starts from the RSS
of the process it was forked from (Linux records the old address space's peak at exec), so
measuring from this benchmark's own process, which holds MLflow and LightGBM once the
overhead section ran, would report that instead; the launcher (``python -S``) costs a floor
of about 10 MiB."""


def session_rss_mib(session: int) -> float:
    """Memory of every process in session ``session`` together (Linux /proc): the sum of
    their proportional set sizes (PSS: a page shared by two processes counts half in each),
    their RSS where PSS is not available."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) != session:  # field 6 of stat: the session id
                continue
            try:
                rollup = (entry / "smaps_rollup").read_text().splitlines()
                total += next(int(x.split()[1]) for x in rollup if x.startswith("Pss:")) * 1024
            except (OSError, StopIteration):
                total += int((entry / "statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024**2


class SessionMemory:
    """Samples the memory of a process session every ``interval`` s from a thread: the
    command and its children (``--n-jobs`` workers, the MLflow writer) together."""

    def __init__(self, session: int, interval: float = 0.1) -> None:
        import threading

        self.peak = float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(session, interval), daemon=True)
        if Path("/proc/self/stat").exists():
            self.peak = 0.0
            self._thread.start()

    def _run(self, session: int, interval: float) -> None:
        while not self._stop.wait(interval):
            self.peak = max(self.peak, session_rss_mib(session))

    def stop(self) -> float:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.peak


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float | None = None,
    memory: bool = True,
) -> tuple[int, str, str, float, float, float]:
    """Run ``argv``; returns (exit code, stdout, stderr, wall seconds, peak RSS in MiB, peak
    summed RSS of the command and its child processes in MiB).

    With ``memory`` the command starts from :data:`LAUNCHER`, which reports ``wait4``'s peak
    RSS of that very process (its largest child's, if larger), nothing of other runs; the
    summed RSS is sampled every 0.1 s. The wall time then includes the launcher's start
    (about 20 ms), so time start-up without it.
    """
    with tempfile.TemporaryDirectory(prefix="mlf-bench-run-") as tmp:
        out_path, err_path = Path(tmp) / "out", Path(tmp) / "err"
        rss_path = Path(tmp) / "rss"
        full = [sys.executable, "-S", "-c", LAUNCHER, str(rss_path), *argv] if memory else argv
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(
                list(full), cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
            )
            sampler = SessionMemory(proc.pid) if memory else None
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            wall = time.perf_counter() - started
            total = sampler.stop() if sampler is not None else float("nan")
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
        rss_kib = float(rss_path.read_text()) if memory and rss_path.exists() else float("nan")
    if sys.platform == "darwin":
        rss_kib /= 1024  # bytes there
    return proc.returncode, stdout, stderr, wall, rss_kib / 1024, total


@contextmanager
def scratch(prefix: str = "mlf-bench-") -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Path(folder)


def run_mlf(
    args: Sequence[str],
    *,
    folder: Path | None = None,
    timeout: float | None = None,
    inspect: Callable[[Path, MlfRun], Any] | None = None,
) -> MlfRun:
    """Run ``mlf ARGS`` in ``folder`` (a fresh temporary one when None) with its own
    ``MLF_HOME`` and ``MLFLOW_TRACKING_URI``. ``inspect(folder, run)`` is called before a
    temporary folder is removed; what it returns lands in ``run.extra["inspect"]``."""
    if folder is None:
        with scratch() as tmp:
            return run_mlf(args, folder=tmp, timeout=timeout, inspect=inspect)
    argv = [*mlf_argv(), *args]
    code, out, err, wall, rss, total = run_process(
        argv, cwd=folder, env=isolated_env(folder), timeout=timeout
    )
    run = MlfRun(argv, code, out, err, wall, rss, folder, total_rss_mib=total)
    if inspect is not None:
        run.extra["inspect"] = inspect(folder, run)
    return run


def shown(argv: Sequence[str]) -> str:
    """A command line as a reader would type it (``mlf`` for the CLI, ``python`` for us)."""
    words = list(argv)
    cli = mlf_argv()
    if words[: len(cli)] == cli:
        words = ["mlf", *words[len(cli) :]]
    elif words and words[0] == sys.executable:
        words[0] = "python"
    out = []
    for w in words:
        if str(DATA_DIR) in w:
            w = w.replace(str(REPO) + os.sep, "")
        out.append(w if w and all(c.isalnum() or c in "-_./=,:" for c in w) else repr(w))
    return " ".join(out)


# --------------------------------------------------------------------------- figures
def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float | None, digits: int = 2, none: str = "–") -> str:
    if value is None or value != value:  # None or NaN
        return none
    return f"{value:.{digits}f}"


# --------------------------------------------------------------------------- markdown
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A markdown table; ``align`` has one letter per column, l or r (default: l then r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


@dataclass
class Section:
    """One section of docs/benchmarks.md."""

    key: str
    title: str
    body: str
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        return f"## {self.title}\n\n{self.body.strip()}\n\n_Section time: {self.seconds:.0f} s._\n"


def finished_trials(folder, study_name: str) -> list:
    """The finished trials (with start and end times) of ``study_name`` in the journal that
    the `mlf` run in ``folder`` wrote (``folder/.mlf``)."""
    import optuna

    from mlforecast_cli.services.storage import JOURNAL_FILE, open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(f"journal:///{folder / '.mlf' / JOURNAL_FILE}")
    study = optuna.load_study(study_name=study_name, storage=storage)
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and t.datetime_start and t.datetime_complete
    ]
