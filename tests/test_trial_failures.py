"""Why did a trial fail? Its reason (one line naming the file and line) and its traceback are
kept on the Optuna trial and its MLflow child run, counted by reason in the table and --json,
and `--debug` (or MLF_DEBUG=1) prints the tracebacks: of failed trials (in this process or a
worker's), of plugins that fail to import and of hooks that raise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import optuna
import pytest
from mlflow.tracking import MlflowClient

from mlforecast_cli.services.storage import open_storage

PLUGIN = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    import numpy as np

    from mlforecast_cli import Forecaster, ModelSpec, hookimpl

    HERE = Path(__file__).parent


    class Picky(Forecaster):
        def fit(self, train, valid=None, report=None):
            if os.environ.get("PICKY_MEET"):  # wait (up to 60 s) until two processes fit
                (HERE / f"pid-{os.getpid()}").touch()
                deadline = time.monotonic() + 60
                while len(list(HERE.glob("pid-*"))) < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
            if self.params["mode"] == "raise":
                self.check_history()
            return self

        def check_history(self):
            raise ValueError("series 'M146' has no history\\nsecond line")

        def predict(self, windows):
            mean = windows.x.mean(axis=1, keepdims=True)
            out = np.repeat(mean, windows.horizon, axis=1)
            return out * np.nan if self.params["mode"] == "nan" else out


    @hookimpl
    def register_models(register):
        register(ModelSpec(name="picky", summary="fails on purpose", family="other",
                           factory=Picky, space=HERE / "picky.yaml"))
    """
)
SPACE = "params:\n  mode: {type: categorical, choices: [raise, nan, ok]}\n"
RAISE_LINE = 'raise ValueError("series'
"""The line of picky_plugin.py that raises: the error names it, the traceback shows it."""
STUDY = "picky-walmart-h13-mape"


@pytest.fixture
def plugins(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "picky_plugin.py").write_text(PLUGIN)
    (folder / "picky.yaml").write_text(SPACE)
    return folder


def raise_lineno() -> int:
    return next(i for i, line in enumerate(PLUGIN.splitlines(), 1) if RAISE_LINE in line)


def failed_trials():
    study = optuna.load_study(study_name=STUDY, storage=open_storage(None))
    return [t for t in study.get_trials(deepcopy=False) if t.state.name == "FAIL"]


def check_trials_and_child_runs(uri: str) -> list:
    """Every failed trial keeps its reason and traceback; so does its MLflow child run."""
    failed = failed_trials()
    raised = [t for t in failed if "M146" in t.user_attrs["error"]]
    assert raised and len(raised) < len(failed)  # NaN trials fail too, for another reason
    where = f"picky_plugin.py:{raise_lineno()}"
    for trial in raised:
        error = trial.user_attrs["error"]
        assert error.startswith("picky raised ValueError: series 'M146' has no history")
        assert where in error and "second line" not in error
        assert "Traceback (most recent call last)" in trial.user_attrs["traceback"]
        assert RAISE_LINE in trial.user_attrs["traceback"]
        assert "in check_history" in trial.user_attrs["traceback"]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("walmart_sales_forecasting")
    children = {
        int(run.data.tags["mlf.trial_number"]): run
        for run in client.search_runs(
            [experiment.experiment_id], "tags.`mlf.role` = 'trial'", max_results=100
        )
    }
    for trial in raised:
        child = children[trial.number]
        assert child.info.status == "FAILED"
        assert child.data.tags["mlf.error"] == trial.user_attrs["error"]
        text = client.download_artifacts(child.info.run_id, "traceback.txt")
        with open(text) as handle:
            assert RAISE_LINE in handle.read()
    return failed


def test_failed_trials_keep_reason_and_traceback_and_are_counted(cli, plugins, mlflow_uri):
    args = ["--plugins-dir", str(plugins), "optimize", "picky", "--trials", "8", "--seed", "1"]
    result = cli(*args, "--json")
    assert result.code == 0, result
    assert "Traceback" not in result.err
    failed = check_trials_and_child_runs(mlflow_uri)
    [model] = json.loads(result.out)["models"]
    failures = {f["reason"]: f for f in model["failures"]}
    assert sum(f["count"] for f in failures.values()) == model["trials"]["fail"] == len(failed)
    [raised] = [f for r, f in failures.items() if "M146" in r]
    assert raised["count"] == sum("M146" in t.user_attrs["error"] for t in failed)
    assert raised["trials"] == sorted(t.number for t in failed if "M146" in t.user_attrs["error"])
    assert "picky predicted NaN or infinite values" in failures

    table = cli(*args)  # resumes: the counts are the whole study's
    assert table.code == 0, table
    out = " ".join(table.out.split())
    fails = len(failed_trials())
    assert f"picky: {fails} failed: " in out  # each reason with its count, most frequent first
    assert "picky raised ValueError: series 'M146' has no history (" in out
    assert "picky predicted NaN or infinite values (" in out
    assert "Traceback" not in table.err + table.out


