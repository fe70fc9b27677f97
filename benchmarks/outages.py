"""Outages: how soon `mlf optimize` ends, and how, when a service it writes to dies mid-study.

    python benchmarks/outages.py                       # every scenario this machine allows
    python benchmarks/outages.py --only call,mlflow --trials 30

Scenarios: ``call``, one MLflow call to a port where nothing listens (mlf's bounded retries;
MLflow's own defaults take minutes); ``mlflow``, a real `mlflow server` killed once a few
trials of ``mlf optimize MODEL --trials N --tracking-uri http://...`` are done (seconds from
the last trial's end to the exit); ``postgres``, a throwaway PostgreSQL cluster stopped
(``pg_ctl stop -m immediate``) during ``--storage postgresql://...`` (seconds from the stop to
the exit; needs root and PostgreSQL's binaries). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

SCENARIOS = ("call", "mlflow", "postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mlf(folder: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "MLF_HOME": str(folder / ".mlf")}
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    return subprocess.Popen(
        [sys.executable, "-m", "mlforecast_cli", "optimize", *args, "--quiet"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def trials(folder: Path, storage: str | None, study: str):
    import optuna

    from mlforecast_cli.services.storage import open_storage

    os.environ["MLF_HOME"] = str(folder / ".mlf")
    try:
        return optuna.load_study(study_name=study, storage=open_storage(storage)).trials
    except KeyError:
        return []


def wait_for(predicate, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the study")
        time.sleep(0.3)


def done(ts) -> int:
    return sum(t.state.is_finished() for t in ts)


def error_of(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    return lines[-1][:110] + "…" if lines else "(none)"


def call() -> dict:
    from mlforecast_cli.services.mlflow_store import connect

    client = connect(f"http://127.0.0.1:{free_port()}")
    start = time.monotonic()
    with contextlib.suppress(Exception):  # refused, after mlf's bounded retries
        client.get_experiment_by_name("x")
    return {"seconds": time.monotonic() - start, "exit": "-", "error": "-"}


def mlflow(model: str, n: int, folder: Path) -> dict:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return True
        except OSError:
            return False

    wait_for(up, 180)
    proc = mlf(folder, model, "--trials", str(n), "--tracking-uri", uri)
    study = f"{model}-walmart-h13-mape"
    wait_for(lambda: done(trials(folder, None, study)) >= 3)
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()
    _, err = proc.communicate()
    ended = time.time()
    last = max(t.datetime_complete.timestamp() for t in trials(folder, None, study))
    return {"seconds": ended - last, "exit": proc.returncode, "error": error_of(err)}


def postgres(model: str, n: int, folder: Path) -> dict:
    pgbin = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    data = Path(tempfile.mkdtemp(prefix="mlf-pg."))
    user = pwd.getpwnam("postgres")
    os.chown(data, user.pw_uid, user.pw_gid)
    port = free_port()

    def su(command: str) -> None:
        subprocess.run(["su", "postgres", "-c", command], check=True, capture_output=True)

    su(f"{pgbin}/initdb -D {data} -A trust -U postgres")
    su(f"{pgbin}/pg_ctl -D {data} -l {data}/log -w -o '-p {port} -k /tmp' start")
    try:
        su(f"{pgbin}/createdb -h 127.0.0.1 -p {port} mlf")
        url = f"postgresql://postgres@127.0.0.1:{port}/mlf"
        proc = mlf(folder, model, "--trials", str(n), "--storage", url, "--study-name", "bench")
        wait_for(lambda: done(trials(folder, url, "bench")) >= 3)
        su(f"{pgbin}/pg_ctl -D {data} -m immediate stop")
        stopped = time.monotonic()
        _, err = proc.communicate()
        seconds = time.monotonic() - stopped
    finally:
        subprocess.run(["su", "postgres", "-c", f"{pgbin}/pg_ctl -D {data} -m immediate stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(data, ignore_errors=True)
    return {"seconds": seconds, "exit": proc.returncode, "error": error_of(err)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--model", default="random_forest")
    parser.add_argument("--trials", type=int, default=30)
    opts = parser.parse_args()
    rows = []
    for name in opts.only.split(","):
        if name == "postgres" and (os.geteuid() != 0 or not glob.glob("/usr/lib/postgresql/*")):
            rows.append((name, {"seconds": float("nan"), "exit": "-", "error": "skipped"}))
            continue
        with tempfile.TemporaryDirectory(prefix="mlf-outage-") as tmp:
            if name == "call":
                rows.append((name, call()))
            else:
                run = mlflow if name == "mlflow" else postgres
                rows.append((name, run(opts.model, opts.trials, Path(tmp))))
    print(f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cpus")
    print("| scenario | seconds to exit | exit code | message |")
    print("| --- | ---: | ---: | --- |")
    for name, row in rows:
        print(f"| {name} | {row['seconds']:.1f} | {row['exit']} | {row['error']} |")


if __name__ == "__main__":
    main()
