"""Scale curve: seconds per trial and peak memory of ``mlf optimize`` as the panel grows.

Generated sales-like weekly panels (``synthetic.py``: level, trend, yearly season, noise,
intermittent zeros, mixed lengths, new series) of 100, 1,000, 10,000 and 30,000 series × 150
weeks, horizon 13. For each size and model, one ``mlf optimize MODEL --trials N`` in a fresh
folder; the median trial time is read back from the study's journal, the peak memory is the
command's (``wait4``) and that of all its processes together (sampled). The growth exponent
is the slope of log(seconds per trial) against log(series): 1 is linear in the panel.

    python benchmarks/run.py --only scale [--scale-sizes 100,1000] [--scale-models lightgbm]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from common import Section, fmt, run_mlf, scratch, shown, table
from scaling import study_rates
from synthetic import COLUMNS, write_panel

SIZES = (100, 1_000, 10_000, 30_000)
QUICK_SIZES = (100, 1_000)
MODELS = ("lightgbm", "lstm")
TRIALS = 10
QUICK_TRIALS = 3
HORIZON = 13
NEURAL_CAPS = ("max_seconds=60",)
"""The neural model's fit is capped so that a trial on 30,000 series ends in minutes; its
seconds per trial then show the cap, its memory the real cost of the panel."""
MEMORY_TARGET_MIB = 6 * 1024
"""30,000 series must finish a 10-trial study under 6 GiB."""


def one(model: str, data: Path, trials: int, seed: int, timeout: float | None) -> dict:
    args = ["optimize", model, "--data", str(data), "--target", COLUMNS["target"]]
    args += ["--time-col", COLUMNS["time"], "--id-col", COLUMNS["id"]]
    args += ["--horizon", str(HORIZON), "--trials", str(trials), "--seed", str(seed), "--json"]
    if model in ("lstm", "tcn", "transformer"):
        for cap in NEURAL_CAPS:
            args += ["--set", cap]

    def inspect(folder: Path, run) -> dict[str, Any]:
        doc = run.document
        if run.returncode != 0 or not doc:
            return {}
        return study_rates(folder, doc["models"][0]["study_name"])

    run = run_mlf(args, inspect=inspect, timeout=timeout)
    rates = run.extra.get("inspect") or {}
    return {
        "model": model,
        "command": shown(run.argv).replace(str(data.parent), "$TMP"),
        "ok": run.returncode == 0 and bool(rates.get("trials")),
        "error": None if run.returncode == 0 else run.error_line(),
        "wall_s": run.wall_s,
        "rss_mib": run.max_rss_mib,
        "total_mib": run.total_rss_mib,
        "trials": rates.get("trials", 0),
        "trial_median_s": rates.get("trial_median_s", float("nan")),
    }


def exponent(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of log(seconds) on log(series)."""
    pts = [(math.log(n), math.log(s)) for n, s in points if s > 0 and s == s]
    if len(pts) < 2:
        return float("nan")
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else float("nan")


def section(opts: argparse.Namespace) -> Section:
    started = time.perf_counter()
    sizes = opts.scale_sizes or (QUICK_SIZES if opts.quick else SIZES)
    models = opts.scale_models or list(MODELS)
    trials = opts.scale_trials or (QUICK_TRIALS if opts.quick else TRIALS)
    runs: list[dict] = []
    with scratch("mlf-bench-scale-") as folder:
        for n in sizes:
            data = write_panel(n, folder / f"panel-{n}.parquet", seed=opts.seed)
            for model in models:
                print(f"    scale: {model} on {n} series", file=sys.stderr, flush=True)
                run = one(model, data, trials, opts.seed, opts.scale_timeout)
                runs.append({"series": n, **run})
            data.unlink()
    rows, lines, summary = [], [], {"models": {}}
    for r in runs:
        rows.append(
            [
                r["model"],
                f"{r['series']:,}",
                f"{r['trials']}" if r["ok"] else "–",
                fmt(r["trial_median_s"], 2),
                fmt(r["wall_s"], 0),
                fmt(r["rss_mib"], 0),
                fmt(r["total_mib"], 0),
                r["error"] or "",
            ]
        )
    for model in models:
        mine = [r for r in runs if r["model"] == model and r["ok"]]
        slope = exponent([(r["series"], r["trial_median_s"]) for r in mine])
        biggest = max(mine, key=lambda r: r["series"], default=None)
        entry: dict[str, Any] = {"exponent": round(slope, 2) if slope == slope else None}
        text = f"**`{model}`**: seconds per trial grow as series^{fmt(slope, 2)}"
        if biggest is not None:
            peak = max(biggest["rss_mib"], _num(biggest["total_mib"]))
            entry.update(series=biggest["series"], peak_mib=round(peak))
            text += f"; {biggest['series']:,} series peak at {peak:,.0f} MiB"
            if biggest["series"] >= 30_000:
                met = peak < MEMORY_TARGET_MIB
                entry["met"] = met
                text += f" (target < 6 GiB: {'met' if met else '**missed**'})"
        summary["models"][model] = entry
        lines.append(text + ".")
    commands = "\n".join(f"    {r['command']}" for r in runs)
    body = "\n\n".join(
        [
            f"Generated weekly panels (`benchmarks/synthetic.py`, seed {opts.seed}: 70 % of the "
            "series span 150 weeks, 20 % start later, 10 % are new with 20–103 weeks; 15 % are "
            f"slow movers with zeros), horizon {HORIZON}, {trials} trials per run, one run per "
            f"model and size in a fresh folder. Neural caps: {', '.join(NEURAL_CAPS)}.",
            table(
                [
                    "model",
                    "series",
                    "trials",
                    "median s/trial",
                    "wall s",
                    "peak RSS MiB",
                    "all processes MiB",
                    "error",
                ],
                rows,
                "lrrrrrrl",
            ),
            *lines,
            "Commands (`$TMP/panel-N.parquet` is `python benchmarks/synthetic.py N`):\n\n"
            + commands,
        ]
    )
    return Section("scale", "Scale curve", body, time.perf_counter() - started, summary)


def _num(value: float) -> float:
    return value if value == value else 0.0
