"""Peers: mlf beside Nixtla's mlforecast and statsforecast on the identical split and metric.

For each panel (the built-in Walmart series, M1 monthly and M1 quarterly from
``../shared/datasets``), every system sees the same long table (``id``, ``date``, ``value``:
no features, so every system has the same inputs), holds out the same test window (the last
``horizon`` steps of each series) and is scored by the same code (``mlforecast_cli.search.metrics``:
MAPE, sMAPE, MASE with the seasonal-naive scale of each series' history before the test).

- mlf: ``mlf optimize MODEL --trials N`` per model (one command each, fresh folder); the test
  metrics come from its ``--json`` document.
- mlforecast ``AutoMLForecast`` with ``AutoLightGBM`` (N Optuna trials, one validation window
  of ``horizon`` steps, as mlf's default ``--cv-windows 1``), refit on train + valid; its
  conformal intervals (``PredictionIntervals``, 2 windows, its minimum) where every series is
  long enough for them (more than ``2 * horizon`` points), else points only.
- statsforecast ``AutoETS`` and ``SeasonalNaive`` on train + valid (no search), with their
  model-based intervals.

Intervals at 80 and 95 % are scored by the same code too (coverage, MSIS with the same scale).

Each system runs in its own process: wall time is the whole command (imports included) and
memory the peak RSS of that process (``wait4``) and of all its processes together (sampled).
mlf's seasonal naive and statsforecast's must agree to the last digit: that proves the split
and the metric are the same.

    python benchmarks/run.py --only peers [--peers-trials 30] [--peers-panels m1_quarterly]
    python benchmarks/peers.py --fit autolightgbm ...   # one peer fit (used by the section)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    REPO,
    Section,
    fmt,
    isolated_env,
    run_mlf,
    run_process,
    scratch,
    shown,
    table,
)

SHARED_DATASETS = REPO.parent / "shared" / "datasets"
PEERS = ("autolightgbm", "autoets", "seasonalnaive")
PEER_LABELS = {
    "autolightgbm": "mlforecast AutoLightGBM",
    "autoets": "statsforecast AutoETS",
    "seasonalnaive": "statsforecast SeasonalNaive",
}
REFERENCE = "seasonal_naive"
GIB = 1024.0
LEVELS = (80, 95)
CONFORMAL_WINDOWS = 2
"""mlforecast's fewest windows for its conformal intervals."""


@dataclass(frozen=True)
class PeerPanel:
    name: str
    horizon: int
    file: str | None
    """CSV in ../shared/datasets (id, date, value); None for the built-in Walmart data or a
    generated panel (``seed``)."""
    seed: int | None = None
    """Set for a generated panel: ``synthetic.seasonal_panel`` with this seed."""


PANELS = (
    PeerPanel("walmart", 13, None),
    PeerPanel("m1_monthly", 18, "m1_monthly.csv"),
    PeerPanel("m1_quarterly", 8, "m1_quarterly.csv"),
    # generated: 366 monthly multiplicative-seasonal series of 90-330 points (synthetic.py)
    PeerPanel("seasonal_monthly", 24, None, seed=0),
    PeerPanel("seasonal_monthly_s1", 24, None, seed=1),
)
WALL_PANELS = ("m1_monthly", "seasonal_monthly", "seasonal_monthly_s1")
"""Panels on which mlf lightgbm's wall time is held to AutoLightGBM's."""


# --------------------------------------------------------------------------- data and scoring
def long_table(panel: PeerPanel, data_dir: Path):
    """The panel as a long table ``id, date, value`` sorted by id then date (None if absent)."""
    import pandas as pd

    if panel.seed is not None:
        from synthetic import seasonal_panel

        frame = seasonal_panel(seed=panel.seed)
    elif panel.file is None:
        from mlforecast_cli.datasets import load_dataset

        p = load_dataset(panel.name)
        frame = pd.DataFrame(
            {
                "id": [label for label, t in zip(p.id_labels, p.times, strict=True) for _ in t],
                "date": pd.to_datetime(
                    [d for t in p.times for d in t]  # datetime64[ns]
                ),
                "value": [v for y in p.y for v in y],
            }
        )
    else:
        path = data_dir / panel.file
        if not path.is_file():
            return None
        frame = pd.read_csv(path, dtype={"id": str})
        frame["date"] = pd.to_datetime(frame["date"])
    frame["id"] = frame["id"].astype(str)
    return frame.sort_values(["id", "date"], kind="stable").reset_index(drop=True)


