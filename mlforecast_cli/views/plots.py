"""The plots of a study, as PNG files: the forecast against the actuals on the test window,
Optuna's optimisation history and parameter importances, the intermediate-value curves with
the pruned trials.

matplotlib (Agg, no display) is imported only when a plot is drawn; a plot that the study
cannot give (too few trials, no parameter, no reported values) is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import first_line
from ..search.metrics import DEFAULT_METRIC

if TYPE_CHECKING:
    from ..data.panel import Panel
    from ..trials.scoring import FitResult

FORECAST = "forecast_vs_actuals.png"
HISTORY = "optimization_history.png"
IMPORTANCES = "param_importances.png"
INTERMEDIATE = "intermediate_values.png"
INDEX = "plots.json"
ORDER = (FORECAST, HISTORY, IMPORTANCES, INTERMEDIATE)
"""Plot files in the order a reader wants them."""
TITLES = {
    FORECAST: "Forecast vs actuals on the test window",
    HISTORY: "Optimisation history",
    IMPORTANCES: "Parameter importances",
    INTERMEDIATE: "Intermediate values (learning curves) and pruned trials",
}
DPI = 110
BAND_ALPHA = {95.0: 0.15, 80.0: 0.3}
"""Shading of the prediction interval bands in the forecast plot, by level."""
COLORS = {"actual": "#333333", "forecast": "#1f77b4", "complete": "#1f77b4", "pruned": "#d62728"}


class PlotSkipped(Exception):
    """The study cannot give this plot; the message says why."""


@dataclass
class PlotSet:
    """The plots drawn into a folder, and the reasons of those that were skipped."""

    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def _pyplot() -> Iterator[Any]:
    """pyplot on the Agg backend (unless a backend is already chosen) in one style, with
    Optuna's experimental warnings silenced; rcParams are restored afterwards."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings(), plt.style.context("ggplot"):
        warnings.simplefilter("ignore")
        yield plt


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- forecast


@dataclass(frozen=True)
class RefitForecast:
    """What the forecast plot draws: the refit's ``result`` on the test window of ``panel``,
    with the prediction intervals ``bounds`` (``{level: (lo, hi)}``, rows as the windows')."""

    panel: Panel
    result: FitResult
    bounds: Mapping[float, tuple[np.ndarray, np.ndarray]] | None = None
    model: str = ""
    """The model's name, for the title."""


TITLE_IN, LEGEND_IN = 0.3, 0.4
"""Inches kept above the forecast figure's panels for its title, and under them for its legend."""


def plot_test_forecast(
    forecast: RefitForecast, path: str | Path, *, max_series: int = 4, context: int | None = None
) -> Path:
    """Actuals and forecast of up to ``max_series`` series over the test window, with
    ``context`` steps of history before it (default: two horizons, at least a season) and the
    interval bands; the title on top, the legend under the panels."""
    panel, result = forecast.panel, forecast.result
    windows, predictions, actuals = result.windows, result.predictions, result.actuals
    if actuals is None or windows.step_offset is None:
        raise PlotSkipped("the refit has no test actuals to compare with")
    h = predictions.shape[1]
    context = context if context is not None else max(2 * h, min(panel.season_length, 52))
    rows = list(range(min(max_series, len(windows))))
    n = len(rows)
    ncols = 1 if n == 1 else 2
    nrows = math.ceil(n / ncols)
    height = 3.0 * nrows + TITLE_IN + LEGEND_IN
    with _pyplot() as plt:
        fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, height), squeeze=False)
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        for ax, r in zip(axes.flat, rows, strict=False):
            _draw_test_series(ax, panel, result, r, context, forecast.bounds)
        handles = _forecast_legend(plt, h, forecast.bounds)
        fig.legend(
            handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False
        )
        more = f", first {n} of {len(windows)} series" if len(windows) > n else ""
        model = forecast.model
        fig.suptitle(
            f"{model + ': ' if model else ''}forecast vs actuals on the test window "
            f"(last {h} steps{more})",
            x=0.01,
            ha="left",
            fontsize=12,
        )
        fig.tight_layout(rect=(0, LEGEND_IN / height, 1, 1 - TITLE_IN / height))
        return _save(fig, Path(path))


