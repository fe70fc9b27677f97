"""Broken plugins are reported clearly and take no other model down.

A single-file plugin folder (--plugins-dir / MLF_PLUGINS_DIR) holds: a plugin that raises on
import, one whose space is invalid, two that register the same name, and a good one; an
installed distribution (an entry point on sys.path) also raises on import. `mlf list-models`,
`mlf plugins` and `mlf optimize <it>` each say what is wrong, and `mlf optimize
seasonal_naive good_mean --trials 2` still runs.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.plugin_factories import write_distribution

HEADER = "from mlforecast_cli import ModelSpec, hookimpl\n"

GOOD = """
import numpy as np
from pathlib import Path
from mlforecast_cli import Forecaster

class Mean(Forecaster):
    def fit(self, train, valid=None, report=None):
        return self

    def predict(self, windows):
        return np.repeat(windows.x.mean(axis=1, keepdims=True), windows.horizon, axis=1)

SPACE = Path(__file__).with_name("good_mean.yaml")

@hookimpl
def register_models(register):
    register(ModelSpec(name="{name}", summary="mean of the window", family="baseline",
                       factory=Mean, space=SPACE))
"""

FILES = {
    "broken.py": HEADER + "raise RuntimeError('boom: the license server is unreachable')\n",
    "bad_space.py": HEADER
    + textwrap.dedent(
        """
        from pathlib import Path

        @hookimpl
        def register_models(register):
            register(ModelSpec(name="bad_space", summary="its space is invalid",
                               factory="math:floor", space=Path(__file__).with_suffix(".yaml")))
        """
    ),
    "bad_space.yaml": "params:\n  alpha: {type: float, low: 0.1}\n",
    "twin_a.py": HEADER + textwrap.dedent(GOOD.replace("{name}", "twin")),
    "twin_b.py": HEADER + textwrap.dedent(GOOD.replace("{name}", "twin")),
    "good_mean.py": HEADER + textwrap.dedent(GOOD.replace("{name}", "good_mean")),
    "good_mean.yaml": "params:\n  window_size: {type: int, low: 2, high: 8}\n",
    "always_fails.py": HEADER
    + textwrap.dedent(
        """
        from pathlib import Path
        from mlforecast_cli import Forecaster

        class AlwaysFails(Forecaster):
            def fit(self, train, valid=None, report=None):
                raise ValueError("series 'M146' has no history")

            def predict(self, windows):
                raise AssertionError("never fitted")

        @hookimpl
        def register_models(register):
            space = Path(__file__).with_name("good_mean.yaml")
            register(ModelSpec(name="always_fails", summary="fit raises", family="other",
                               factory=AlwaysFails, space=space))
        """
    ),
}


@pytest.fixture
def plugins_dir(tmp_path, monkeypatch):
    folder = tmp_path / "my-plugins"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text)
    site = tmp_path / "site"
    write_distribution(
        site,
        "mlftest-explodes",
        "mlftest_explodes",
        "raise ImportError('mlftest_explodes needs libfoo 2')\n",
        version="3.1",
    )
    monkeypatch.syspath_prepend(str(site))
    return folder


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_list_models_reports_each_problem_and_lists_the_rest(cli, plugins_dir):
    listed = cli("--plugins-dir", str(plugins_dir), "list-models", "--json")
    assert listed.code == 0, listed
    document = json.loads(listed.out)
    status = {m["name"]: m["status"] for m in document["models"]}
    assert status["seasonal_naive"] == "ready" and status["good_mean"] == "ready"
    assert "twin" not in status
    assert status["bad_space"].startswith("invalid space: ")
    assert "bad_space.yaml: params.alpha" in status["bad_space"] and "high" in status["bad_space"]
    problems = "\n".join(document["problems"])
    assert f"plugin broken ({plugins_dir / 'broken.py'}): failed to import" in problems
    assert "RuntimeError: boom: the license server is unreachable" in problems
    assert "plugin mlftest_explodes (mlftest-explodes 3.1)" in problems
    assert "ImportError: mlftest_explodes needs libfoo 2" in problems
    assert "model name 'twin' is registered by twin_a" in problems and "twin_b" in problems

    table = cli("--plugins-dir", str(plugins_dir), "list-models")
    assert table.code == 0, table
    assert "good_mean" in table.out and "seasonal_naive" in table.out
    err = one_line(table.err)
    assert err.count("warning:") == 3
    for needle in ("boom: the license server", "needs libfoo 2", "'twin' is registered by"):
        assert needle in err


def test_plugins_lists_each_plugin_with_its_error(cli, plugins_dir, monkeypatch):
    monkeypatch.setenv("MLF_PLUGINS_DIR", str(plugins_dir))
    result = cli("plugins", "--json")
    assert result.code == 0, result
    document = json.loads(result.out)
    rows = {p["plugin"]: p for p in document["plugins"]}
    assert document["plugins_dir"] == str(plugins_dir)
    assert rows["broken"]["source"] == "file" and rows["broken"]["models"] == []
    assert "RuntimeError: boom" in rows["broken"]["error"]
    explodes = rows["mlftest_explodes"]
    assert (explodes["distribution"], explodes["version"]) == ("mlftest-explodes", "3.1")
    assert "failed to import mlftest_explodes" in explodes["error"]
    assert rows["bad_space"]["error"] is None
    assert rows["bad_space"]["model_status"]["bad_space"].startswith("invalid space")
    for twin in ("twin_a", "twin_b"):
        assert rows[twin]["model_status"] == {"twin": "duplicate name: see problems"}
    assert rows["good_mean"]["model_status"] == {"good_mean": "ready"}
    assert rows["good_mean"]["hooks"] == ["register_models"]
    assert rows["seasonal_naive"]["distribution"] == "mlforecast-cli"

    table = cli("plugins")
    assert table.code == 0, table
    out = one_line(table.out)
    assert "good_mean" in out and "seasonal_naive" in out and "mlftest-explodes 3.1" in out
    assert out.count("error: see below") == 2
    assert "bad_space (invalid space)" in out and "twin (duplicate name)" in out
    err = one_line(table.err)
    assert "'twin' is registered by" in err and "RuntimeError: boom" in err
    assert "model bad_space of plugin bad_space: invalid space: " in err


def test_load_plugins_names_no_installed_entry_point(cli, plugins_dir, monkeypatch):
    monkeypatch.setenv("MLF_LOAD_PLUGINS", "seasonal_naive,seasonl_naive")
    document = json.loads(cli("plugins", "--json").out)
    assert [p["plugin"] for p in document["plugins"]] == ["seasonal_naive"]
    assert document["load_plugins"] == "seasonal_naive,seasonl_naive"
    assert any(
        "'seasonl_naive'" in p and "no installed entry point" in p for p in document["problems"]
    )


@pytest.mark.parametrize(
    ("model", "code", "message"),
    [
        (
            "broken",
            1,
            "model 'broken' is not available: plugin broken (",
        ),
        (
            "mlftest_explodes",
            1,
            "plugin mlftest_explodes (mlftest-explodes 3.1): failed to import mlftest_explodes: "
            "ImportError: mlftest_explodes needs libfoo 2",
        ),
        ("bad_space", 2, "model 'bad_space' has an invalid space: "),
        ("twin", 1, "model name 'twin' is registered by twin_a ("),
        ("not_a_model", 2, "plugins that failed to load may provide it: "),
    ],
)
def test_optimize_of_a_broken_model_says_why(cli, plugins_dir, model, code, message):
    result = cli("--plugins-dir", str(plugins_dir), "optimize", model, "--trials", "1")
    assert result.code == code, result
    err = one_line(result.err)
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in result.err


def test_every_other_model_still_runs(cli, plugins_dir, mlflow_uri):
    from mlflow.tracking import MlflowClient

    result = cli(
        "--plugins-dir",
        str(plugins_dir),
        "optimize",
        "seasonal_naive",
        "good_mean",
        "--trials",
        "2",
        "--json",
    )
    assert result.code == 0, result
    document = json.loads(result.out)
    outcomes = {m["model"]: m for m in document["models"]}
    assert set(outcomes) == {"seasonal_naive", "good_mean"}
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name(document["experiment"])
    runs = client.search_runs([experiment.experiment_id], "tags.`mlf.role` = 'trial'")
    assert len(runs) == 3  # seasonal_naive has nothing to search: one trial


@pytest.mark.parametrize(
    ("broken", "code", "message"),
    [
        ("bad_space", 2, "model 'bad_space' has an invalid space: "),
        ("broken", 1, "model 'broken' is not available: plugin broken ("),
        ("twin", 1, "model name 'twin' is registered by twin_a ("),
        ("always_fails", 1, "always_fails: no trial completed"),
    ],
)
def test_a_broken_model_beside_good_ones_is_reported_and_the_others_run(
    cli, plugins_dir, mlflow_uri, broken, code, message
):
    args = ["--plugins-dir", str(plugins_dir), "optimize", broken, "good_mean", "--trials", "2"]
    result = cli(*args, "--json")
    assert result.code == code, result
    err = one_line(result.err)
    assert message in err and "Traceback" not in result.err, err
    outcomes = {m["model"]: m for m in json.loads(result.out)["models"]}
    assert outcomes["good_mean"]["trials"]["complete"] == 2 and not outcomes["good_mean"]["error"]
    assert message.split(": ", 1)[-1] in outcomes[broken]["error"]
    table = cli(*args)
    assert table.code == code, table
    assert "good_mean" in table.out and message in one_line(table.err)


def test_unknown_model_name_beside_good_ones_runs_nothing(cli, plugins_dir, mlflow_uri):
    args = ["--plugins-dir", str(plugins_dir), "optimize", "good_mean", "good_maen"]
    result = cli(*args, "--trials", "1")
    assert result.code == 2 and "unknown model 'good_maen': did you mean good_mean?" in result.err
    assert result.out == ""
