"""The light commands: list-models, show-space, datasets, --version, --help, and start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from mlforecast_cli import __version__
from mlforecast_cli.search.space import parse_space

HEAVY = ("torch", "mlflow", "lightgbm", "xgboost", "catboost", "sklearn", "pandas", "optuna")


def test_list_models_json_shows_seasonal_naive_ready(cli):
    result = cli("list-models", "--json")
    assert result.code == 0, result
    models = {m["name"]: m for m in json.loads(result.out)["models"]}
    naive = models["seasonal_naive"]
    assert naive["status"] == "ready"
    assert naive["family"] == "baseline"
    assert naive["distribution"] == "mlforecast-cli"
    assert naive["version"] == __version__
    assert naive["params"] == 0


def test_list_models_table(cli):
    result = cli("list-models")
    assert result.code == 0
    assert "seasonal_naive" in result.out and "ready" in result.out


def test_show_space_is_valid_yaml_that_round_trips(cli, tmp_path):
    result = cli("show-space", "seasonal_naive")
    assert result.code == 0, result
    space = parse_space(yaml.safe_load(result.out), "shown")
    assert space.fixed["window_size"] == 1
    (tmp_path / "copy.yaml").write_text(result.out)
    again = cli("show-space", "seasonal_naive", "--space", str(tmp_path / "copy.yaml"))
    assert yaml.safe_load(again.out) == yaml.safe_load(result.out)


def test_show_space_applies_set(cli):
    result = cli("show-space", "seasonal_naive", "--set", "optimizer.metric=mae")
    assert yaml.safe_load(result.out)["optimizer"]["metric"] == "mae"


def test_unknown_model_is_one_line_with_close_names(cli):
    result = cli("show-space", "seasonal-naive")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "error: unknown model 'seasonal-naive': did you mean seasonal_naive? "
        "(run 'mlf list-models' to see every model)"
    ]


def test_datasets_json(cli):
    result = cli("datasets", "--json")
    assert result.code == 0
    [walmart] = json.loads(result.out)["datasets"]
    assert walmart["name"] == "walmart"
    assert walmart["horizon"] == 13


def test_version(cli):
    assert cli("--version").out.strip() == f"mlf {__version__}"


def test_bad_flag_is_one_line(cli):
    result = cli("list-models", "--jsn")
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    assert "--jsn" in result.err


def _imported(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mlforecast_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("args", [("--help",), ("list-models",), ("list-models", "--json")])
def test_light_commands_import_no_heavy_library(args):
    imported = _imported(*args)
    assert imported, "importtime printed nothing"
    assert not imported & set(HEAVY), imported & set(HEAVY)