def split_test(frame, horizon: int):
    """(train + valid, test): the last ``horizon`` rows of each series are the test."""
    position = frame.groupby("id").cumcount(ascending=False)
    return frame[position >= horizon], frame[position < horizon]


def score(frame, forecast, horizon: int, season: int) -> dict[str, float]:
    """mlf's metrics of ``forecast`` (id, date, yhat, and ``lo-80``, ``hi-80``... if it has
    intervals) on the test window of ``frame``."""
    import numpy as np

    from mlforecast_cli.ensembles.intervals import bound_columns
    from mlforecast_cli.search.metrics import evaluate, evaluate_intervals, mase_scale

    history, test = split_test(frame, horizon)
    merged = test.merge(forecast, on=["id", "date"], how="left", validate="one_to_one")
    ids = merged["id"].unique()

    def matrix(column: str) -> np.ndarray:
        return merged[column].to_numpy(dtype=np.float64).reshape(len(ids), horizon)

    histories = [g.to_numpy(dtype=np.float64) for _, g in history.groupby("id")["value"]]
    scale = mase_scale(histories, season)
    actual = matrix("value")
    out = evaluate(actual, matrix("yhat"), scale=scale)
    bounds = {
        float(level): tuple(matrix(c) for c in bound_columns(level))
        for level in LEVELS
        if set(bound_columns(level)) <= set(merged.columns)
    }
    return out | evaluate_intervals(actual, bounds, scale)


def panel_facts(frame) -> tuple[str, int]:
    """(pandas frequency alias, season length) as mlf infers them."""
    from mlforecast_cli.data.frequency import infer_freq, season_length_for

    longest = frame.groupby("id")["date"].size().idxmax()
    freq = infer_freq(frame.loc[frame["id"] == longest, "date"].to_numpy())
    return freq, season_length_for(freq)


# --------------------------------------------------------------------------- one peer fit
def fit_peer(args: argparse.Namespace) -> int:
    """Fit one peer on ``--train`` and write its ``--horizon`` forecasts to ``--out``."""
    import os

    import pandas as pd

    train = pd.read_csv(args.train, dtype={"id": str}, parse_dates=["date"])
    train = train.rename(columns={"id": "unique_id", "date": "ds", "value": "y"})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    facts: dict[str, Any] = {}
    if args.fit == "autolightgbm":
        import optuna
        from mlforecast.auto import AutoLightGBM, AutoMLForecast

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        auto = AutoMLForecast(
            models={"model": AutoLightGBM()},
            freq=args.freq,
            season_length=args.season,
            num_threads=cores,
        )
        shortest = int(train.groupby("unique_id").size().min())
        intervals = None
        if shortest > CONFORMAL_WINDOWS * args.horizon:
            from mlforecast.utils import PredictionIntervals

            intervals = PredictionIntervals(n_windows=CONFORMAL_WINDOWS, h=args.horizon)
        else:
            facts["note"] = (
                f"no intervals: mlforecast's need more than {CONFORMAL_WINDOWS} × "
                f"{args.horizon} points a series, the shortest has {shortest}"
            )
        auto.fit(
            train,
            n_windows=1,
            h=args.horizon,
            num_samples=args.trials,
            study_kwargs={"sampler": optuna.samplers.TPESampler(seed=args.seed)},
            prediction_intervals=intervals,
        )
        trials = auto.results_["model"].trials
        facts["trials"] = {
            "complete": sum(t.state.name == "COMPLETE" for t in trials),
            "pruned": sum(t.state.name == "PRUNED" for t in trials),
            "fail": sum(t.state.name == "FAIL" for t in trials),
        }
        out = auto.predict(args.horizon, level=list(LEVELS) if intervals else None)
    else:
        from statsforecast import StatsForecast
        from statsforecast.models import AutoETS, SeasonalNaive

        model = (
            AutoETS(season_length=args.season, alias="model")
            if args.fit == "autoets"
            else SeasonalNaive(season_length=args.season, alias="model")
        )
        out = StatsForecast(models=[model], freq=args.freq, n_jobs=cores).forecast(
            df=train, h=args.horizon, level=list(LEVELS)
        )
    out = out.reset_index() if "unique_id" not in out.columns else out
    out = out.rename(columns={"unique_id": "id", "ds": "date", "model": "yhat"})
    out.columns = [c.removeprefix("model-") for c in out.columns]
    bounds = [c for c in out.columns if c.startswith(("lo-", "hi-"))]
    out[["id", "date", "yhat", *bounds]].to_csv(args.out, index=False)
    Path(args.out).with_suffix(".json").write_text(json.dumps(facts))
    return 0


