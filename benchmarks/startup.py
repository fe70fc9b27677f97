"""Start-up: wall time of light ``mlf`` commands against bare Python and ``import mlflow``.

Each command runs ``--repeats`` times (10 by default) as a fresh process after one unmeasured
warm-up run (file cache); the table gives the median, the fastest and the slowest.

    python benchmarks/run.py --only startup [--repeats 10]
"""

from __future__ import annotations

import argparse
import sys
import time

from common import REPO, Section, isolated_env, median, mlf_argv, run_process, scratch, table

TARGET_NOTE = (
    "`mlf --help` and `mlf list-models` must not import torch, mlflow or a tree library "
    "(DESIGN.md), so they should sit far below `import mlflow`."
)


def commands() -> list[tuple[str, list[str]]]:
    mlf = mlf_argv()
    return [
        ('python -c "pass"', [sys.executable, "-c", "pass"]),
        ('python -c "import mlflow"', [sys.executable, "-c", "import mlflow"]),
        ("mlf --help", [*mlf, "--help"]),
        ("mlf list-models", [*mlf, "list-models"]),
        ("mlf show-space lstm", [*mlf, "show-space", "lstm"]),
    ]


def measure(argv: list[str], repeats: int) -> tuple[list[float], str | None]:
    """Wall seconds of ``repeats`` runs (after one warm-up) and the error of a failed run."""
    times: list[float] = []
    with scratch("mlf-bench-startup-") as folder:
        env = isolated_env(folder)
        for k in range(repeats + 1):
            started = time.perf_counter()
            code, _, err, *_ = run_process(argv, cwd=REPO, env=env, timeout=120, memory=False)
            seconds = time.perf_counter() - started
            if code != 0:
                lines = [line for line in err.splitlines() if line.strip()]
                return times, lines[-1] if lines else f"exit code {code}"
            if k:
                times.append(seconds)
    return times, None


def section(opts: argparse.Namespace) -> Section:
    started = time.perf_counter()
    repeats = opts.repeats or (5 if opts.quick else 10)
    rows = []
    medians: dict[str, float] = {}
    base = None
    for label, argv in commands():
        times, error = measure(argv, repeats)
        if error:
            rows.append([f"`{label}`", "–", "–", "–", "–", f"failed: {error}"])
            continue
        m = median(times)
        medians[label] = m
        if base is None:
            base = m
        rows.append(
            [
                f"`{label}`",
                f"{m * 1000:.0f}",
                f"{min(times) * 1000:.0f}",
                f"{max(times) * 1000:.0f}",
                f"{(m - base) * 1000:+.0f}",
                "",
            ]
        )
    body = "\n\n".join(
        [
            f"Median wall time of {repeats} runs of each command (fresh process each, after one "
            "warm-up run). " + TARGET_NOTE,
            table(
                ["command", "median ms", "min ms", "max ms", "vs python -c pass", "note"],
                rows,
                "lrrrrl",
            ),
        ]
    )
    return Section(
        "startup",
        "Start-up",
        body,
        time.perf_counter() - started,
        {"median_ms": {k: round(v * 1000) for k, v in medians.items()}},
    )
