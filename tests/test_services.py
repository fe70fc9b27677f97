"""A service that dies mid-study, on real services: a throwaway PostgreSQL cluster stopped and
restarted, a real `mlflow server` process killed, a small tmpfs filled to the last byte.

Each test proves the one-line message, the exit code (3), the time to exit, and that a rerun
once the service is back loses nothing (no trial left RUNNING, one child run per trial).
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from mlforecast_cli.services.liveness import CLAIM_GRACE_S
from tests.test_faults import load, runs, start, states, wait_until, worker_env  # noqa: F401

SLOW = [pytest.mark.slow, pytest.mark.full_optimize]
"""Marks of the tests that run `mlf optimize` processes (as a user does)."""

EXIT_SERVICE_LOST = 3
PROMPT_EXIT = 45
"""Seconds a command may take to end once its service is lost: it hung for minutes before.
The figures (9-14 s on a busy 2-core machine) are benchmarks/outages.py's; this bound leaves
room for a suite that runs two tests at once."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def finished(study) -> list[int]:
    return [t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def lost_line(proc: subprocess.Popen, err: str) -> str:
    """The one error line of a command that lost its service (exit 3, no traceback)."""
    assert proc.returncode == EXIT_SERVICE_LOST, err
    assert "Traceback" not in err
    [line] = error_lines(err)
    return line


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


@pytest.mark.slow
@pytest.mark.full_optimize
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
    # a trial created just before the stop may never have been claimed: the rerun fails it
    # once it is older than the claim grace (a live process may still be about to claim it)
    time.sleep(max(0.0, CLAIM_GRACE_S - (time.monotonic() - stopped)))
    line = lost_line(proc, err)
    assert f"lost the study storage {cluster.url}" in line
    assert "finished trials are kept" in line and "rerun the same command" in line
    assert seconds < PROMPT_EXIT, f"{seconds:.1f} s to exit"
    # the rerun fails the interrupted trial, keeps every finished one and logs every trial
    resumed = start(worker_env(delay=0.0), "--trials", "2", *args, cwd=tmp_path)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    after = {t.number: t for t in study().get_trials(deepcopy=False)}
    assert "RUNNING" not in [t.state.name for t in after.values()]
    assert all(after[n].state.name == s for n, s in before.items() if s != "RUNNING")
    # the trial running at the stop (not the one seen RUNNING just before: it may have ended)
    died = [n for n, t in after.items() if "died" in (t.user_attrs.get("error") or "")]
    assert len(died) <= 1 and all(after[n].state.name == "FAIL" for n in died)
    assert all(after[n].state.name in ("COMPLETE", "FAIL") for n, s in before.items())
    children = runs(mlflow_uri, "trial")
    assert sorted(int(c.data.tags["mlf.trial_number"]) for c in children) == sorted(after)


@pytest.mark.slow
@pytest.mark.full_optimize
def test_eight_workers_share_one_postgresql_study(worker_env, mlflow_uri, tmp_path, cluster):  # noqa: F811
    name = f"pg8-{uuid.uuid4().hex[:8]}"
    # child runs written in each process (the writer process is tested with two workers)
    env = {**worker_env(delay=0.0), "MLF_CHILD_RUNS": "inline"}
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

    from mlforecast_cli.services.storage import open_storage

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


@pytest.mark.slow
@pytest.mark.full_optimize
def test_mlflow_server_killed_mid_study(worker_env, tmp_path, mlflow_server):  # noqa: F811
    env = worker_env(delay=0.3)
    args = ["--trials", "12", "--tracking-uri", mlflow_server.uri]
    proc = start(env, *args, cwd=tmp_path)
    wait_until(lambda: len(finished(load())) >= 3)
    mlflow_server.kill()
    out, err = proc.communicate(timeout=240)
    ended = time.time()
    line = lost_line(proc, err)
    assert f"lost the MLflow tracking store {mlflow_server.uri}" in line
    assert "rerun the same command once it is back" in line
    trials = load().get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 12  # the search went on
    last = max(t.datetime_complete for t in trials).timestamp()
    assert ended - last < PROMPT_EXIT, f"{ended - last:.1f} s from the last trial to the exit"
    kept = tmp_path / ".mlf" / "models" / "slow-walmart-h13-mape"
    assert str(kept) in line and (kept / "mlf_model.json").exists()
    # the server is back: a rerun logs the missing child runs under the same parent
    mlflow_server.start()
    resumed = start(env, "--trials", "1", "--tracking-uri", mlflow_server.uri, cwd=tmp_path)
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    children = runs(mlflow_server.uri, "trial")
    assert sorted(int(c.data.tags["mlf.trial_number"]) for c in children) == list(range(13))
    [parent] = runs(mlflow_server.uri, "study")
    assert parent.info.status == "FINISHED"


# ---- a full disk ---------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path, request):
    """A tmpfs of 4 MiB (or ``request.param``) mounted for this test (root only)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    size = getattr(request, "param", "4m")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
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


@pytest.mark.slow
@pytest.mark.full_optimize
def test_journal_on_a_full_disk(worker_env, mlflow_uri, tmp_path, small_disk):  # noqa: F811
    env = {**worker_env(delay=0.3), "MLF_HOME": str(small_disk / ".mlf")}
    journal = small_disk / ".mlf" / "optuna.journal"
    proc = start(env, "--trials", "40", cwd=tmp_path)
    wait_until(lambda: journal.exists() and journal.read_bytes().count(b'"state":1') >= 3)
    filler = fill(small_disk)
    full = time.monotonic()
    out, err = proc.communicate(timeout=120)
    seconds = time.monotonic() - full
    line = lost_line(proc, err)
    assert f"lost the study storage journal:///{journal}" in line
    assert "No space left on device" in line and "finished trials are kept" in line
    assert seconds < PROMPT_EXIT, f"{seconds:.1f} s to exit"
    text = journal.read_bytes()
    assert text.endswith(b"\n")
    assert all(json.loads(row) for row in text.splitlines())  # every line whole
    filler.unlink()
    resumed = start({**env, **worker_env(delay=0.0), "MLF_HOME": env["MLF_HOME"]},
                    "--trials", "2", cwd=tmp_path)  # fmt: skip
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    trial_states = states(_load("slow-walmart-h13-mape", f"journal:///{journal}"))
    assert "RUNNING" not in trial_states and trial_states.count("COMPLETE") >= 5
    children = runs(mlflow_uri, "trial")
    assert len(children) == len(trial_states)


@pytest.mark.slow
@pytest.mark.full_optimize
@pytest.mark.parametrize("small_disk", ["32m"], indirect=True)  # room for MLflow's tables
def test_mlflow_store_on_a_full_disk(worker_env, tmp_path, small_disk, _mlflow_template):  # noqa: F811
    shutil.copy(_mlflow_template, small_disk / "mlflow.db")
    uri = f"sqlite:///{small_disk / 'mlflow.db'}"
    env = worker_env(delay=0.3)
    proc = start(env, "--trials", "15", "--tracking-uri", uri, cwd=tmp_path)
    wait_until(lambda: len(finished(load())) >= 3)
    filler = fill(small_disk)
    out, err = proc.communicate(timeout=240)
    line = lost_line(proc, err)
    assert f"lost the MLflow tracking store {uri}" in line
    assert "full" in line  # SQLite's "database or disk is full"
    assert len(finished(load())) == 15  # the search went on
    with sqlite3.connect(small_disk / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    filler.unlink()
    resumed = start(env, "--trials", "1", "--tracking-uri", uri, cwd=tmp_path)
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    children = runs(uri, "trial")
    assert sorted(int(c.data.tags["mlf.trial_number"]) for c in children) == list(range(16))


# ---- the same, in one process --------------------------------------------------------------------
def test_a_journal_append_on_a_full_disk_is_whole_or_nothing(small_disk):
    from mlforecast_cli.services.journal import LocalJournalBackend

    path = small_disk / "optuna.journal"
    backend = LocalJournalBackend(path)
    backend.append_logs([{"op_code": 0, "n": i} for i in range(3)])
    size = path.stat().st_size
    filler = fill(small_disk)
    big = {"op_code": 5, "value": "x" * 20000}  # more than the free end of the file's last page
    with pytest.raises(OSError) as exc:
        backend.append_logs([big])
    assert exc.value.errno == errno.ENOSPC
    assert path.stat().st_size == size  # the part that fitted was cut off again
    filler.unlink()
    backend.append_logs([big, {"op_code": 0, "n": 3}])
    fresh = LocalJournalBackend(path)
    assert [log.get("n") for log in fresh.read_logs(0)] == [0, 1, 2, None, 3]


def test_a_removed_journal_file_is_not_written_to(tmp_path):
    from mlforecast_cli.services.journal import LocalJournalBackend
    from mlforecast_cli.services.outages import lost_reason

    path = tmp_path / "optuna.journal"
    backend = LocalJournalBackend(path)
    backend.append_logs([{"op_code": 0}])
    path.unlink()  # the folder's disk vanished, or someone cleaned up
    with pytest.raises(FileNotFoundError) as exc:
        backend.append_logs([{"op_code": 0}])
    assert "removed or replaced" in str(exc.value) and lost_reason(exc.value)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_an_output_file_on_a_full_disk_is_not_half_written(small_disk, suffix):
    import pandas as pd

    from mlforecast_cli.errors import ServiceLost
    from mlforecast_cli.services.files import atomic_write

    output = small_disk / f"forecast{suffix}"
    output.write_text("the previous forecast\n")
    filler = fill(small_disk)
    frame = pd.DataFrame({"unique_id": ["a"] * 50_000, "yhat": range(50_000)})
    write = frame.to_csv if suffix == ".csv" else frame.to_parquet
    with pytest.raises(ServiceLost) as exc:
        atomic_write(output, lambda tmp: write(tmp, index=False))
    assert exc.value.exit_code == EXIT_SERVICE_LOST
    assert f"--output {output}" in str(exc.value) and "nothing was written" in str(exc.value)
    assert output.read_text() == "the previous forecast\n"
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", output.name]
    filler.unlink()


def test_mlflow_http_retries_are_bounded(monkeypatch):
    from mlforecast_cli.services.mlflow_store import HTTP_LIMITS, connect
    from mlforecast_cli.services.outages import lost_reason

    for name in HTTP_LIMITS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    client = connect(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(Exception) as exc:
        client.get_experiment_by_name("x")
    seconds = time.monotonic() - started
    assert seconds < 20, f"{seconds:.1f} s (MLflow's own defaults take minutes)"
    assert lost_reason(exc.value) == "ConnectionError: Connection refused"
    assert {name: os.environ[name] for name in HTTP_LIMITS} == HTTP_LIMITS


def test_a_user_setting_of_mlflow_retries_is_kept(monkeypatch):
    from mlforecast_cli.services.mlflow_store import connect

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    connect(f"http://127.0.0.1:{free_port()}")
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"


def test_a_trial_no_process_claimed_is_failed_once_its_grace_is_over(tmp_path):
    """A process that loses the storage between creating a trial and claiming it leaves the
    trial RUNNING with no owner: the next command fails it, but only after the grace (a live
    process claims its trial within milliseconds) and never a claimed one of a live process."""
    import optuna

    from mlforecast_cli.services.liveness import WORKER_ATTR, reap_dead_trials, worker_stamp

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))
    )
    study = optuna.create_study(storage=storage, study_name="orphans")
    orphan = study.ask()
    claimed = study.ask()
    claimed.set_user_attr(WORKER_ATTR, worker_stamp())  # this live process
    assert reap_dead_trials(study) == []  # both younger than the grace
    [failed] = reap_dead_trials(study, grace=0.0)
    assert failed.number == orphan.number and failed.state.name == "FAIL"
    assert "died before it started" in failed.user_attrs["error"]
    assert study.trials[claimed.number].state.name == "RUNNING"


def test_a_storage_lost_as_a_trial_ends_names_the_storage(tmp_path):
    """Optuna hides the storage's error behind its own (``UnboundLocalError`` on PostgreSQL,
    an ``AssertionError`` on a journal) when the storage fails as a trial ends."""
    import optuna

    from mlforecast_cli.errors import ServiceLost
    from mlforecast_cli.search.space import parse_space
    from mlforecast_cli.services.storage import open_storage
    from mlforecast_cli.trials.objective import run_study
    from mlforecast_cli.trials.optuna_study import StudyConfig

    journal = tmp_path / "studies" / "optuna.journal"
    url = f"journal:///{journal}"
    space = parse_space({"params": {"x": {"type": "float", "low": 0, "high": 1}}}, "test")
    config = StudyConfig.of("m", "s", space, horizon=1, storage=url)
    study = optuna.create_study(study_name="s", storage=open_storage(url))

    class Objective:
        def __init__(self):
            self.config = config
            self.started = set()

        def __call__(self, trial):
            self.started.add(trial.number)
            x = trial.suggest_float("x", 0, 1)
            if trial.number == 2:
                journal.unlink()  # the disk under it is gone
            return x

        def stop_if_lost(self, study, trial):  # no cluster here to lose
            pass

    with pytest.raises(ServiceLost) as exc:
        run_study(Objective(), study, n_trials=5)
    message = str(exc.value)
    assert message.startswith(f"lost the study storage {url} (FileNotFoundError: ")
    assert "finished trials are kept" in message and "rerun the same command" in message
    assert exc.value.exit_code == EXIT_SERVICE_LOST
