"""Memory: peak resident memory of an ``mlf optimize`` run of each model family.

Each model runs alone (``--n-jobs 1``, a few trials, built-in Walmart data) in a fresh folder;
the peak is ``ru_maxrss`` of that process from ``wait4`` (the whole run: imports, search,
refit, MLflow model logging, plots). ``mlf --help`` and ``python -c "import mlflow"`` give the
floor every run pays.

    python benchmarks/run.py --only memory [--memory-trials 5] [--models lightgbm lstm]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from common import (
    REPO,
    Section,
    fmt,
    isolated_env,
    mlf_argv,
    run_mlf,
    run_process,
    scratch,
    table,
)

FAMILY_ORDER = ("baseline", "tree", "neural")
QUICK_PICK = {"baseline": "seasonal_naive", "tree": "lightgbm", "neural": "lstm"}
NEURAL_CAPS = ("epochs=5", "max_seconds=20")
"""Torch models train for at most this long per fit here: memory is reached in the first
epoch, and a full search would only take longer."""


def ready_models() -> list[dict]:
    """``mlf list-models --json``: every installed model with its family and status."""
    with scratch("mlf-bench-list-") as folder:
        code, out, err, *_ = run_process(
            [*mlf_argv(), "list-models", "--json"], cwd=folder, env=isolated_env(folder)
        )
    if code != 0:
        sys.exit(f"mlf list-models failed: {err.strip()[-500:]}")
    return [m for m in json.loads(out)["models"] if m.get("status") == "ready"]


def floor(argv: list[str]) -> float:
    with scratch("mlf-bench-mem-") as folder:
        _, _, _, _, rss, _ = run_process(argv, cwd=REPO, env=isolated_env(folder), timeout=120)
    return rss


def section(opts: argparse.Namespace) -> Section:
    started = time.perf_counter()
    trials = opts.memory_trials or 3
    models = ready_models()
    if opts.models:
        models = [m for m in models if m["name"] in opts.models]
    elif opts.quick:
        models = [m for m in models if QUICK_PICK.get(m["family"]) == m["name"]]
    models.sort(
        key=lambda m: (
            FAMILY_ORDER.index(m["family"]) if m["family"] in FAMILY_ORDER else 9,
            m["name"],
        )
    )
    rows = [
        [
            "–",
            '`python -c "import mlflow"`',
            f"{floor([sys.executable, '-c', 'import mlflow']):.0f}",
        ]
        + ["", "", ""],
        ["–", "`mlf --help`", f"{floor([*mlf_argv(), '--help']):.0f}", "", "", ""],
    ]
    peaks: dict[str, float] = {}
    totals: dict[str, float | None] = {}
    for m in models:
        args = ["optimize", m["name"], "--trials", str(trials), "--seed", str(opts.seed), "--json"]
        note = ""
        if m["family"] == "neural":
            for assignment in NEURAL_CAPS:
                args += ["--set", assignment]
            note = "capped: " + ", ".join(NEURAL_CAPS)
        run = run_mlf(args, timeout=1800)
        if run.returncode != 0:
            note = f"failed: {run.error_line()}"
        peaks[m["name"]] = round(run.max_rss_mib)
        totals[m["name"]] = (
            round(run.total_rss_mib) if run.total_rss_mib == run.total_rss_mib else None
        )
        rows.append(
            [
                m["family"],
                f"`mlf optimize {m['name']} --trials {trials}`",
                f"{run.max_rss_mib:.0f}",
                fmt(run.total_rss_mib, 0),
                f"{run.wall_s:.0f}",
                note,
            ]
        )
    body = "\n\n".join(
        [
            f"Peak resident memory of one `mlf optimize` run per model on the built-in Walmart "
            f"data, {trials} trials, `--n-jobs 1`, fresh folder each; the whole run is measured "
            "(imports, search, refit, MLflow model, plots). peak RSS = ru_maxrss of the command's "
            "process; with writer = the command and its MLflow writer process together (their "
            "proportional set sizes, so shared pages count once; sampled every 0.1 s).",
            table(
                ["family", "command", "peak RSS MiB", "with writer MiB", "wall s", "note"],
                rows,
                "llrrrl",
            ),
        ]
    )
    summary = {"peak_rss_mib": peaks, "with_writer_mib": totals}
    return Section("memory", "Memory", body, time.perf_counter() - started, summary)