def _draw_test_series(
    ax,
    panel: Panel,
    result: FitResult,
    r: int,
    context: int,
    bounds: Mapping[float, tuple[np.ndarray, np.ndarray]] | None,
) -> None:
    """Window ``r`` of ``result``: its history, forecast, test span, interval bands and MAPE."""
    from ..search.metrics import evaluate

    windows, predictions, actuals = result.windows, result.predictions, result.actuals
    h = predictions.shape[1]
    s = int(windows.series[r])
    start = int(windows.step_offset[r])
    times = panel.times[s]
    lo = max(0, start - context)
    end = min(len(times), start + h)
    ax.plot(times[lo:end], panel.y[s][lo:end], color=COLORS["actual"], lw=1.4)
    ax.plot(
        times[start:end],
        predictions[r][: end - start],
        color=COLORS["forecast"],
        lw=1.8,
        marker="o",
        ms=3,
    )
    ax.axvspan(times[start], times[end - 1], color="#1f77b4", alpha=0.08, lw=0)
    for level, (lo_b, hi_b) in sorted((bounds or {}).items(), reverse=True):
        ax.fill_between(
            times[start:end],
            lo_b[r][: end - start],
            hi_b[r][: end - start],
            color=COLORS["forecast"],
            alpha=BAND_ALPHA.get(level, 0.15),
            lw=0,
        )
    mape = evaluate(actuals[r : r + 1], predictions[r : r + 1]).get("mape")
    ax.set_title(
        _series_name(panel, s) + (f" (MAPE {mape:.1f}%)" if mape is not None else ""),
        fontsize=10,
        loc="left",
    )
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.yaxis.set_major_formatter(_thousands())


def _forecast_legend(plt, h: int, bounds: Mapping[float, object] | None) -> list:
    """Legend entries of the test-forecast figure: actual, forecast, test window, each band."""
    return [
        plt.Line2D([], [], color=COLORS["actual"], lw=1.4, label="actual"),
        plt.Line2D([], [], color=COLORS["forecast"], lw=1.8, marker="o", ms=3, label="forecast"),
        plt.Rectangle((0, 0), 1, 1, color="#1f77b4", alpha=0.15, label=f"test window ({h})"),
        *(
            plt.Rectangle(
                (0, 0),
                1,
                1,
                color=COLORS["forecast"],
                alpha=BAND_ALPHA.get(level, 0.15),
                label=f"{level:g} % interval",
            )
            for level in sorted(bounds or {}, reverse=True)
        ),
    ]


def _series_name(panel: Panel, s: int) -> str:
    names = panel.columns.ids
    if not names:
        return "the series"
    return ", ".join(f"{n} {v}" for n, v in zip(names, panel.ids[s], strict=True))


def _thousands():
    from matplotlib.ticker import FuncFormatter

    def fmt(value, _pos):
        a = abs(value)
        if a >= 1e6:
            return f"{value / 1e6:.1f}M"
        if a >= 1e3:
            return f"{value / 1e3:.0f}k"
        return f"{value:g}"

    return FuncFormatter(fmt)


# --------------------------------------------------------------------------- Optuna


def _complete(study) -> list:
    return [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]


def plot_history(study, path: str | Path, *, target_name: str = "objective") -> Path:
    """Optuna's optimisation history: each complete trial's value and the best so far."""
    from optuna.visualization.matplotlib import plot_optimization_history

    done = _complete(study)
    if not done:
        raise PlotSkipped("no trial completed")
    with _pyplot():
        ax = plot_optimization_history(study, target_name=target_name)
        fig = ax.figure
        fig.set_size_inches(8, 4.2)
        counts = _state_counts(study)
        ax.set_title("")  # Optuna's own, centred title
        ax.set_title(
            f"Optimisation history: {study.study_name}\n{_counts_text(counts)}",
            loc="left",
            fontsize=11,
        )
        ax.set_xlabel("trial number")
        ax.xaxis.get_major_locator().set_params(integer=True)
        if _spread(t.value for t in done) > 20:
            ax.set_yscale("log")
        ax.legend(loc="upper right", fontsize=9)
        fig.tight_layout()
        return _save(fig, Path(path))


def plot_importances(study, path: str | Path, *, target_name: str = "objective") -> Path:
    """Optuna's parameter importances (PED-ANOVA) of the searched parameters."""
    import optuna
    from optuna.visualization.matplotlib import plot_param_importances

    done = _complete(study)
    params = sorted({k for t in done for k in t.params})
    if not params:
        raise PlotSkipped("the study searches no parameter")
    if len(done) < 2:
        raise PlotSkipped(f"needs at least 2 complete trials, the study has {len(done)}")
    varied = [p for p in params if len({repr(t.params.get(p)) for t in done}) > 1]
    if not varied:
        raise PlotSkipped("every complete trial has the same parameter values")
    with _pyplot() as plt:
        try:
            ax = plot_param_importances(study, params=varied, target_name=target_name)
        except (ValueError, RuntimeError, optuna.exceptions.OptunaError) as exc:
            plt.close("all")
            raise PlotSkipped(f"Optuna could not assess the importances: {exc}") from exc
        fig = ax.figure
        fig.set_size_inches(8, max(2.6, 1.4 + 0.42 * len(varied)))
        ax.set_title(
            f"Parameter importances for {target_name} ({len(done)} complete trials)",
            loc="left",
            fontsize=11,
        )
        ax.set_xlabel("importance (share of the objective's variation, PED-ANOVA)")
        ax.set_ylabel("")
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
        fig.tight_layout()
        return _save(fig, Path(path))