def test_debug_prints_the_failed_trials_tracebacks(cli, plugins, mlflow_uri):
    args = ["--plugins-dir", str(plugins), "optimize", "picky", "--trials", "8", "--seed", "1"]
    quiet = cli(*args, "--quiet")
    assert quiet.code == 0 and "Traceback" not in quiet.err, quiet
    debug = cli("--debug", *args, "--quiet")
    assert debug.code == 0, debug
    assert "Traceback (most recent call last)" in debug.err and RAISE_LINE in debug.err
    assert "picky_plugin.py" in debug.err and "in check_history" in debug.err
    assert os.environ.get("MLF_DEBUG") is None  # --debug is this command's, not the process's


BROKEN = "import os\n\n\ndef helper():\n    raise RuntimeError('boom')\n\n\nhelper()\n"
BAD_HOOK = textwrap.dedent(
    """
    from mlforecast_cli import hookimpl


    @hookimpl
    def register_models(register):
        {}["missing"]
    """
)


@pytest.mark.parametrize("how", ["--debug", "MLF_DEBUG"])
def test_debug_shows_plugin_import_and_hook_tracebacks(cli, tmp_path, monkeypatch, how):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "broken.py").write_text(BROKEN)
    (folder / "bad_hook.py").write_text(BAD_HOOK)
    plain = cli("--plugins-dir", str(folder), "plugins")
    assert plain.code == 0, plain
    err = " ".join(plain.err.split())
    assert "RuntimeError: boom (plugins/broken.py:5)" in err  # the line that raised
    assert "register_models failed: KeyError: 'missing' (plugins/bad_hook.py:7)" in err
    assert "Traceback" not in plain.err
    if how == "MLF_DEBUG":
        monkeypatch.setenv("MLF_DEBUG", "1")
    debug = cli(*(["--debug"] if how == "--debug" else []), "--plugins-dir", str(folder), "plugins")
    assert debug.code == 0, debug
    assert debug.err.count("Traceback (most recent call last)") == 2
    assert "in helper" in debug.err and '{}["missing"]' in debug.err

    listed = cli(
        *(["--debug"] if how == "--debug" else []), "--plugins-dir", str(folder), "list-models"
    )
    assert listed.code == 0 and listed.err.count("Traceback (most recent call last)") == 2

    (folder / "good.yaml").write_text("params:\n  window_size: {type: int, low: 2, high: 4}\n")
    asked = cli(
        *(["--debug"] if how == "--debug" else []),
        "--plugins-dir",
        str(folder),
        "optimize",
        "broken",
        "seasonal_naive",
        "--trials",
        "1",
        "--quiet",
    )
    assert asked.code == 1, asked
    assert "in helper" in asked.err and "model 'broken' is not available" in asked.err


@pytest.mark.slow  # worker processes and the MLflow writer process
@pytest.mark.full_optimize
def test_a_workers_failed_trials_reach_the_same_places(plugins, tmp_path, mlflow_uri):
    env = {**os.environ, "MLF_PLOTS": "0", "PICKY_MEET": "1"}
    env.pop("MLF_CHILD_RUNS", None)  # the writer process, as a user runs it
    args = ["--debug", "--plugins-dir", str(plugins), "optimize", "picky", "--trials", "10"]
    done = subprocess.run(
        [sys.executable, "-m", "mlforecast_cli", *args, "--n-jobs", "2", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    failed = check_trials_and_child_runs(mlflow_uri)
    pids = {t.user_attrs["mlf_worker"]["pid"] for t in failed}
    assert len(pids) == 2, pids  # failed in both processes
    [model] = json.loads(done.stdout)["models"]
    assert sum(f["count"] for f in model["failures"]) == len(failed)
    assert RAISE_LINE in done.stderr
