"""What the consoles print: user text with brackets kept as is, lines not hard-wrapped, help
that reads at 80 columns, a progress clock that runs."""

from __future__ import annotations

import io
import json
import re
import textwrap
import time

import pytest
from rich.console import Console

from mlforecast_cli import ModelSpec, hookimpl
from mlforecast_cli.cli import output
from tests.conftest import run_mlf
from tests.plugin_factories import SPACE, MeanModel

HINT = 'pip install "mlforecast-cli[trees]"'


def _bracket_plugin(space_path):
    class Bracketed:
        @hookimpl
        def register_models(self, register):
            register(
                ModelSpec(
                    name="bracketed",
                    summary="mean of the [window] (see [docs])",
                    family="baseline",
                    factory=MeanModel,
                    space=space_path,
                    requires=("no_such_module_for_mlf_tests",),
                    install=HINT,
                )
            )

    return Bracketed()


@pytest.fixture
def bracketed(registry, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    registry.add_plugin(_bracket_plugin(space), name="bracket_plugin")
    return registry


def test_list_models_keeps_the_extra_of_an_install_hint(cli, bracketed):
    result = cli("list-models")
    assert result.code == 0, result
    assert "mlforecast-cli[trees]" in result.out
    assert "mean of the [window] (see [docs])" in result.out


def test_optimize_of_a_model_that_needs_an_extra_keeps_the_hint(cli, bracketed):
    result = cli("optimize", "bracketed")
    assert result.code == 2
    assert HINT in result.err


def test_plugin_errors_and_paths_keep_their_brackets(cli, tmp_path, monkeypatch):
    folder = tmp_path / "plugins [dev]"
    folder.mkdir()
    (folder / "broken_one.py").write_text(
        textwrap.dedent(
            """
            raise ImportError('this plugin needs the extra: pip install "thing[gpu]"')
            """
        )
    )
    monkeypatch.setenv("MLF_PLUGINS_DIR", str(folder))
    result = cli("plugins")
    assert result.code == 0, result
    assert 'pip install "thing[gpu]"' in result.err
    assert "plugins [dev]" in result.err
    listed = cli("list-models")
    assert 'pip install "thing[gpu]"' in listed.err


def test_warning_and_error_lines_print_text_as_is_on_one_line(capsys, monkeypatch):
    narrow = output.MessageConsole(stderr=True, width=40, highlight=False)
    monkeypatch.setattr(output, "err_console", narrow)
    long = "a [bold]message[/bold] that is far longer than forty columns, with [trees] in it"
    output.warning_line(long)
    output.error_line(long)
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: {long}", f"error: {long}"]


def test_say_prints_paths_with_brackets(capsys, monkeypatch):
    monkeypatch.setattr(output, "console", output.MessageConsole(width=30, highlight=False))
    output.say("wrote out [final].csv: 91 rows of model 'lightgbm' (study x)")
    assert capsys.readouterr().out == (
        "wrote out [final].csv: 91 rows of model 'lightgbm' (study x)\n"
    )


def test_table_cells_are_text_unless_styled(capsys, monkeypatch):
    from rich.text import Text

    monkeypatch.setattr(output, "console", Console(width=120, highlight=False, color_system=None))
    output.print_table(
        [{"a": "[red]not markup[/]", "b": Text("styled", style="green")}], ["a", "b"]
    )
    out = capsys.readouterr().out
    assert "[red]not markup[/]" in out and "styled" in out


def test_error_lines_are_not_hard_wrapped_at_80_columns(tmp_path):
    """A model whose every trial fails: the end-of-run error line, and a plugin's warning, stay
    one line each when printed at 80 columns (the terminal folds them, copy-paste keeps them)."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "space.yaml").write_text("params:\n  shrink: {type: float, low: 0.0, high: 1.0}\n")
    (folder / "always_fails.py").write_text(
        textwrap.dedent(
            f"""
            from mlforecast_cli import Forecaster, ModelSpec, hookimpl

            class Fails(Forecaster):
                def fit(self, train, valid=None, report=None):
                    raise ValueError("this model always fails, with a reason that is much "
                                     "longer than the eighty columns of a narrow terminal")

                def predict(self, windows):
                    raise AssertionError("never fitted")

            @hookimpl
            def register_models(register):
                register(ModelSpec(name="fails", summary="always fails", factory=Fails,
                                   space={str(folder / "space.yaml")!r}))
            """
        )
    )
    (folder / "broken.py").write_text(
        "raise ImportError('a broken plugin, with an import error message that is much longer "
        "than the eighty columns of a narrow terminal')\n"
    )
    env = {"COLUMNS": "80", "MLF_PLUGINS_DIR": str(folder), "MLF_LOAD_PLUGINS": ""}
    result = run_mlf(
        "optimize",
        "fails",
        "--trials",
        "2",
        "--quiet",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert any(
        line.startswith("error: fails: no trial completed")
        and re.search(r"narrow terminal \(\S+\.py:\d+\)$", line)  # where it was raised
        for line in errors
    ), result.stderr
    listed = run_mlf("plugins", env=env, cwd=tmp_path)
    warnings = [line for line in listed.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1, listed.stderr
    assert re.search(r"narrow terminal \(\S+broken\.py:1\)$", warnings[0]), listed.stderr


# --------------------------------------------------------------------------- help at 80 columns


def _help(*command: str) -> str:
    result = run_mlf(*command, "--help", env={"COLUMNS": "80", "NO_COLOR": "1"}, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_optimize_help_at_80_columns_shows_switches_and_every_metric():
    text = _help("optimize")
    assert "<bool>" not in text
    for switch in ("--json", "--quiet", "--help"):
        [line] = [row for row in text.splitlines() if f" {switch} " in row]
        assert re.search(rf"{switch}\s{{2,}}[A-Z]", line), line  # the help follows the switch
    flat = " ".join(text.split())
    assert "…" not in flat
    from mlforecast_cli.search.space import METRIC_NAMES

    for name in METRIC_NAMES:
        assert re.search(rf"\b{name}\b", flat), name
    assert max(len(line) for line in text.splitlines()) <= 80


def test_the_metrics_of_the_help_are_the_metrics():
    from mlforecast_cli.cli.options import METRICS_TEXT
    from mlforecast_cli.search.space import METRIC_NAMES

    assert re.split(r", | or ", METRICS_TEXT) == list(METRIC_NAMES)


@pytest.mark.parametrize(
    "command", [(), ("list-models",), ("predict",), ("leaderboard",), ("show-space",)]
)
def test_every_help_has_no_bool_placeholder(command):
    text = _help(*command)
    assert "<bool>" not in text and "…" not in text


def test_help_text_keeps_its_brackets():
    assert "KEY=[a, b]" in " ".join(_help("show-space").split())


# --------------------------------------------------------------------------- progress clock


def test_progress_clock_runs_until_the_model_is_done():
    """A search of fast trials takes a fraction of a second, and the model's refit and logging
    follow: the bar's clock shows tenths of a second and runs until the next model starts."""
    import optuna

    from mlforecast_cli.views.progress import ElapsedColumn, ProgressBoard

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    board = ProgressBoard(console=Console(file=io.StringIO(), width=120, color_system=None))
    with board:
        studies = [optuna.create_study() for _ in range(2)]
        bars = []
        for k, study in enumerate(studies):
            bar = board.add(f"model{k}", 2, "MAE", study)
            study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2, callbacks=[bar])
            bar.finish()
            time.sleep(0.3)  # the refit, the test and the logging
            bars.append(bar)
        first = board.progress.tasks[0]
        assert first.stop_time is not None  # stopped when the second model started
    shown = [str(ElapsedColumn().render(task)) for task in board.progress.tasks]
    for text in shown:  # not 0:00:00: tenths of a second, the refit included
        assert re.fullmatch(r"\d+\.\ds", text) and float(text[:-1]) >= 0.3, shown