def plot_intermediate(study, path: str | Path, *, target_name: str = "objective") -> Path:
    """The values each trial reported while training, pruned trials in red, the best in bold."""
    trials = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.intermediate_values and t.state.name in ("COMPLETE", "PRUNED")
    ]
    if not trials:
        raise PlotSkipped("no trial reported intermediate values: the model is never pruned")
    best = None
    with contextlib.suppress(ValueError):
        best = study.best_trial.number
    values = [v for t in trials for v in t.intermediate_values.values() if math.isfinite(v)]
    with _pyplot() as plt:
        fig, ax = plt.subplots(figsize=(8, 4.4))
        n_pruned = n_complete = 0
        for t in sorted(trials, key=lambda t: t.state.name == "PRUNED"):
            steps = sorted(t.intermediate_values)
            ys = [t.intermediate_values[s] for s in steps]
            if t.state.name == "PRUNED":
                n_pruned += 1
                ax.plot(steps, ys, color=COLORS["pruned"], lw=0.9, alpha=0.55, ls="--")
                ax.plot(steps[-1:], ys[-1:], "x", color=COLORS["pruned"], ms=6, mew=1.5)
            else:
                n_complete += 1
                ax.plot(steps, ys, color=COLORS["complete"], lw=1.0, alpha=0.6)
        for t in trials:
            if t.number == best:
                steps = sorted(t.intermediate_values)
                ax.plot(
                    steps,
                    [t.intermediate_values[s] for s in steps],
                    color="#2ca02c",
                    lw=2.4,
                    zorder=5,
                )
        handles = [
            plt.Line2D([], [], color=COLORS["complete"], lw=1.2, label=f"complete ({n_complete})"),
            plt.Line2D(
                [],
                [],
                color=COLORS["pruned"],
                lw=1.0,
                ls="--",
                marker="x",
                label=f"pruned ({n_pruned}), x = where it stopped",
            ),
        ]
        if best is not None and any(t.number == best for t in trials):
            handles.append(
                plt.Line2D([], [], color="#2ca02c", lw=2.4, label=f"best trial (#{best})")
            )
        ax.legend(handles=handles, loc="best", fontsize=9, framealpha=0.9)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if _spread(values) > 20:
            ax.set_yscale("log")
        ax.set_xlabel("step (boosting round / epoch)")
        ax.set_ylabel(f"reported {target_name}")
        ax.set_title(
            f"Intermediate values: {study.study_name}\n{n_complete} complete and "
            f"{n_pruned} pruned trials reported values",
            loc="left",
            fontsize=11,
        )
        fig.tight_layout()
        return _save(fig, Path(path))


def _spread(values) -> float:
    v = np.array([x for x in values if x is not None and math.isfinite(x) and x > 0])
    return float(v.max() / v.min()) if v.size else 1.0


def _state_counts(study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts


def _counts_text(counts: Mapping[str, int]) -> str:
    done, pruned, failed = (counts.get(k, 0) for k in ("complete", "pruned", "fail"))
    return f"{done} complete (the points), {pruned} pruned, {failed} failed trials"


# --------------------------------------------------------------------------- all of them


def study_plots(
    study,
    folder: str | Path,
    *,
    forecast: RefitForecast | None = None,
    metric: str = DEFAULT_METRIC,
) -> PlotSet:
    """Draw every plot of ``study`` into ``folder`` (the forecast one needs the refit's
    ``forecast``); a plot that fails or cannot be drawn is skipped with why."""
    from ..search.metrics import metric_label

    target = f"validation {metric_label(metric)}"
    out = PlotSet(Path(folder))
    jobs = {
        HISTORY: lambda p: plot_history(study, p, target_name=target),
        IMPORTANCES: lambda p: plot_importances(study, p, target_name=target),
        INTERMEDIATE: lambda p: plot_intermediate(study, p, target_name=target),
    }
    if forecast is not None:
        jobs = {FORECAST: lambda p: plot_test_forecast(forecast, p), **jobs}
    else:
        out.skipped[FORECAST] = "no refit model"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        reason = "matplotlib is not installed (pip install matplotlib)"
        out.skipped.update(dict.fromkeys(jobs, reason))
        write_index(out)
        return out
    for name, draw in jobs.items():
        try:
            out.files[name] = draw(out.folder / name)
        except PlotSkipped as exc:
            out.skipped[name] = str(exc)
        except Exception as exc:  # a plot must never fail the study
            out.skipped[name] = f"failed: {first_line(exc, typed=True)}"
    write_index(out)
    return out


def write_index(plots: PlotSet) -> Path:
    """``plots.json`` in the folder: the files drawn and why the others were skipped."""
    import json

    plots.folder.mkdir(parents=True, exist_ok=True)
    path = plots.folder / INDEX
    document = {
        "files": [name for name in ORDER if name in plots.files],
        "skipped": {name: plots.skipped[name] for name in ORDER if name in plots.skipped},
    }
    path.write_text(json.dumps(document, indent=2))
    return path
