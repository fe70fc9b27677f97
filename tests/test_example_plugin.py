"""docs/example-plugin is a real distribution: installed (not editable) into a fresh virtual
environment it is a ready model, `mlf optimize` runs it with MLflow runs, its own tests pass.

The venv is made with --system-site-packages so that mlf and its dependencies are visible;
the plugin itself is only in the venv. Nothing is downloaded (--no-deps, no build isolation).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from tests.conftest import ROOT

EXAMPLE = ROOT / "docs" / "example-plugin"
BUILD_LEFTOVERS = ("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".mlf")

pytestmark = pytest.mark.slow


def make_venv(path: Path) -> Path:
    """A venv seeing the system site-packages, with an `mlf` command; returns its bin folder.

    It has no pip of its own: `python -m pip` runs the system's pip, which installs into the
    venv. mlf's console script lives in the system's bin folder, so `bin/mlf` here runs the
    venv's python (and so sees what is installed in the venv).
    """
    venv.create(path, system_site_packages=True, with_pip=False)
    bin_dir = path / "bin"
    mlf = bin_dir / "mlf"
    mlf.write_text(f'#!/bin/sh\nexec "{bin_dir / "python"}" -m mlforecast_cli "$@"\n')
    mlf.chmod(0o755)
    return bin_dir


def run(*cmd, cwd: Path, env: dict | None = None, timeout: float = 600):
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`pip install --no-deps` of the example into a fresh venv; returns the venv's python."""
    root = tmp_path_factory.mktemp("example")
    # Installing from a copy keeps setuptools' build/ and *.egg-info out of the repository.
    source = root / "example-plugin"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
    python = make_venv(root / "venv") / "python"
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", source, cwd=root)
    return python


def test_installed_as_a_wheel_with_its_space(installed, tmp_path):
    code = (
        "import importlib.resources, mlf_lag_ridge, sys\n"
        "print(mlf_lag_ridge.__file__)\n"
        "print(importlib.resources.files('mlf_lag_ridge').joinpath('space.yaml').is_file())\n"
    )
    where, has_space = run(installed, "-c", code, cwd=tmp_path).stdout.split()
    assert str(installed.parents[1]) in where and "site-packages" in where
    assert has_space == "True"


def test_list_models_and_plugins_show_it_ready(installed, tmp_path):
    listed = json.loads(
        run(installed, "-m", "mlforecast_cli", "list-models", "--json", cwd=tmp_path).stdout
    )
    [model] = [m for m in listed["models"] if m["name"] == "lag_ridge"]
    assert model["status"] == "ready"
    assert (model["distribution"], model["version"]) == ("mlf-lag-ridge", "0.1.0")
    assert model["family"] == "statistical" and model["params"] == 4
    assert not [p for p in listed["problems"] if "lag_ridge" in p]

    plugins = json.loads(
        run(installed, "-m", "mlforecast_cli", "plugins", "--json", cwd=tmp_path).stdout
    )
    [plugin] = [p for p in plugins["plugins"] if p["distribution"] == "mlf-lag-ridge"]
    assert plugin["models"] == ["lag_ridge"] and plugin["error"] is None
    assert plugin["hooks"] == ["register_models"]
    assert plugin["model_status"] == {"lag_ridge": "ready"}


def test_optimize_completes_with_mlflow_runs(installed, tmp_path, mlflow_uri):
    from mlflow.tracking import MlflowClient

    proc = run(
        installed,
        "-m",
        "mlforecast_cli",
        "optimize",
        "lag_ridge",
        "--trials",
        "3",
        "--json",
        cwd=tmp_path,
    )
    document = json.loads(proc.stdout)
    [outcome] = document["models"]
    assert outcome["model"] == "lag_ridge"
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name(document["experiment"])
    [parent] = client.search_runs(
        [experiment.experiment_id], "tags.`mlf.model` = 'lag_ridge' and tags.`mlf.role` = 'study'"
    )
    trials = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert len(trials) == 3
    assert {t.data.tags["mlf.trial_state"] for t in trials} == {"COMPLETE"}
    assert all(t.data.metrics["objective"] > 0 for t in trials), trials[0].data.metrics
    # report() reached Optuna: one intermediate value per horizon step (13 on walmart)
    history = client.get_metric_history(trials[0].info.run_id, "intermediate_value")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(13))
    assert parent.data.metrics, "the parent run holds the refit's test metrics"


def test_the_examples_own_tests_pass(installed, tmp_path):
    tests = tmp_path / "tests"
    shutil.copytree(EXAMPLE / "tests", tests, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
    proc = run(installed, "-m", "pytest", "-q", "-p", "no:cacheprovider", tests, cwd=tmp_path)
    assert " passed" in proc.stdout and "failed" not in proc.stdout
    assert "TestLagRidge" not in proc.stdout  # nothing failed or was reported by name
