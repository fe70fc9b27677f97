"""The study plots (drawn, logged, and showing what their titles say) and `mlf report`,
opened in a headless Chromium driven over the DevTools protocol."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from mlforecast_cli.data.split import split_panel
from mlforecast_cli.datasets import load_dataset
from mlforecast_cli.views import plots
from tests.plugin_factories import CURVE_SPACE, CurveModel, spec_plugin

optuna.logging.set_verbosity(optuna.logging.WARNING)
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get update && apt-get install -y chromium)",
)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def drawn(monkeypatch):
    """Every figure the plots module saves, described before it is closed."""
    figures: list[dict] = []
    save = plots._save

    def record(fig, path):
        figures.append(_describe(fig, path))
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", record)
    return figures


def _describe(fig, path) -> dict:
    axes = [ax for ax in fig.axes if ax.get_visible()]
    return {
        "path": Path(path),
        "suptitle": fig.get_suptitle(),
        "titles": [ax.get_title(loc="left") for ax in axes],
        "lines": [
            [(line.get_color(), line.get_linestyle(), line.get_ydata()) for line in ax.get_lines()]
            for ax in axes
        ],
        "points": [sum(len(c.get_offsets()) for c in ax.collections) for ax in axes],
        "bars": [len(ax.patches) for ax in axes],
        "bands": [
            [
                (c.get_paths()[0].vertices[:, 1].min(), c.get_paths()[0].vertices[:, 1].max())
                for c in ax.collections
                if type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")
            ]
            for ax in axes
        ],
        "yticks": [[t.get_text() for t in ax.get_yticklabels()] for ax in axes],
    }


def _check_png(path: Path) -> None:
    """The file is a PNG that opens, of a sensible size, and is not blank."""
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert 300 <= width <= 2500 and 200 <= height <= 2500, (path, image.shape)
    assert image[..., :3].std() > 0.05


def _study(trials, direction="minimize"):
    """An in-memory study holding the given finished trials."""
    study = optuna.create_study(direction=direction, study_name="unit")
    for t in trials:
        study.add_trial(t)
    return study


def _trial(value, params=None, state="COMPLETE", curve=None):
    params = params or {}
    dists = {
        k: optuna.distributions.FloatDistribution(0.0, 10.0)
        if isinstance(v, float)
        else optuna.distributions.CategoricalDistribution(["a", "b", "c"])
        for k, v in params.items()
    }
    return optuna.trial.create_trial(
        params=params,
        distributions=dists,
        value=value if state == "COMPLETE" else None,
        state=getattr(optuna.trial.TrialState, state),
        intermediate_values=curve or {},
    )


# --------------------------------------------------------------------------- plots


def test_forecast_plot_shows_the_test_window(tmp_path, drawn):
    from mlforecast_cli.data.windows import inverse_scale, labels, make_windows

    panel = load_dataset("walmart")
    split = split_panel(panel, 13)
    windows = make_windows(panel, split.test_start, 1, 13, mode="eval", scaler="none")
    predictions = inverse_scale(
        np.where(np.isfinite(windows.seasonal), windows.seasonal, 0), windows
    )

    class Result:
        pass

    result = Result()
    result.windows, result.predictions, result.actuals = windows, predictions, labels(windows)
    path = plots.plot_test_forecast(
        plots.RefitForecast(panel, result, model="naive"), tmp_path / "f.png"
    )
    _check_png(path)
    [fig] = drawn
    assert "naive: forecast vs actuals on the test window (last 13 steps" in fig["suptitle"]
    assert "first 4 of 7 series" in fig["suptitle"]
    assert fig["titles"][0].startswith("Store 1, Dept 1 (MAPE ")
    assert len(fig["titles"]) == 4
    for r, lines in enumerate(fig["lines"]):
        (_, _, actual), (_, _, forecast) = lines
        np.testing.assert_allclose(forecast, predictions[r])  # the forecast drawn is the model's
        np.testing.assert_allclose(actual[-13:], result.actuals[r])  # ending on the test actuals
    assert fig["bands"] == [[]] * 4  # no intervals given, none drawn


def test_forecast_plot_draws_the_interval_bands(tmp_path, drawn):
    from mlforecast_cli.data.windows import labels, make_windows

    panel = load_dataset("walmart")
    windows = make_windows(
        panel, split_panel(panel, 13).test_start, 1, 13, mode="eval", scaler="none"
    )

    class Result:
        pass

    result = Result()
    result.windows, result.actuals = windows, labels(windows)
    result.predictions = result.actuals * 1.05
    p = result.predictions
    bounds = {80.0: (p - 100, p + 100), 95.0: (p - 300, p + 300)}
    forecast = plots.RefitForecast(panel, result, bounds)
    _check_png(plots.plot_test_forecast(forecast, tmp_path / "f.png"))
    [fig] = drawn
    for r, bands in enumerate(fig["bands"]):
        wide, narrow = bands  # the 95 % band first, under the 80 % one
        assert wide == pytest.approx((p[r].min() - 300, p[r].max() + 300))
        assert narrow == pytest.approx((p[r].min() - 100, p[r].max() + 100))


def test_history_importances_and_pruned_curves(tmp_path, drawn):
    curves = [{s: 10.0 - s * k for s in range(8)} for k in (0.5, 0.7, 0.2)]
    study = _study(
        [
            _trial(6.0, {"lr": 0.5, "kind": "a"}, curve=curves[0]),
            _trial(4.4, {"lr": 2.0, "kind": "b"}, curve=curves[1]),
            _trial(None, {"lr": 9.0, "kind": "c"}, state="PRUNED", curve={0: 12.0, 1: 11.5}),
            _trial(None, {"lr": 8.0, "kind": "a"}, state="PRUNED", curve={0: 13.0, 1: 12.9}),
            _trial(8.6, {"lr": 7.5, "kind": "c"}, curve=curves[2]),
            _trial(None, {"lr": 1.0, "kind": "a"}, state="FAIL"),
        ]
    )
    made = plots.study_plots(study, tmp_path, metric="mae")
    assert set(made.files) == {plots.HISTORY, plots.IMPORTANCES, plots.INTERMEDIATE}
    assert made.skipped == {plots.FORECAST: "no refit model"}
    for path in made.files.values():
        _check_png(path)
    index = json.loads((tmp_path / plots.INDEX).read_text())
    assert index["skipped"] == {plots.FORECAST: "no refit model"}
    history, importances, intermediate = drawn
    assert history["titles"][0].startswith("Optimisation history: unit")
    assert "3 complete (the points), 2 pruned, 1 failed trials" in history["titles"][0]
    assert history["points"] == [3]  # one point per complete trial
    assert importances["titles"][0].startswith("Parameter importances for validation MAE")
    assert importances["bars"] == [2]
    assert sorted(importances["yticks"][0]) == ["kind", "lr"]
    assert intermediate["titles"][0].endswith("3 complete and 2 pruned trials reported values")
    lines = intermediate["lines"][0]
    red = [ln for ln in lines if ln[0] == plots.COLORS["pruned"] and ln[1] == "--"]
    assert len(red) == 2  # one dashed red curve per pruned trial
    best = [ln for ln in lines if ln[0] == "#2ca02c"]
    np.testing.assert_allclose(best[0][2], list(curves[1].values()))  # the best trial, in bold


@pytest.mark.parametrize(
    ("trials", "skipped"),
    [
        ([], {plots.HISTORY: "no trial completed", plots.IMPORTANCES: "no parameter"}),
        ([_trial(1.0)], {plots.IMPORTANCES: "searches no parameter"}),
        ([_trial(1.0, {"lr": 1.0})], {plots.IMPORTANCES: "at least 2 complete trials"}),
        (
            [_trial(1.0, {"lr": 1.0}), _trial(2.0, {"lr": 1.0})],
            {plots.IMPORTANCES: "the same parameter values"},
        ),
        ([_trial(None, state="FAIL")], {plots.HISTORY: "no trial completed"}),
    ],
)
def test_studies_too_small_for_a_plot_skip_it_with_the_reason(tmp_path, trials, skipped):
    made = plots.study_plots(_study(trials), tmp_path)
    for name, reason in skipped.items():
        assert reason in made.skipped[name], made.skipped
    assert "intermediate" in made.skipped[plots.INTERMEDIATE]
    assert set(made.files) | set(made.skipped) == set(plots.ORDER)


def test_plots_leave_matplotlib_settings_alone(tmp_path):
    before = dict(matplotlib.rcParams)
    plots.study_plots(_study([_trial(1.0, {"lr": 1.0}), _trial(2.0, {"lr": 3.0})]), tmp_path)
    after = dict(matplotlib.rcParams)
    assert {k for k in before if before[k] != after.get(k)} <= {"backend"}


def test_a_plot_job_draws_apart_from_a_journal_study_and_gives_the_same_set(tmp_path):
    from mlforecast_cli.views.plot_job import PlotJob

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))
    )
    study = optuna.create_study(storage=storage, study_name="unit")
    for t in (_trial(3.0, {"lr": 1.0}), _trial(2.0, {"lr": 4.0}), _trial(1.0, {"lr": 8.0})):
        study.add_trial(t)
    job = PlotJob(study, tmp_path / "apart", metric="mae")
    assert job._process is not None  # drawn by a forked process on Linux
    made = job.result()
    here = plots.study_plots(study, tmp_path / "here", metric="mae")
    assert set(made.files) == set(here.files) == {plots.HISTORY, plots.IMPORTANCES}
    assert made.skipped == here.skipped
    for path in made.files.values():
        assert path.parent == tmp_path / "apart"
        _check_png(path)


def test_a_plot_job_whose_process_dies_or_hangs_skips_every_plot_with_why(tmp_path, monkeypatch):
    from mlforecast_cli.views import plot_job

    def die(*args):
        os._exit(7)

    monkeypatch.setattr(plot_job, "_draw_snapshot", die)
    made = plot_job.PlotJob(_study([_trial(1.0)]), tmp_path / "dead").result()
    assert made.files == {}
    assert set(made.skipped) == set(plots.ORDER)
    assert made.skipped[plots.HISTORY] == "the drawing process ended with exit code 7"

    monkeypatch.setattr(plot_job, "_draw_snapshot", lambda *args: time.sleep(60))
    made = plot_job.PlotJob(_study([_trial(1.0)]), tmp_path / "slow").result(timeout=0.5)
    assert made.skipped[plots.HISTORY] == "not drawn within 0.5 s"


# --------------------------------------------------------------------------- optimize + report


@pytest.fixture
def studied(cli, registry, mlflow_uri, tmp_path):
    """A pruning model and the seasonal naive, optimized with --plots (no ensemble)."""
    registry.add_plugin(spec_plugin("curve", CurveModel, CURVE_SPACE, tmp_path), name="curve")
    result = cli(
        "optimize", "curve", "seasonal_naive", "--trials", "8", "--quiet", "--plots", "figs",
        "--no-ensemble",
    )  # fmt: skip
    assert result.code == 0, result
    return mlflow_uri


def test_optimize_logs_the_plots_and_writes_them_with_plots_dir(studied, tmp_path):
    client = MlflowClient(studied)
    exp = client.get_experiment_by_name("walmart_sales_forecasting")
    runs = client.search_runs([exp.experiment_id], "tags.`mlf.role` = 'study'")
    logged = {
        r.data.params["model"]: {a.path for a in client.list_artifacts(r.info.run_id, "plots")}
        for r in runs
    }
    assert logged["curve"] == {f"plots/{n}" for n in (*plots.ORDER, plots.INDEX)}
    assert logged["seasonal_naive"] == {
        f"plots/{n}" for n in (plots.FORECAST, plots.HISTORY, plots.INDEX)
    }
    folder = tmp_path / "figs" / "curve-walmart-h13-mape"
    assert sorted(p.name for p in folder.iterdir()) == sorted(plots.ORDER)
    for path in folder.iterdir():
        _check_png(path)


def test_report_is_one_self_contained_page(cli, studied, tmp_path):
    result = cli("report", "--output", "report.html", "--json")
    assert result.code == 0, result
    document = json.loads(result.out)
    assert sorted(document.pop("models")) == ["curve", "seasonal_naive"]  # ranked by test
    assert document == {
        "output": "report.html",
        "experiment": "walmart_sales_forecasting",
        "plots": 6,
    }
    page = (tmp_path / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 6
    assert 'src="http' not in page and "<script" not in page and 'href="http' not in page
    assert "seasonal_naive (reference)" in page
    assert "Parameter importances: not available (the study searches no parameter)" in page
    assert oct((tmp_path / "report.html").stat().st_mode & 0o777) != "0o600"


def test_report_shows_the_reference_and_each_models_ratio_to_it(cli, registry, mlflow_uri):
    registry.add_plugin(spec_plugin("curve", CurveModel, CURVE_SPACE, Path.cwd()), name="curve")
    assert cli("optimize", "curve", "--trials", "3", "--quiet").code == 0
    board = json.loads(cli("leaderboard", "--json").out)["models"]
    result = cli("report", "--output", "report.html", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["models"] == [row["model"] for row in board]
    page = Path("report.html").read_text()
    head = page[page.index("<thead>") : page.index("</thead>")]
    assert "<th>vs ref</th>" in head
    ratios = {row["model"]: row["vs_reference"] for row in board}
    assert ratios["seasonal_naive"] == 1.0 and ratios["curve"] > 0
    assert f'<td class="num">{ratios["curve"]:.2f}</td>' in page
    assert '<tr class="reference"><td class="num">' in page
    assert "seasonal_naive (reference)</td>" in page  # a row with no study: no link
    assert "seasonal_naive: study" not in page  # and no section


def test_report_shows_an_ensemble_with_its_weights(cli, studied, tmp_path):
    """After `mlf ensemble` every row of the report is right: the ensemble's trials cell
    says what it combines, its section shows the weights (no 'no plots' excuse), and no cell
    prints None."""
    ensemble = cli("ensemble", "--json")
    assert ensemble.code == 0, ensemble
    weights = {m["model"]: m["weight"] for m in json.loads(ensemble.out)["members"]}
    assert cli("report", "--output", "report.html").code == 0
    page = (tmp_path / "report.html").read_text()
    assert ">None<" not in page and "None</" not in page
    assert "older mlf" not in page
    board = page[page.index("<h2>Leaderboard</h2>") : page.index('<h2 id="')]
    assert "<td>ensemble of " in board
    section = page[page.index('<h2 id="model-ensemble">') :]
    section = section[: section.index("<h2", 4)] if "<h2" in section[4:] else section
    assert "<h3>Weights" in section and "no search plots" in section
    for model, weight in weights.items():
        if weight > 0:
            assert f'href="#model-{model.replace("_", "-")}">{model}</a>' in section
            assert f'<td class="num">{weight:.3f}</td>' in section


@pytest.mark.slow
@needs_chromium
def test_report_opens_in_headless_chromium_without_errors(cli, studied, tmp_path):
    """At 1280 px, after `mlf ensemble`: every section there, the weights shown, nothing wider
    than the page."""
    assert cli("ensemble").code == 0
    assert cli("report", "--output", "report.html").code == 0
    page = load_in_chromium(tmp_path / "report.html", tmp_path / "chromium", width=1280)
    assert page["errors"] == []
    assert page["title"] == "mlf report: walmart_sales_forecasting"
    assert page["tables"] >= 1 and page["leaderboard_rows"] == 3
    assert len(page["images"]) == 6
    for complete, width, height, alt in page["images"]:
        assert complete and width > 300 and height > 200, alt  # every image decodes
    assert "curve: study curve-walmart-h13-mape" in page["text"]
    assert "seasonal_naive: study seasonal_naive-walmart-h13-mape" in page["text"]
    assert "ensemble: study ensemble-walmart-h13-mape" in page["text"]
    assert "Weights (greedy)" in page["text"]
    assert page["page_width"] <= 1280 and page["overflowing"] == [], page["overflowing"]


@pytest.mark.slow
@needs_chromium
def test_the_chromium_check_sees_errors(tmp_path):
    """The harness is not blind: a script error, console.error and a missing image count."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><title>bad</title><link rel="icon" href="data:,"></head>'
        '<body><img src="missing.png" alt="gone"><script>console.error("boom");'
        "undefinedFunction();</script></body></html>"
    )
    page = load_in_chromium(bad, tmp_path / "chromium")
    text = " ".join(page["errors"])
    assert "boom" in text and "undefinedFunction" in text and "missing.png" in text
    assert page["images"][0][1] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "report.txt"], "end the file name with .html"),
        (["--output", "nowhere/r.html"], "folder nowhere does not exist"),
        (["--output", "r.html", "--experiment", "none"], "no MLflow experiment named 'none'"),
    ],
)
def test_report_bad_input(cli, mlflow_uri, tmp_path, args, message):
    result = cli("report", *args)
    assert result.code == 2, result
    assert message in result.err and len(result.err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.html"))


# --------------------------------------------------------------------------- Chromium


def load_in_chromium(page: Path, profile: Path, timeout: float = 60.0, width: int = 1280) -> dict:
    """Open ``page`` in headless Chromium, its window ``width`` px wide, over the DevTools
    protocol (``--remote-debugging-pipe``: JSON messages ending in NUL on fds 3 and 4) and
    report what it saw.

    ``errors``: uncaught exceptions, ``console.error`` calls and error log entries (failed
    loads among them); ``images``: ``[complete, naturalWidth, naturalHeight, alt]`` of each;
    ``page_width``: the document's scroll width; ``overflowing``: elements whose content is
    wider than their box (a table cut or scrolled sideways).
    """
    commands_r, commands_w = os.pipe()
    events_r, events_w = os.pipe()
    profile.mkdir(parents=True, exist_ok=True)
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--remote-debugging-pipe",
        f"--user-data-dir={profile}",
        f"--window-size={width},900",
        "about:blank",
    ]
    # a tiny Python launcher puts the pipe ends on fds 3 and 4, then becomes Chromium
    launcher = (
        "import fcntl, os, sys; "
        "r, w = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3]); "
        "os.dup2(r, 3); os.dup2(w, 4); os.execv(sys.argv[3], sys.argv[3:])"
    )
    with open(profile / "stderr.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", launcher, str(commands_r), str(events_w), *args],
            pass_fds=(commands_r, events_w),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    os.close(commands_r)
    os.close(events_w)
    cdp = _Pipe(commands_w, events_r, time.monotonic() + timeout)
    try:
        target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for method in ("Runtime.enable", "Log.enable", "Page.enable"):
            cdp.call(method, session=session)
        cdp.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        cdp.wait_for("Page.loadEventFired", session)
        cdp.drain(0.5)  # late messages
        expression = """JSON.stringify({
            title: document.title,
            tables: document.querySelectorAll('table').length,
            leaderboard_rows: document.querySelectorAll('table')[0]
                ? document.querySelectorAll('table')[0].querySelectorAll('tbody tr').length : 0,
            images: [...document.images].map(i => [i.complete, i.naturalWidth,
                                                   i.naturalHeight, i.alt]),
            text: document.body.innerText,
            page_width: document.documentElement.scrollWidth,
            overflowing: [...document.querySelectorAll('main, main *')]
                .filter(el => el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0)
                .map(el => el.tagName + '.' + el.className)})"""
        value = cdp.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
        )["result"]["value"]
        seen = json.loads(value)
        seen["errors"] = cdp.errors
        cdp.call("Browser.close")
        return seen
    finally:
        os.close(commands_w)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(events_r)


class _Pipe:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, write_fd: int, read_fd: int, deadline: float) -> None:
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict] = []
        self.errors: list[str] = []

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._next()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_for(self, method: str, session: str) -> dict:
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        while True:
            event = self._next()
            if event.get("method") == method and event.get("sessionId") == session:
                return event

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not select.select([self.read_fd], [], [], max(0.0, end - time.monotonic()))[0]:
                return
            self._next()

    def _next(self) -> dict:
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the debugging pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "method" in message:
            self.events.append(message)
            self._note(message)
        return message

    def _note(self, event: dict) -> None:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(
                f"exception: {details.get('exception', {}).get('description') or details}"
            )
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            values = [a.get("value", a.get("description")) for a in params.get("args", [])]
            self.errors.append(f"console.{params['type']}: {values}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
