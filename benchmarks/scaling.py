"""Parallel scaling: trials per minute of ``mlf optimize lightgbm`` with --n-jobs 1 and 2.

Both runs search the same number of trials on the built-in Walmart data, each in a fresh
folder (a new study). The rate is read back from the study itself: finished trials over the
time from the first trial's start to the last one's end, so the process start-up, the data
loading and the refit (the same in both runs) are left out. The steady rate adds up, per
worker process, its trials over its own busy time (it leaves out the second worker's start-up,
which a long search makes negligible).

    python benchmarks/run.py --only scaling [--scaling-trials 100]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from common import Section, fmt, load_average, run_mlf, shown, table

TARGET = 1.8
MODEL = "lightgbm"


def study_rates(folder: Path, study_name: str) -> dict[str, Any]:
    """Trials, span and rates of ``study_name`` in the journal of the run in ``folder``."""
    import optuna

    from mlforecast_cli.runner import WORKER_ATTR
    from mlforecast_cli.storage import JOURNAL_FILE, open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(f"journal:///{folder / '.mlf' / JOURNAL_FILE}")
    study = optuna.load_study(study_name=study_name, storage=storage)
    done = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and t.datetime_start and t.datetime_complete
    ]
    if not done:
        return {"trials": 0}
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
        "processes": processes,
        "lag_s": processes[-1]["from_s"],
    }


def timeline(processes: list[dict]) -> str:
    """Who ran what when, in seconds from the first trial's start."""
    return "; ".join(
        f"process {k + 1}: {p['trials']} trials, {p['from_s']:.1f}–{p['to_s']:.1f} s"
        for k, p in enumerate(processes)
    )


def one(n_jobs: int, trials: int, seed: int) -> dict[str, Any]:
    args = [
        "optimize",
        MODEL,
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
        "n_jobs": n_jobs,
        "command": shown(run.argv),
        "ok": run.returncode == 0 and bool(rates.get("trials")),
        "error": None if run.returncode == 0 else run.error_line(),
        "wall_s": run.wall_s,
        "load": load,
        **rates,
    }


def section(opts: argparse.Namespace) -> Section:
    started = time.perf_counter()
    trials = opts.scaling_trials or (24 if opts.quick else 100)
    runs = [one(n, trials, opts.seed) for n in (1, 2)]
    rows = []
    for r in runs:
        if not r["ok"]:
            rows.append([f"`{r['command']}`", "–", "–", "–", "–", "–", r["load"], r["error"]])
            continue
        rows.append(
            [
                f"`{r['command']}`",
                r["trials"],
                f"{r['span_s']:.1f}",
                f"{r['per_min']:.1f}",
                f"{r['steady_per_min']:.1f}",
                f"{r['wall_s']:.1f}",
                r["load"],
                timeline(r["processes"]),
            ]
        )
    summary: dict[str, Any] = {"trials": trials}
    lines = []
    if all(r["ok"] for r in runs):
        ratio = runs[1]["per_min"] / runs[0]["per_min"]
        steady = runs[1]["steady_per_min"] / runs[0]["steady_per_min"]
        verdict = "met" if ratio >= TARGET else "**missed**"
        summary.update(ratio=round(ratio, 2), steady_ratio=round(steady, 2), met=ratio >= TARGET)
        lines.append(
            f"**Speed-up with 2 jobs: {ratio:.2f}×** over the whole search "
            f"({steady:.2f}× at the steady rate); target ≥ {TARGET}×: {verdict}."
        )
        if ratio < TARGET:
            two = runs[1]["processes"]
            lag = runs[1]["lag_s"]
            lines.append(
                "Where the time goes (timeline in the table): the processes pull trials until "
                f"the study holds them all ({' + '.join(str(p['trials']) for p in two)} here); "
                f"the worker process started its first trial {lag:.1f} s after the first one "
                "(Python start-up, imports, the MLflow store, the data), time the first process "
                f"works alone. At the steady rate two processes gave {steady:.2f}×: both cores "
                "also carry each process's MLflow thread (its CPU per trial is in the overhead "
                "section) and whatever else the machine runs (load average in the table)."
            )
    body = "\n\n".join(
        [
            f"`{MODEL}` on the built-in Walmart data, {trials} trials per run, fresh study each, "
            f"seed {opts.seed}. Rate = finished trials / (last trial end − first trial start); "
            "steady = sum over worker processes of their trials / their own busy time; wall = "
            "the whole command (start-up, search, refit, MLflow model).",
            table(
                [
                    "command",
                    "trials",
                    "search s",
                    "trials/min",
                    "steady trials/min",
                    "wall s",
                    "load avg before",
                    "note",
                ],
                rows,
                "lrrrrrll",
            ),
            *lines,
        ]
    )
    summary["runs"] = [
        {k: (fmt(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in runs
    ]
    return Section("scaling", "Parallel scaling", body, time.perf_counter() - started, summary)
