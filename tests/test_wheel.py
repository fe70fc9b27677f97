"""A plain (non-editable) wheel install in a fresh virtual environment lists every model and
reads every space: plugins/ and spaces/ really ship inside the wheel."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _run(*cmd, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_wheel_in_fresh_venv_lists_every_model_and_reads_every_space(tmp_path):
    dist = tmp_path / "dist"
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(dist),
        str(ROOT),
        cwd=tmp_path,
    )
    [wheel] = dist.glob("mlforecast_cli-*.whl")
    env_dir = tmp_path / "venv"
    # The project's dependencies come from the system site; the project itself only from the wheel.
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = env_dir / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "--no-deps", str(wheel), cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run(python, "-c", "import mlforecast_cli.plugins as p; print(p.__file__)", cwd=work)
    assert str(env_dir) in where.stdout
    listed = json.loads(
        _run(python, "-m", "mlforecast_cli", "list-models", "--json", cwd=work).stdout
    )
    assert listed["problems"] == []
    names = {m["name"] for m in listed["models"]}
    expected = {ep.split("=")[0].strip() for ep in _entry_points()}
    assert expected <= names
    for model in listed["models"]:
        assert model["distribution"] == "mlforecast-cli"
        assert model["params"] is not None, model
        _run(python, "-m", "mlforecast_cli", "show-space", model["name"], cwd=work)
    datasets = json.loads(
        _run(python, "-m", "mlforecast_cli", "datasets", "--json", cwd=work).stdout
    )
    assert [d["name"] for d in datasets["datasets"]] == ["walmart"]
    code = (
        "from mlforecast_cli.datasets import load_dataset; print(load_dataset('walmart').n_series)"
    )
    assert _run(python, "-c", code, cwd=work).stdout.strip() == "7"


def _entry_points() -> list[str]:
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [f"{k} = {v}" for k, v in data["project"]["entry-points"]["mlf"].items()]
