"""A run's fixed cost: `mlf optimize seasonal_naive` beside statsforecast's SeasonalNaive, and
what the final refit on the whole history costs a study.

The seasonal naive has nothing to search (one trial of a few milliseconds), so its wall time
is what every model's study pays outside its trials: imports, the MLflow store, the writer
process, the reference, the refit and the final refit, the held-out forecasts, the pyfunc
model, the plots. statsforecast's SeasonalNaive (``benchmarks/peers.py --fit seasonalnaive``)
gives the same forecast (the peers section checks it to 10 digits) in a process of its own.

Each run is a fresh process in a fresh folder (its own ``MLF_HOME`` and SQLite store);
``--repeats`` rounds alternate the systems, and the table shows the median, min and max wall
seconds and the median CPU seconds (user + sys of the process and its children: the MLflow
writer included), which say how much of the wall time was waiting for a busy machine. mlf
runs in a fresh folder (the MLflow store created by the run: its schema migrations) and in a
folder whose store exists (a user's every later run), then with one part off at a time.

The refit table runs ``--refit-models`` (default ``lightgbm``, ``--refit-trials`` trials) and
reads ``refit_seconds`` and ``final_refit_seconds`` from ``--json``.

    python benchmarks/fixed_cost.py [--repeats 3] [--data ../shared/datasets/m1_monthly.csv]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, fmt, isolated_env, load_average, mlf_argv, scratch, table  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "m1_monthly.csv"
HORIZON, SEASON, FREQ = 18, 12, "MS"


def timed(argv: list[str], folder: Path, env: dict[str, str] | None = None):
    """Run ``argv`` in ``folder`` (isolated env, plus ``env``): wall seconds, CPU seconds of it
    and its children, stdout; raises with the last stderr line if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        argv,
        cwd=folder,
        env={**isolated_env(folder), **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        lines = [x for x in done.stderr.splitlines() if x.strip()] or [f"exit {done.returncode}"]
        raise SystemExit(f"{' '.join(argv[:4])}... failed: {lines[-1]}")
    return wall, cpu, done.stdout


def mlf_optimize(data: Path, model: str, trials: int, *extra: str) -> list[str]:
    return [
        *mlf_argv(),
        "optimize",
        model,
        "--data",
        str(data),
        "--target",
        "value",
        "--time-col",
        "date",
        "--id-col",
        "id",
        "--horizon",
        str(HORIZON),
        "--trials",
        str(trials),
        "--seed",
        "42",
        "--json",
        *extra,
    ]


def create_store(folder: Path) -> None:
    """Create the folder's MLflow store (as a run before this one would have)."""
    code = "from mlflow.tracking import MlflowClient; MlflowClient().search_experiments()"
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=isolated_env(folder),
        check=True,
        capture_output=True,
    )


VARIANTS = (
    # label, create the store first, extra environment, extra arguments
    ("mlf seasonal_naive, fresh store", False, {}, ()),
    ("mlf seasonal_naive, existing store", True, {}, ()),
    (
        "... with the writer process (MLF_CHILD_RUNS=process)",
        True,
        {"MLF_CHILD_RUNS": "process"},
        (),
    ),
    ("... without the plots (MLF_PLOTS=0)", True, {"MLF_PLOTS": "0"}, ()),
    ("... without the final refit (--no-final-refit)", True, {}, ("--no-final-refit",)),
)
SECOND = "mlf seasonal_naive as a run's second model (theta first)"
"""The model's own cost once the run has paid the imports and the store (its study's seconds;
the wall and CPU columns are the whole run's, theta included)."""


def fixed_cost(data: Path, repeats: int) -> str:
    runs: dict[str, list[tuple[float, float, float | None]]] = {}
    for _ in range(repeats):
        for label, existing, env, extra in VARIANTS:
            with scratch("mlf-bench-fixed-") as folder:
                if existing:
                    create_store(folder)
                argv = mlf_optimize(data, "seasonal_naive", 1, *extra)
                wall, cpu, out = timed(argv, folder, env)
                runs.setdefault(label, []).append((wall, cpu, study_seconds(out)))
        with scratch("mlf-bench-fixed-") as folder:
            create_store(folder)
            argv = mlf_optimize(data, "theta", 1, "seasonal_naive", "--no-ensemble")
            wall, cpu, out = timed(argv, folder)
            runs.setdefault(SECOND, []).append((wall, cpu, study_seconds(out)))
        with scratch("mlf-bench-fixed-") as folder:
            train = write_train(data, folder / "train.csv")
            argv = [sys.executable, str(REPO / "benchmarks" / "peers.py"), "--fit"]
            argv += ["seasonalnaive", "--train", str(train), "--out", str(folder / "f.csv")]
            argv += ["--horizon", str(HORIZON), "--season", str(SEASON), "--freq", FREQ]
            runs.setdefault("statsforecast SeasonalNaive", []).append(
                timed(argv, folder)[:2] + (None,)
            )
    rows = []
    for name, values in runs.items():
        walls = [w for w, _, _ in values]
        own = [s for _, _, s in values if s is not None]
        rows.append(
            [
                name,
                fmt(statistics.median(walls)),
                fmt(min(walls)),
                fmt(max(walls)),
                fmt(statistics.median([c for _, c, _ in values])),
                fmt(statistics.median(own)) if own else "",
                len(values),
            ]
        )
    headers = ["system", "median wall s", "min", "max", "median CPU s", "model's study s", "runs"]
    return table(headers, rows)


def study_seconds(out: str) -> float | None:
    """The seasonal naive's study seconds in an ``mlf optimize --json`` document."""
    found = [m for m in json.loads(out)["models"] if m["model"] == "seasonal_naive"]
    return found[0]["seconds"] if found else None


def write_train(data: Path, path: Path) -> Path:
    """The data without each series' last ``HORIZON`` steps (what the peer fits on)."""
    import pandas as pd

    frame = pd.read_csv(data, dtype={"id": str})
    position = frame.groupby("id").cumcount(ascending=False)
    frame[position >= HORIZON].to_csv(path, index=False)
    return path


def refit_cost(data: Path, models: list[str], trials: int) -> str:
    rows = []
    for model in models:
        with scratch("mlf-bench-refit-") as folder:
            wall, _, out = timed(mlf_optimize(data, model, trials), folder)
        [found] = [m for m in json.loads(out)["models"] if m["model"] == model]
        rows.append(
            [
                model,
                trials,
                fmt(found["refit_seconds"]),
                fmt(found["final_refit_seconds"]),
                found["trained_on"],
                fmt(found["seconds"], 1),
                fmt(wall, 1),
            ]
        )
    headers = [
        "model",
        "trials",
        "refit s (train + valid, tested)",
        "final refit s (whole history)",
        "saved model fitted on",
        "study s",
        "wall s",
    ]
    return table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--refit-models", default="lightgbm", help="comma-separated; '' skips")
    parser.add_argument("--refit-trials", type=int, default=3)
    opts = parser.parse_args(argv)
    if not opts.data.is_file():
        raise SystemExit(f"{opts.data} not found: pass --data FILE (id, date, value)")
    print(f"load average at start: {load_average()}; cores: {os.cpu_count()}", flush=True)
    print(fixed_cost(opts.data, opts.repeats), flush=True)
    models = [m for m in opts.refit_models.split(",") if m]
    if models:
        print()
        print(refit_cost(opts.data, models, opts.refit_trials), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