# --------------------------------------------------------------------------- the section
def run_peer(
    peer: str, frame, panel: PeerPanel, freq: str, season: int, opts, folder: Path
) -> dict[str, Any]:
    import pandas as pd

    train, _ = split_test(frame, panel.horizon)
    train_path, out_path = folder / f"{peer}-train.csv", folder / f"{peer}-forecast.csv"
    train.to_csv(train_path, index=False)
    argv = [sys.executable, str(Path(__file__).resolve()), "--fit", peer, "--train"]
    argv += [str(train_path), "--out", str(out_path), "--horizon", str(panel.horizon)]
    argv += ["--season", str(season), "--freq", freq, "--trials", str(opts.peers_trials)]
    argv += ["--seed", str(opts.seed)]
    code, _, err, wall, rss, total = run_process(
        argv, cwd=folder, env=isolated_env(folder), timeout=opts.peers_timeout
    )
    row: dict[str, Any] = {
        "system": PEER_LABELS[peer],
        "wall_s": wall,
        "rss_mib": rss,
        "total_mib": total,
        "command": shown(argv)
        .replace(str(folder), "$TMP")
        .replace(str(Path(__file__).resolve()), "benchmarks/peers.py"),
    }
    if code != 0 or not out_path.exists():
        lines = [x for x in err.splitlines() if x.strip()]
        row["error"] = lines[-1].strip() if lines else f"exit code {code}"
        return row
    forecast = pd.read_csv(out_path, dtype={"id": str}, parse_dates=["date"])
    row["metrics"] = score(frame, forecast, panel.horizon, season)
    facts = json.loads(out_path.with_suffix(".json").read_text())
    if "trials" in facts:
        t = facts["trials"]
        row["trials"] = f"{opts.peers_trials}: {t['complete']} / {t['pruned']} / {t['fail']}"
    if "note" in facts:
        row["note"] = facts["note"]
    return row


def run_mlf_model(model: str, data: Path, panel: PeerPanel, opts) -> dict[str, Any]:
    trials = 1 if model == REFERENCE else opts.peers_trials
    args = ["optimize", model, "--data", str(data), "--target", "value", "--time-col", "date"]
    args += ["--id-col", "id", "--horizon", str(panel.horizon), "--trials", str(trials)]
    args += ["--seed", str(opts.seed), "--json"]
    with scratch("mlf-bench-peers-") as folder:
        run = run_mlf(args, folder=folder, timeout=opts.peers_timeout)
    row: dict[str, Any] = {
        "system": f"mlf {model}",
        "model": model,
        "wall_s": run.wall_s,
        "rss_mib": run.max_rss_mib,
        "total_mib": run.total_rss_mib,
        "command": shown(run.argv).replace(str(data.parent), "$TMP"),
    }
    doc = run.document
    found = [m for m in (doc or {}).get("models", []) if m["model"] == model]
    if not found or not found[0].get("test_metrics"):
        row["error"] = (found[0].get("error") if found else None) or run.error_line()
        return row
    m = found[0]
    row["metrics"] = m["test_metrics"]
    c = m.get("trials") or {}
    row["trials"] = f"{trials}: {c.get('complete', 0)} / {c.get('pruned', 0)} / {c.get('fail', 0)}"
    fallback = m.get("fallback_series")
    if fallback:
        row["note"] = f"{fallback} series forecast by the seasonal naive"
    return row


