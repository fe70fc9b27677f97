"""A service that dies mid-study, on real services: a throwaway PostgreSQL cluster stopped and
restarted, a real `mlflow server` process killed, a small tmpfs filled to the last byte.

Each test proves the one-line message, the exit code (3), the time to exit, and that a rerun
once the service is back loses nothing (no trial left RUNNING, one child run per trial).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.test_faults import load, runs, start, states, wait_until, worker_env  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.full_optimize]

EXIT_SERVICE_LOST = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def finished(study) -> list[int]:
    return [t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


# ---- PostgreSQL --------------------------------------------------------------------------------
class Cluster:
    """A throwaway PostgreSQL cluster run by the ``postgres`` user (as `.ci/services` does)."""

    def __init__(self) -> None:
        self.bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        # in /tmp itself: pytest's folders are private to root, where postgres cannot go
        self.data = Path(tempfile.mkdtemp(prefix="mlf-pg."))
        os.chown(self.data, *_postgres_ids())
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/mlf_test"
        self._su(f"{self.bin}/initdb -D {self.data} -A trust -U postgres")
        self.start()
        self._su(f"{self.bin}/createdb -h 127.0.0.1 -p {self.port} mlf_test")

    def _su(self, command: str) -> None:
        done = subprocess.run(["su", "postgres", "-c", command], capture_output=True, text=True)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"

    def start(self) -> None:
        self._su(
            f"{self.bin}/pg_ctl -D {self.data} -l {self.data}/server.log -w -o "
            f"'-p {self.port} -k /tmp -c listen_addresses=127.0.0.1' start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._su(f"{self.bin}/pg_ctl -D {self.data} -m {mode} -w stop")

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data, ignore_errors=True)


def _postgres_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def _postgres_missing() -> str | None:
    if not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
        return "no PostgreSQL binaries in /usr/lib/postgresql (.ci/services installs them)"
    if os.geteuid() != 0:
        return "starting a throwaway PostgreSQL cluster needs root (su postgres)"
    try:
        _postgres_ids()
    except KeyError:
        return "no postgres user"
    return None


@pytest.fixture(scope="module")
def cluster():
    missing = _postgres_missing()
    if missing:
        pytest.skip(missing)
    pg = Cluster()
    yield pg
    pg.remove()


def test_postgresql_stopped_mid_study(worker_env, mlflow_uri, tmp_path, cluster):  # noqa: F811
    name = f"pg-{uuid.uuid4().hex[:8]}"
    args = ["--storage", cluster.url, "--study-name", name]
    proc = start(worker_env(delay=0.4), "--trials", "40", *args, cwd=tmp_path)
    study = lambda: _load(name, cluster.url)  # noqa: E731
    wait_until(lambda: len(finished(study())) >= 3 and "RUNNING" in states(study()))
    before = {t.number: t.state.name for t in study().get_trials(deepcopy=False)}
    cluster.stop("immediate")
    stopped = time.monotonic()
    try:
        out, err = proc.communicate(timeout=60)
        seconds = time.monotonic() - stopped
    finally:
        cluster.start()
    assert proc.returncode == EXIT_SERVICE_LOST, err
    assert "Traceback" not in err
    [line] = error_lines(err)
    assert f"lost the study storage {cluster.url}" in line
    assert "finished trials are kept" in line and "rerun the same command" in line
    assert seconds < 15, f"{seconds:.1f} s to exit"
    # the rerun fails the interrupted trial, keeps every finished one and logs every trial
    resumed = start(worker_env(delay=0.0), "--trials", "2", *args, cwd=tmp_path)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    after = {t.number: t for t in study().get_trials(deepcopy=False)}
    assert "RUNNING" not in [t.state.name for t in after.values()]
    assert all(after[n].state.name == s for n, s in before.items() if s != "RUNNING")
    interrupted = [n for n, s in before.items() if s == "RUNNING"]
    assert interrupted and all(after[n].state.name == "FAIL" for n in interrupted)
    children = runs(mlflow_uri, "trial")
    assert sorted(int(c.data.tags["mlf.trial_number"]) for c in children) == sorted(after)


def test_eight_workers_share_one_postgresql_study(worker_env, mlflow_uri, tmp_path, cluster):  # noqa: F811
    name = f"pg8-{uuid.uuid4().hex[:8]}"
    env = worker_env(delay=0.0)
    args = ["--trials", "2", "--storage", cluster.url, "--study-name", name]
    procs = [start(env, *args, cwd=tmp_path) for _ in range(8)]
    for proc in procs:
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err
    trials = _load(name, cluster.url).get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(16))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["mlf_worker"]["pid"] for t in trials}) == 8
    [parent] = runs(mlflow_uri, "study")
    children = runs(mlflow_uri, "trial")
    assert sorted(int(c.data.tags["mlf.trial_number"]) for c in children) == list(range(16))
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}


def _load(name: str, url: str):
    import optuna

    from mlforecast_cli.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url))


# ---- MLflow server -----------------------------------------------------------------------------
class MlflowServer:
    """A real `mlflow server` on a loopback port, its store in ``folder`` (kept across restarts)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
                "--artifacts-destination", str(self.folder / "artifacts"),
            ],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its worker processes die with it
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise AssertionError("mlflow server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path / "mlflow-server")
    server.folder.mkdir()
    server.start()
    yield server
    server.kill()


def test_mlflow_server_killed_mid_study(worker_env, tmp_path, mlflow_server):  # noqa: F811
    env = worker_env(delay=0.3)
    args = ["--trials", "25", "--tracking-uri", mlflow_server.uri]
    proc = start(env, *args, cwd=tmp_path)
    wait_until(lambda: len(finished(load())) >= 3)
    mlflow_server.kill()
    out, err = proc.communicate(timeout=240)
    ended = time.time()
    assert proc.returncode == EXIT_SERVICE_LOST, err
    assert "Traceback" not in err
    [line] = error_lines(err)
    assert f"lost the MLflow tracking store {mlflow_server.uri}" in line
    assert "rerun the same command once it is back" in line
    trials = load().get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 25  # the search went on
    last = max(t.datetime_complete for t in trials).timestamp()
    assert ended - last < 30, f"{ended - last:.1f} s from the last trial to the exit"
    kept = tmp_path / ".mlf" / "models" / "slow-walmart-h13-mape"
    assert str(kept) in line and (kept / "mlf_model.json").exists()
    # the server is back: a rerun logs the missing child runs under the same parent
    mlflow_server.start()
    resumed = start(env, "--trials", "1", "--tracking-uri", mlflow_server.uri, cwd=tmp_path)
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    children = runs(mlflow_server.uri, "trial")
    assert sorted(int(c.data.tags["mlf.trial_number"]) for c in children) == list(range(26))
    [parent] = runs(mlflow_server.uri, "study")
    assert parent.info.status == "FINISHED"


# ---- a full disk ---------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs mounted for this test (root only), unmounted after."""
    folder = tmp_path / "disk"
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte; the filler file to remove."""
    filler = folder / "filler"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as out:
        for size in (65536, 4096, 1):
            try:
                while True:
                    out.write(block[:size])
            except OSError:
                continue
    return filler


def test_journal_on_a_full_disk(worker_env, mlflow_uri, tmp_path, small_disk):  # noqa: F811
    env = {**worker_env(delay=0.3), "MLF_HOME": str(small_disk / ".mlf")}
    journal = small_disk / ".mlf" / "optuna.journal"
    proc = start(env, "--trials", "40", cwd=tmp_path)
    wait_until(lambda: journal.exists() and journal.read_bytes().count(b'"state":1') >= 3)
    filler = fill(small_disk)
    full = time.monotonic()
    out, err = proc.communicate(timeout=120)
    seconds = time.monotonic() - full
    assert proc.returncode == EXIT_SERVICE_LOST, err
    assert "Traceback" not in err
    [line] = error_lines(err)
    assert f"lost the study storage journal:///{journal}" in line
    assert "No space left on device" in line and "finished trials are kept" in line
    assert seconds < 15
    text = journal.read_bytes()
    assert text.endswith(b"\n")
    assert all(json.loads(row) for row in text.splitlines())  # every line whole
    filler.unlink()
    resumed = start({**env, **worker_env(delay=0.0)} | {"MLF_HOME": env["MLF_HOME"]},
                    "--trials", "2", cwd=tmp_path)  # fmt: skip
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    from mlforecast_cli.storage import open_storage

    import optuna

    study = optuna.load_study(
        study_name="slow-walmart-h13-mape", storage=open_storage(f"journal:///{journal}")
    )
    trial_states = states(study)
    assert "RUNNING" not in trial_states and trial_states.count("COMPLETE") >= 5
    children = runs(mlflow_uri, "trial")
    assert len(children) == len(trial_states)
