"""Seconds per neural trial on M1 monthly and on a generated panel of 30,000 series.

One ``mlf optimize MODEL --trials N`` per data set, each in a fresh folder (its own Optuna
journal and MLflow store); the median and the largest trial time are read back from the
study's journal, the peak memory is the command's. An epoch is a fixed number of seeded
batches (``steps_per_epoch``), so a trial should cost about the same on 617 series as on
30,000: the targets are a median trial of at most 15 s on M1 monthly and at most twice that
at 30,000 series. Usage::

    python benchmarks/neural_trials.py [--trials 5] [--models nhits] [--series 30000]
        [--set KEY=VALUE ...]
    python benchmarks/neural_trials.py --cuts [--series 30000]

``--cuts`` times, in this process, what a window model's trial cuts on the generated panel:
the three cuts of a fit afresh, the same through a study's
:class:`~mlforecast_cli.data.windows.WindowCache` (a later trial with the same window size and
scaler), their bytes, and the alternative of cutting only each batch as it is trained on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    REPO,
    finished_trials,
    fmt,
    machine_info,
    machine_markdown,
    run_mlf,
    scratch,
    shown,
    table,
)
from synthetic import COLUMNS, write_panel

M1_MONTHLY = REPO.parent / "shared" / "datasets" / "m1_monthly.csv"
M1_HORIZON = 18  # the competition's test period
SYNTHETIC_HORIZON = 13  # weekly panels, as benchmarks/scale.py
TARGET_M1_S = 15.0
TARGET_RATIO = 2.0


def trial_times(folder: Path, study_name: str) -> dict[str, Any]:
    """Seconds of every finished trial and the state counts, from the run's journal."""
    done = finished_trials(folder, study_name)
    seconds = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]
    pruned = sum(t.state.name == "PRUNED" for t in done)
    return {"seconds": seconds, "pruned": pruned}


def one(model: str, label: str, args: list[str], trials: int, seed: int, sets: list[str]):
    full = [*args, "--trials", str(trials), "--seed", str(seed), "--json"]
    for assignment in sets:
        full += ["--set", assignment]
    full = ["optimize", model, *full]

    def inspect(folder: Path, run) -> dict[str, Any]:
        doc = run.document
        if run.returncode != 0 or not doc:
            return {}
        return {**trial_times(folder, doc["models"][0]["study_name"]), "doc": doc["models"][0]}

    print(f"    {model} on {label}", file=sys.stderr, flush=True)
    run = run_mlf(full, inspect=inspect)
    found = run.extra.get("inspect") or {}
    seconds = found.get("seconds") or []
    doc = found.get("doc") or {}
    return {
        "model": model,
        "data": label,
        "command": shown(run.argv),
        "error": None if run.returncode == 0 else run.error_line(),
        "trials": len(seconds),
        "pruned": found.get("pruned", 0),
        "median_s": statistics.median(seconds) if seconds else float("nan"),
        "max_s": max(seconds) if seconds else float("nan"),
        "wall_s": run.wall_s,
        "rss_mib": run.max_rss_mib,
        "test_mape": (doc.get("test_metrics") or {}).get("mape", float("nan")),
        "test_wape": (doc.get("test_metrics") or {}).get("wape", float("nan")),
    }


