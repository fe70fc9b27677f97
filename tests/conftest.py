"""Shared fixtures: an isolated working folder, a real MLflow store, a registry under test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("COLUMNS", "200")  # wide Rich tables, before the CLI's consoles exist

from mlforecast_cli.cli import main  # noqa: E402
from mlforecast_cli.models.registry import Registry, set_registry  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test runs in its own folder, with no leftover registry or plugin settings."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLF_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("MLF_PLUGINS_DIR", raising=False)
    monkeypatch.delenv("MLF_DEBUG", raising=False)
    monkeypatch.setenv("MLF_HOME", str(tmp_path / ".mlf"))
    set_registry(None)
    yield
    set_registry(None)


@pytest.fixture(autouse=True)
def _fast_optimize(request, monkeypatch):
    """`mlf optimize` in tests writes child runs in-process (no writer process to start, and
    its MLflow import) and draws no plots, unless the test is marked ``full_optimize``."""
    if request.node.get_closest_marker("full_optimize") is None:
        monkeypatch.setenv("MLF_CHILD_RUNS", "inline")
        monkeypatch.setenv("MLF_PLOTS", "0")


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, created once (its migrations take seconds)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(_mlflow_template, tmp_path, monkeypatch) -> str:
    """A fresh, real MLflow tracking store for this test (MLFLOW_TRACKING_URI points at it)."""
    db = tmp_path / "mlflow.db"
    shutil.copy(_mlflow_template, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def registry() -> Registry:
    """A registry with the installed entry points; tests add plugins with ``add_plugin``."""
    reg = Registry()
    set_registry(reg)
    return reg


def run_mlf(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300):
    """Run the real `mlf` console entry point in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mlforecast_cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


class Result:
    """Exit code and captured output of one in-process CLI call."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out[-800:]!r}, err={self.err[-800:]!r})"


@pytest.fixture
def cli(capsys):
    """Call the real CLI in-process: ``cli("list-models", "--json")`` → Result."""

    def invoke(*args: str) -> Result:
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        out, err = capsys.readouterr()
        code = exc.value.code
        return Result(code if isinstance(code, int) else 0, out, err)

    return invoke