def panel_rows(panel: PeerPanel, opts) -> tuple[list[dict], str]:
    frame = long_table(panel, opts.peers_data)
    if frame is None:
        return [], f"{opts.peers_data / (panel.file or '')} not found: skipped"
    freq, season = panel_facts(frame)
    rows = []
    with scratch("mlf-bench-peers-data-") as folder:
        data = folder / f"{panel.name}.csv"
        frame.to_csv(data, index=False)
        for model in opts.peers_models:
            print(f"    {panel.name}: mlf {model}", file=sys.stderr, flush=True)
            rows.append(run_mlf_model(model, data, panel, opts))
        for peer in opts.peers:
            print(f"    {panel.name}: {peer}", file=sys.stderr, flush=True)
            rows.append(run_peer(peer, frame, panel, freq, season, opts, folder))
    lengths = frame.groupby("id").size()
    facts = (
        f"{lengths.size} series, lengths {lengths.min()}–{lengths.max()}, frequency {freq}, "
        f"season {season}, horizon {panel.horizon}"
    )
    return rows, facts


def panel_table(rows: list[dict]) -> str:
    ordered = sorted(rows, key=lambda r: (r.get("metrics") is None, _mape(r)))
    lines = []
    for r in ordered:
        m = r.get("metrics") or {}
        lines.append(
            [
                r["system"],
                fmt(m.get("mape"), 3),
                fmt(m.get("smape"), 3),
                fmt(m.get("mase"), 3),
                " / ".join(fmt(m.get(f"coverage_{level}"), 1) for level in LEVELS),
                fmt(m.get("msis_95"), 2),
                fmt(r["wall_s"], 0),
                fmt(r["rss_mib"], 0),
                fmt(r["total_mib"], 0),
                r.get("trials", "–"),
                "; ".join(x for x in (r.get("note"), r.get("error")) if x),
            ]
        )
    return table(
        [
            "system",
            "test MAPE %",
            "test sMAPE %",
            "test MASE",
            "coverage 80 / 95 %",
            "MSIS 95 %",
            "wall s",
            "peak RSS MiB",
            "all processes MiB",
            "trials: ✓ / ✂ / ✗",
            "note",
        ],
        lines,
        "lrrrrrrrrll",
    )


def _mape(row: dict) -> float:
    return (row.get("metrics") or {}).get("mape", float("inf"))


def naive_agreement(rows: list[dict]) -> tuple[str, bool | None]:
    """Whether mlf's seasonal naive and statsforecast's agree on every metric."""
    ours = next((r for r in rows if r.get("model") == REFERENCE and r.get("metrics")), None)
    theirs = next(
        (r for r in rows if r["system"] == PEER_LABELS["seasonalnaive"] and r.get("metrics")),
        None,
    )
    if ours is None or theirs is None:
        return "", None
    keys = ("mape", "smape", "mase")
    same = all(f"{ours['metrics'][k]:.10g}" == f"{theirs['metrics'][k]:.10g}" for k in keys)
    shown_values = ", ".join(
        f"{k} {ours['metrics'][k]:.10g} vs {theirs['metrics'][k]:.10g}" for k in keys
    )
    verdict = "agree to 10 significant digits" if same else "**differ**"
    return f"Seasonal naive, mlf vs statsforecast: {shown_values}: {verdict}.", same