def cut_costs(panel_file: Path, sizes: tuple[int, ...] = (24, 96), batch: int = 256) -> str:
    """Seconds of a trial's cuts at each window size: afresh, from a study's cache, per batch."""
    from mlforecast_cli.data.panel import Columns, load_panel
    from mlforecast_cli.data.split import split_panel
    from mlforecast_cli.data.windows import Draw, WindowCache, train_windows
    from mlforecast_cli.trials.fit import MAX_TRAIN_METRIC_WINDOWS, MAX_TRAIN_WINDOWS

    panel = load_panel(panel_file, Columns(COLUMNS["target"], COLUMNS["time"], (COLUMNS["id"],)))
    end = split_panel(panel, SYNTHETIC_HORIZON).folds[0].train_end
    steps = 50  # the nhits and nbeats spaces' steps_per_epoch

    def trial(cache: WindowCache, w: int) -> float:
        start = time.perf_counter()
        for samples in (MAX_TRAIN_WINDOWS, MAX_TRAIN_METRIC_WINDOWS):
            cache.train(end, w, SYNTHETIC_HORIZON, "window", Draw(samples, 42))
        cache.eval(end, w, SYNTHETIC_HORIZON, "window")
        return time.perf_counter() - start

    rows = []
    for w in sizes:
        fresh = statistics.median(trial(WindowCache(panel, 0), w) for _ in range(3))
        cache = WindowCache(panel)
        trial(cache, w)
        cached = statistics.median(trial(cache, w) for _ in range(3))
        start = time.perf_counter()
        for step in range(steps):  # through the public cut, which also lists every sample
            train_windows(panel, end, w, SYNTHETIC_HORIZON, draw=Draw(batch, step))
        per_batch = time.perf_counter() - start
        start = time.perf_counter()
        train_windows(panel, end, w, SYNTHETIC_HORIZON, draw=Draw(MAX_TRAIN_WINDOWS, 42))
        per_window = (time.perf_counter() - start) / MAX_TRAIN_WINDOWS
        rows.append(
            [
                w,
                fmt(fresh, 3),
                fmt(cached, 4),
                fmt(cache.nbytes / 2**20, 0),
                fmt(per_batch, 2),
                fmt(per_window * steps * batch, 3),
            ]
        )
    headers = ["window", "3 cuts afresh s", "from the cache s", "cache MiB"]
    headers += [f"{steps} batches of {batch} cut each s", "their samples alone s"]
    return table(headers, rows, "rrrrrr")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["nhits"])
    parser.add_argument("--series", type=int, default=30_000, help="generated panel size")
    parser.add_argument("--data", type=Path, default=M1_MONTHLY)
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cuts", action="store_true", help="time the window cuts only")
    opts = parser.parse_args(argv)
    if opts.cuts:
        with scratch("mlf-bench-cuts-") as folder:
            panel = write_panel(opts.series, folder / "panel.parquet", seed=opts.seed)
            print(machine_markdown(machine_info()) + "\n")
            print(cut_costs(panel))
        return 0
    if not opts.data.is_file():
        print(f"error: {opts.data} not found (M1 monthly, ../shared/datasets/)", file=sys.stderr)
        return 2

    started = time.perf_counter()
    runs = []
    m1 = ["--data", str(opts.data), "--target", "value", "--time-col", "date"]
    m1 += ["--id-col", "id", "--horizon", str(M1_HORIZON)]
    with scratch("mlf-bench-neural-") as folder:
        panel = write_panel(opts.series, folder / f"panel-{opts.series}.parquet", seed=opts.seed)
        generated = ["--data", str(panel), "--target", COLUMNS["target"]]
        generated += ["--time-col", COLUMNS["time"], "--id-col", COLUMNS["id"]]
        generated += ["--horizon", str(SYNTHETIC_HORIZON)]
        for model in opts.models:
            runs.append(one(model, "m1_monthly", m1, opts.trials, opts.seed, opts.assignments))
            label = f"{opts.series:,} generated"
            runs.append(one(model, label, generated, opts.trials, opts.seed, opts.assignments))
        for r in runs:
            r["command"] = r["command"].replace(str(folder), "$TMP")
            r["command"] = r["command"].replace(str(REPO.parent), "..")

    rows = [
        [
            r["model"],
            r["data"],
            f"{r['trials']} ({r['pruned']} pruned)",
            fmt(r["median_s"], 1),
            fmt(r["max_s"], 1),
            fmt(r["wall_s"], 0),
            fmt(r["rss_mib"], 0),
            fmt(r["test_mape"], 2),
            fmt(r["test_wape"], 2),
            r["error"] or "",
        ]
        for r in runs
    ]
    headers = ["model", "data", "trials", "median s/trial", "max s", "wall s", "peak RSS MiB"]
    print(machine_markdown(machine_info()) + "\n")
    print(table([*headers, "test MAPE %", "test WAPE %", "error"], rows, "llrrrrrrrl"))
    print()
    for model in opts.models:
        small, big = (r for r in runs if r["model"] == model)
        ratio = big["median_s"] / small["median_s"] if small["median_s"] else float("nan")
        met_small = small["median_s"] <= TARGET_M1_S
        met_ratio = ratio <= TARGET_RATIO
        print(
            f"**`{model}`**: {fmt(small['median_s'], 1)} s a median trial on M1 monthly "
            f"(target ≤ {TARGET_M1_S:.0f} s: {'met' if met_small else '**missed**'}); "
            f"{fmt(ratio, 2)}× that at {opts.series:,} series "
            f"(target ≤ {TARGET_RATIO:.0f}×: {'met' if met_ratio else '**missed**'})."
        )
    print("\nCommands (`$TMP/panel-N.parquet` is `python benchmarks/synthetic.py N`):\n")
    for r in runs:
        print("    " + r["command"])
    print(f"\nBenchmark time {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
