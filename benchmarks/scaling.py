"""Parallel scaling: trials per minute of ``mlf optimize`` with --n-jobs 1 and 2.

Two workloads on the built-in Walmart data: ``lightgbm`` (trials of ~0.1 s, where the
per-trial bookkeeping weighs most) and ``random_forest`` (trials of ~1 s). For each, both runs
search the same number of trials, each in a fresh folder (a new study). The rate is read back
from the study itself: finished trials over the time from the first trial's start to the last
one's end, so the process start-up, the data loading and the refit (the same in both runs) are
left out. The steady rate adds up, per worker process, its trials over its own busy time (it
leaves out the second worker's start-up, which a long search makes negligible).

    python benchmarks/run.py --only scaling [--scaling-models lightgbm:300,random_forest:60]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from common import Section, finished_trials, fmt, load_average, run_mlf, shown, table

TARGET = 1.8
PINNED = {
    "lightgbm": (
        "window_size=14",
        "n_estimators=400",
        "num_leaves=31",
        "max_depth=8",
        "learning_rate=0.03",
        "subsample=0.8",
        "colsample_bytree=0.8",
    ),
    "random_forest": (
        "window_size=14",
        "n_estimators=60",
        "max_depth=10",
        "max_features=0.5",
        "max_samples=0.7",
    ),
}
"""What sets a trial's cost is pinned (``--set``), the regularisation is still searched: the
two runs sample different trials (the worker has its own seed, and each process's sampler sees
the other's trials), so an unpinned search compares different workloads — random_forest trials
took a median 0.9 s in one run and 2.3 s in the other."""
MODELS = "lightgbm:300,random_forest:60"
QUICK_MODELS = "lightgbm:24,random_forest:6"


def study_rates(folder: Path, study_name: str) -> dict[str, Any]:
    """Trials, span and rates of ``study_name`` in the journal of the run in ``folder``."""
    from mlforecast_cli.services.liveness import WORKER_ATTR

    done = finished_trials(folder, study_name)
    if not done:
        return {"trials": 0}
    durations = sorted((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    first = min(t.datetime_start for t in done)
    last = max(t.datetime_complete for t in done)
    span = (last - first).total_seconds()
    by_pid: dict[Any, list] = {}
    for t in done:
        by_pid.setdefault((t.user_attrs.get(WORKER_ATTR) or {}).get("pid"), []).append(t)
    steady = 0.0
    processes = []
    for trials in by_pid.values():
        a = min(t.datetime_start for t in trials)
        b = max(t.datetime_complete for t in trials)
        busy = (b - a).total_seconds()
        if busy > 0:
            steady += 60 * len(trials) / busy
        processes.append(
            {
                "trials": len(trials),
                "from_s": (a - first).total_seconds(),
                "to_s": (b - first).total_seconds(),
            }
        )
    processes.sort(key=lambda p: p["from_s"])
    return {
        "trials": len(done),
        "span_s": span,
        "per_min": 60 * len(done) / span if span > 0 else float("nan"),
        "steady_per_min": steady,
        "trial_median_s": durations[len(durations) // 2],
        "processes": processes,
        "lag_s": processes[-1]["from_s"],
    }


def timeline(processes: list[dict]) -> str:
    """Who ran what when, in seconds from the first trial's start."""
    return "; ".join(
        f"process {k + 1}: {p['trials']} trials, {p['from_s']:.1f}–{p['to_s']:.1f} s"
        for k, p in enumerate(processes)
    )


def one(model: str, n_jobs: int, trials: int, seed: int) -> dict[str, Any]:
    args = [
        "optimize",
        model,
        *(arg for pin in PINNED.get(model, ()) for arg in ("--set", pin)),
        "--trials",
        str(trials),
        "--n-jobs",
        str(n_jobs),
        "--seed",
        str(seed),
        "--json",
    ]

    def inspect(folder: Path, run) -> dict[str, Any]:
        doc = run.document
        if run.returncode != 0 or not doc:
            return {}
        return study_rates(folder, doc["models"][0]["study_name"])

    load = load_average()
    run = run_mlf(args, inspect=inspect, timeout=3600)
    rates = run.extra.get("inspect") or {}
    return {
        "model": model,
        "n_jobs": n_jobs,
        "command": shown(run.argv),
        "ok": run.returncode == 0 and bool(rates.get("trials")),
        "error": None if run.returncode == 0 else run.error_line(),
        "wall_s": run.wall_s,
        "load": load,
        **rates,
    }


def workloads(spec: str) -> list[tuple[str, int]]:
    """``model:trials,...`` → [(model, trials), ...]."""
    out = []
    for item in spec.split(","):
        model, _, trials = item.strip().partition(":")
        out.append((model, int(trials or 100)))
    return out


def section(opts: argparse.Namespace) -> Section:
    started = time.perf_counter()
    spec = opts.scaling_models or (QUICK_MODELS if opts.quick else MODELS)
    rows = []
    lines = []
    summary: dict[str, Any] = {"models": {}}
    all_runs = []
    for model, trials in workloads(spec):
        runs = [one(model, n, trials, opts.seed) for n in (1, 2)]
        all_runs += runs
        for r in runs:
            if not r["ok"]:
                rows.append(
                    [f"`{r['command']}`", "–", "–", "–", "–", "–", "–", r["load"], r["error"]]
                )
                continue
            rows.append(
                [
                    f"`{r['command']}`",
                    r["trials"],
                    f"{r['trial_median_s']:.2f}",
                    f"{r['span_s']:.1f}",
                    f"{r['per_min']:.1f}",
                    f"{r['steady_per_min']:.1f}",
                    f"{r['wall_s']:.1f}",
                    r["load"],
                    timeline(r["processes"]),
                ]
            )
        if not all(r["ok"] for r in runs):
            continue
        ratio = runs[1]["per_min"] / runs[0]["per_min"]
        steady = runs[1]["steady_per_min"] / runs[0]["steady_per_min"]
        summary["models"][model] = {
            "trials": trials,
            "ratio": round(ratio, 2),
            "steady_ratio": round(steady, 2),
            "trial_median_s": round(runs[0]["trial_median_s"], 3),
            "lag_s": round(runs[1]["lag_s"], 2),
            "met": ratio >= TARGET,
        }
        verdict = "met" if ratio >= TARGET else "**missed**"
        lines.append(
            f"**`{model}` (median trial {runs[0]['trial_median_s']:.2f} s): {ratio:.2f}×** "
            f"over the whole search ({steady:.2f}× at the steady rate; the worker's first trial "
            f"started {runs[1]['lag_s']:.1f} s after the first one); target ≥ {TARGET}×: "
            f"{verdict}."
        )
    if any(not m["met"] for m in summary["models"].values()):
        lines.append(
            "Where the time goes: with one job the second core is free for the command's MLflow "
            "writer process (each trial's child run costs it 15–25 ms of SQLAlchemy, see the "
            "overhead section); with two jobs that work, the worker's start-up and the shared "
            "journal's reads compete with two trials for the two cores. A trial of ~0.1 s "
            "cannot hide 15–25 ms of bookkeeping on a busy core; a trial of ~1 s can."
        )
    body = "\n\n".join(
        [
            f"Built-in Walmart data, fresh study per run, seed {opts.seed}. The parameters "
            "that set a trial's cost are pinned with `--set` (in the commands below) and the "
            "regularisation is searched: the worker process has its own seed and each "
            "process's sampler sees the other's trials, so an unpinned search would compare "
            "different workloads (random_forest trials took a median 0.9 s in one run, 2.3 s in "
            "the other). Rate = finished trials / (last trial end − first "
            "trial start); steady = sum over worker processes of their trials / their own "
            "busy time; wall = the whole command (start-up, search, refit, MLflow model).",
            table(
                [
                    "command",
                    "trials",
                    "median s/trial",
                    "search s",
                    "trials/min",
                    "steady trials/min",
                    "wall s",
                    "load avg before",
                    "note",
                ],
                rows,
                "lrrrrrrll",
            ),
            *lines,
        ]
    )
    summary["runs"] = [
        {k: (fmt(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in all_runs
    ]
    return Section("scaling", "Parallel scaling", body, time.perf_counter() - started, summary)