def test_progress_shows_the_best_trials_plain_metric_not_its_selection_score():
    """A study selects on a score (MAPE capped per point) that may differ from the metric it
    reports: the bar shows the chosen trial's plain metric, as the table after it does."""
    import optuna

    from mlforecast_cli.views.progress import ProgressBoard

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    board = ProgressBoard(console=Console(file=io.StringIO(), width=120, color_system=None))

    def objective(trial):
        score = trial.suggest_float("x", 1, 2)
        trial.set_user_attr("val_metrics", {"mape": 10 * score})
        return score

    with board:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        bar = board.add("lightgbm", 3, "MAPE", study, metric="mape")
        study.optimize(objective, n_trials=3, callbacks=[bar])
        bar.finish()
    assert bar.best == pytest.approx(10 * study.best_value)
    assert board.progress.tasks[0].fields["best"] == f"MAPE {10 * study.best_value:.4g}"


def test_elapsed_times_read_well():
    from mlforecast_cli.views.progress import format_elapsed

    assert [format_elapsed(s) for s in (0.04, 12.345, 59.94, 65, 3725)] == [
        "0.0s",
        "12.3s",
        "59.9s",
        "0:01:05",
        "1:02:05",
    ]


def test_progress_counts_an_enqueued_first_trial_and_the_studys_best():
    """A space's enqueued first trial is this run's (the bar counts it, and it may be the
    best); on resume the bar adds the study's earlier trials and shows the study's best, so the
    bar agrees with the table after it. Once the search is over the bar says the refit runs."""
    import optuna

    from mlforecast_cli.trials.optuna_study import state_counts
    from mlforecast_cli.views.progress import DONE_PHASE, REFIT_PHASE, ProgressBoard

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"x": 0.0})  # the best configuration, queued before the bar exists

    def objective(trial):
        return 1.0 + trial.suggest_float("x", 0, 1)

    board = ProgressBoard(console=Console(file=io.StringIO(), width=80, color_system=None))
    with board:
        bar = board.add("ets", 3, "MAPE", study)
        study.optimize(objective, n_trials=3, callbacks=[bar])
        bar.finish()
        first = board.progress.tasks[0]
        assert first.fields["phase"] == REFIT_PHASE
        assert (first.completed, first.total) == (3, 3)
        assert _plain(first.fields["counts"]) == "3✓ 0✂ 0✗" and state_counts(study)["complete"] == 3
        assert first.fields["best"] == "MAPE 1"
        resumed = board.add("ets", 2, "MAPE", study)  # the same study again: 3 trials earlier
        study.optimize(lambda t: 5.0 + t.suggest_float("x", 0, 1), n_trials=2, callbacks=[resumed])
        resumed.finish()
    assert board.progress.tasks[0].fields["phase"] == DONE_PHASE
    second = board.progress.tasks[1]
    assert (second.completed, second.total) == (2, 2)
    assert _plain(second.fields["counts"]) == "2✓ 0✂ 0✗ +3 earlier"
    assert second.fields["best"] == "MAPE 1"  # the study's best, as the table shows
    assert second.fields["phase"] == DONE_PHASE