def verdicts(panel: PeerPanel, rows: list[dict]) -> list[list[str]]:
    """Target rows of this panel: lightgbm vs AutoLightGBM wall and memory (WALL_PANELS), trees
    vs the seasonal naive, the best mlf model vs AutoETS."""
    by = {r["system"]: r for r in rows}
    out = []
    lgb, auto = by.get("mlf lightgbm"), by.get(PEER_LABELS["autolightgbm"])
    if panel.name in WALL_PANELS and lgb and auto and not lgb.get("error"):
        ratio = lgb["wall_s"] / auto["wall_s"]
        out.append(
            [
                f"{panel.name}: mlf lightgbm wall ≤ AutoLightGBM's (same trials)",
                f"{lgb['wall_s']:.0f} s vs {auto['wall_s']:.0f} s ({ratio:.2f}×)",
                "met" if ratio <= 1.0 else "**missed**",
            ]
        )
        peak = max(lgb["rss_mib"], lgb["total_mib"] if lgb["total_mib"] == lgb["total_mib"] else 0)
        out.append(
            [
                f"{panel.name}: mlf lightgbm peak memory < 1 GiB",
                f"{peak:.0f} MiB",
                "met" if peak < GIB else "**missed**",
            ]
        )
    naive = by.get(f"mlf {REFERENCE}")
    if naive and naive.get("metrics"):
        for r in rows:
            if r.get("model") in (None, REFERENCE) or not r.get("metrics"):
                continue
            better = r["metrics"]["mape"] < naive["metrics"]["mape"]
            out.append(
                [
                    f"{panel.name}: {r['system']} beats the seasonal naive (test MAPE)",
                    f"{r['metrics']['mape']:.2f} vs {naive['metrics']['mape']:.2f}",
                    "met" if better else "**missed**",
                ]
            )
    ets = by.get(PEER_LABELS["autoets"])
    ours = [r for r in rows if r.get("model") and r.get("metrics")]
    if ets and ets.get("metrics") and ours:
        best = min(ours, key=_mape)
        better = best["metrics"]["mape"] < ets["metrics"]["mape"]
        out.append(
            [
                f"{panel.name}: best mlf model beats AutoETS (test MAPE)",
                f"{best['system']} {best['metrics']['mape']:.2f} vs {ets['metrics']['mape']:.2f}",
                "met" if better else "**missed**",
            ]
        )
    return out


def default_models() -> list[str]:
    from memory import ready_models

    ready = {m["name"] for m in ready_models()}
    return [m for m in ("lightgbm", "ets", REFERENCE) if m in ready]


def section(opts: argparse.Namespace) -> Section:
    started = time.perf_counter()
    if not getattr(opts, "peers_models", None):
        opts.peers_models = default_models()
    panels = [p for p in PANELS if p.name in opts.peers_panels]
    parts = [
        "mlf beside Nixtla's mlforecast (AutoLightGBM, the same number of Optuna trials) and "
        "statsforecast (AutoETS, SeasonalNaive) on the identical split: every system gets the "
        "same long table (id, date, value: no features), the last `horizon` steps of each "
        "series are the test, mlf and mlforecast validate on the `horizon` steps before it, "
        "and every forecast is scored by `mlforecast_cli.search.metrics` (MAPE and sMAPE over all "
        "test points, MASE with each series' seasonal-naive scale; coverage and MSIS of the "
        "80 and 95 % intervals: mlf's conformal, mlforecast's conformal with 2 windows where "
        "its series are long enough, statsforecast's model-based). Each system runs as its "
        "own process on all cores; wall time is the whole command, imports included. "
        "Trials: planned: complete / pruned / failed. Data: `benchmarks/peers.py`'s docstring.",
    ]
    targets: list[list[str]] = []
    summary: dict[str, Any] = {}
    for panel in panels:
        print(f"  peers: {panel.name}", file=sys.stderr, flush=True)
        rows, facts = panel_rows(panel, opts)
        if not rows:
            parts.append(f"### {panel.name}\n\n{facts}")
            continue
        agreement, same = naive_agreement(rows)
        targets += verdicts(panel, rows)
        commands = "\n".join(f"    {r['command']}" for r in rows)
        parts.append(
            f"### {panel.name}\n\n{facts}.\n\n{panel_table(rows)}\n\n{agreement}\n\n"
            f"Commands:\n\n{commands}"
        )
        summary[panel.name] = {
            "rows": [
                {k: r.get(k) for k in ("system", "metrics", "wall_s", "rss_mib", "trials")}
                for r in rows
            ],
            "naive_agree": same,
        }
    if targets:
        parts.insert(1, table(["target", "measured", ""], targets, "lll"))
    return Section(
        "peers",
        "Peers: mlforecast and statsforecast on the same split",
        "\n\n".join(parts),
        time.perf_counter() - started,
        summary,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/peers.py", description=__doc__)
    parser.add_argument("--fit", choices=PEERS, required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--horizon", type=int, required=True)
    parser.add_argument("--season", type=int, required=True)
    parser.add_argument("--freq", required=True)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    return fit_peer(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
