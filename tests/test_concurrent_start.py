"""Many processes starting at once on shared services: every get-or-create must hold.

Eight `mlf optimize` commands started in the same second against a fresh `mlflow server`
(PostgreSQL backend) once failed two of eight with RESOURCE_ALREADY_EXISTS: creating the
experiment raced. These tests start them together on real services, several times over.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.test_services import free_port

ROUNDS = 2
PROCESSES = 8


class Server:
    """A real `mlflow server` on a loopback port with the given backend store."""

    def __init__(self, folder: Path, backend: str) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", "2",
                "--backend-store-uri", backend,
                "--artifacts-destination", str(folder / "artifacts"),
            ],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise AssertionError("mlflow server did not start")

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


def fresh_database(url: str) -> str:
    """A new empty database on the PostgreSQL server of ``url``; its URL (psycopg 3 driver)."""
    import psycopg

    name = f"mlf_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base = url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


@pytest.mark.slow
def test_threads_creating_one_experiment_at_once_all_get_it(tmp_path):
    """Sixteen clients ask a fresh server for the same new experiment at the same moment."""
    server = Server(tmp_path / "server", f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        for round_ in range(5):
            name = f"race-{round_}"
            barrier = threading.Barrier(16)
            ids: list[str] = []
            errors: list[BaseException] = []
            ask = functools.partial(_ask, server.uri, name, barrier, ids, errors)
            threads = [threading.Thread(target=ask) for _ in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert not errors, errors[0]
            assert len(ids) == 16 and len(set(ids)) == 1
    finally:
        server.stop()


@pytest.mark.slow
def test_threads_tagging_one_run_with_a_new_key_at_once_all_succeed(tmp_path):
    """The processes of a shared study tag its one parent run at the end (the model's URI,
    the summary): sixteen clients set the same new tag at the same moment, five rounds."""
    from mlflow.tracking import MlflowClient

    url = os.environ.get("MLF_TEST_POSTGRES_URL")
    backend = fresh_database(url) if url else f"sqlite:///{tmp_path / 'mlflow.db'}"
    server = Server(tmp_path / "server", backend)
    try:
        client = MlflowClient(server.uri)
        run_id = client.create_run(client.create_experiment("tags")).info.run_id
        for round_ in range(5):
            barrier = threading.Barrier(16)
            errors: list[BaseException] = []
            tag = functools.partial(_tag, server.uri, run_id, f"key-{round_}", barrier, errors)
            threads = [threading.Thread(target=tag, args=(i,)) for i in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert not errors, errors[0]
            assert f"key-{round_}" in client.get_run(run_id).data.tags
    finally:
        server.stop()


def _tag(uri: str, run_id: str, key: str, barrier, errors: list, value: int) -> None:
    from mlflow.tracking import MlflowClient

    from mlforecast_cli.services.mlflow_store import retried_on_race

    client = MlflowClient(uri)
    barrier.wait()
    try:
        retried_on_race(lambda: client.set_tag(run_id, key, str(value)))
    except BaseException as exc:
        errors.append(exc)


def _ask(uri: str, name: str, barrier, ids: list, errors: list) -> None:
    """One client asking for experiment ``name`` once every client is ready."""
    from mlflow.tracking import MlflowClient

    from mlforecast_cli.services.mlflow_store import get_or_create_experiment

    client = MlflowClient(uri)
    barrier.wait()
    try:
        ids.append(get_or_create_experiment(client, name))
    except BaseException as exc:
        errors.append(exc)


@pytest.mark.slow
def test_eight_commands_started_at_once_on_fresh_services(tmp_path):
    """8 `mlf optimize` at once on a fresh `mlflow server` and a fresh PostgreSQL study
    storage, ``ROUNDS`` times: every one exits 0, one experiment, one parent run, one child run
    per trial."""
    url = os.environ.get("MLF_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("MLF_TEST_POSTGRES_URL is not set (.ci/services starts a PostgreSQL)")
    from mlflow.tracking import MlflowClient

    for round_ in range(ROUNDS):
        folder = tmp_path / f"round{round_}"
        server = Server(folder / "server", fresh_database(url))
        storage = fresh_database(url)
        try:
            env = {
                **os.environ,
                "MLF_HOME": str(folder / ".mlf"),
                "MLF_CHILD_RUNS": "inline",
                "MLF_PLOTS": "0",
            }
            args = [sys.executable, "-m", "mlforecast_cli", "optimize", "seasonal_naive"]
            args += ["--quiet", "--trials", "1", "--storage", storage, "--study-name", "w8"]
            args += ["--tracking-uri", server.uri]
            procs = [
                subprocess.Popen(args, env=env, cwd=folder, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
                for _ in range(PROCESSES)
            ]  # fmt: skip
            results = [p.communicate(timeout=600) for p in procs]
            failed = [
                (p.returncode, err)
                for p, (_, err) in zip(procs, results, strict=True)
                if p.returncode
            ]
            assert not failed, f"round {round_}: {len(failed)} failed: {failed[0][1][-600:]}"
            client = MlflowClient(server.uri)
            [experiment] = [
                e for e in client.search_experiments() if e.name == "walmart_sales_forecasting"
            ]
            found = client.search_runs([experiment.experiment_id], max_results=1000)
            parents = [r for r in found if r.data.tags.get("mlf.role") == "study"]
            children = [r for r in found if r.data.tags.get("mlf.role") == "trial"]
            assert len(parents) == 1, f"round {round_}: {len(parents)} parent runs"
            numbers = sorted(int(c.data.tags["mlf.trial_number"]) for c in children)
            assert numbers == sorted(set(numbers)) and numbers, numbers
        finally:
            server.stop()