def _plain(markup: str) -> str:
    from rich.text import Text

    return Text.from_markup(markup).plain


# --------------------------------------------------------------------------- tables at 80 columns


def _columns(monkeypatch, width: int) -> None:
    monkeypatch.setattr(output, "console", output.MessageConsole(width=width, highlight=False))


def test_a_table_drops_optional_columns_it_cannot_fit_and_never_cuts_a_number(capsys, monkeypatch):
    rows = [
        {"model": "seasonal_naive (reference)", "val": 123456.789, "test": 0.000123456,
         "study": "seasonal_naive-walmart-h13-mape-with-a-long-name", "note": "x" * 3},
        {"model": "lightgbm", "val": 8.311, "test": 9.561, "study": "lightgbm-walmart", "note": ""},
    ]  # fmt: skip
    columns = ["model", "val", "test", "study", "note"]
    _columns(monkeypatch, 64)
    output.print_table(rows, columns, wrap=("model",), optional=("study", "note"))
    out = capsys.readouterr().out
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 64, out
    assert "1.235e+05" in out and "0.0001235" in out and "…" not in out
    assert "study" not in _header(out) and "more columns with --wide: study" in out
    assert "note" in _header(out)  # it fits beside them: shown
    output.print_table(rows, columns, wrap=("model",), optional=("study", "note"), wide=True)
    out = capsys.readouterr().out
    assert "seasonal_naive-walmart-h13-mape-with-a-long-name" in out and "--wide" not in out
    _columns(monkeypatch, 30)  # too narrow for the numbers: printed whole, the terminal folds
    output.print_table(rows, ["model", "val", "test"], wrap=("model",))
    out = capsys.readouterr().out
    assert "1.235e+05" in out and "0.0001235" in out and "…" not in out


def _header(table: str) -> str:
    return next(line for line in table.splitlines() if line.startswith("┃"))


def test_optimize_and_leaderboard_tables_read_at_80_columns(cli, monkeypatch, mlflow_uri):
    _columns(monkeypatch, 80)
    result = cli("optimize", "seasonal_naive", "--trials", "1", "--quiet")
    assert result.code == 0, result
    board = json.loads(cli("leaderboard", "--json").out)["models"]
    [row] = board
    for out in (result.out, cli("leaderboard").out):
        lines = out.splitlines()
        assert max(len(line.rstrip()) for line in lines) <= 80, out
        assert "…" not in out
        assert f"{row['val']:.4g}" in out and f"{row['test']:.4g}" in out
        assert "1✓ 0✂ 0✗" in out and "vs ref" in out and "more columns with --wide" in out
    assert "time" in _header(result.out) and "naive" not in _header(result.out)
    wide = cli("leaderboard", "--wide").out
    assert row["run_id"] in wide and row["study"] in wide and "--wide" not in wide
