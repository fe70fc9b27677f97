"""Search lstm, tcn and transformer on the built-in Walmart data; print the table of docs/neural.md.

Runs ``mlf optimize lstm tcn transformer seasonal_naive --trials N --json`` in a temporary
folder (its own Optuna journal and MLflow store), then reads the studies back for the time of
each trial and how many were pruned. Usage::

    python benchmarks/torch_models.py [--trials 20] [--models lstm tcn] [--set KEY=VALUE ...]

Takes long: 36 minutes for 20 trials of each model on two busy CPU cores (docs/neural.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAIVE_LAST_VALUE = 18.83  # test MAPE of the last-value forecast (dataset card of walmart)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=["lstm", "tcn", "transformer"])
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    models = [*args.models, "seasonal_naive"]
    command = ["mlf", "optimize", *models, "--trials", str(args.trials), "--seed", str(args.seed)]
    for assignment in args.assignments:
        command += ["--set", assignment]
    with tempfile.TemporaryDirectory(prefix="mlf-torch-bench-") as folder:
        env = {**os.environ, "MLF_HOME": str(Path(folder) / ".mlf")}
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "mlforecast_cli", *command[1:], "--json"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
            return done.returncode
        document = json.loads(done.stdout)
        journal = Path(folder) / ".mlf" / "optuna.journal"
        rows = [_row(model, journal) for model in document["models"]]

    print(f"Command: `{' '.join(command)}` (built-in walmart data, horizon 13)  ")
    print(
        f"Machine: {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"torch {_torch_version()}; wall time {wall / 60:.1f} min for the whole command.\n"
    )
    print(
        "| model | test MAPE % | best val MAPE % | trials ✓ / ✂ pruned / ✗ | "
        "s per trial (median, max) | epochs kept (best trial) | model total |"
    )
    print("|---|---:|---:|---|---|---:|---:|")
    for r in sorted(rows, key=lambda r: r["test"] if r["test"] is not None else 1e9):
        print(
            f"| {r['model']} | {_fmt(r['test'])} | {_fmt(r['val'])} | {r['counts']} | "
            f"{r['per_trial']} | {r['epochs']} | {r['total']:.0f} s |"
        )
    print(f"| naive (last value), from the dataset card | {NAIVE_LAST_VALUE:.2f} | | | | | |")
    return 0


def _row(model: dict, journal: Path) -> dict:
    import optuna

    from mlforecast_cli.services.storage import open_storage

    storage = open_storage(f"journal:///{journal}")
    study = optuna.load_study(study_name=model["study_name"], storage=storage)
    trials = study.get_trials(deepcopy=False)
    seconds = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in trials
        if t.datetime_complete is not None and t.datetime_start is not None
    ]
    c = model["trials"]
    best = model.get("best_params") or {}
    return {
        "model": model["model"],
        "test": (model.get("test_metrics") or {}).get("mape"),
        "val": model.get("best_value"),
        "counts": f"{c.get('complete', 0)} / {c.get('pruned', 0)} / {c.get('fail', 0)}",
        "per_trial": (f"{statistics.median(seconds):.1f}, {max(seconds):.1f}" if seconds else "-"),
        "epochs": best.get("epochs", "-"),
        "total": model["seconds"],
    }


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _torch_version() -> str:
    try:
        import torch
    except ImportError:
        return "not installed"
    return torch.__version__


if __name__ == "__main__":
    raise SystemExit(main())
