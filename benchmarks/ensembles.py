"""Ensembles and intervals: `mlf optimize` then `mlf ensemble` on M1 monthly and Walmart.

For each panel, in a fresh folder with its own MLflow store, runs the models' studies and
the greedy ensemble, then prints one markdown table per panel: each member's weight,
validation and test MAPE, and the test coverage of its 80 and 95 % intervals and MSIS at
95 %, with the ensemble's row. The tables of docs/ensembles.md come from it.

    python benchmarks/ensembles.py                          # 30 trials, both panels
    python benchmarks/ensembles.py --trials 3 --panels walmart --cv-windows 3
    python benchmarks/ensembles.py --panels walmart --ensemble-windows 1   # weights on 1 window
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, fmt, run_mlf, scratch, shown, table  # noqa: E402

MODELS = ("ets", "theta", "lightgbm", "catboost", "seasonal_naive")
PANELS = {
    "m1_monthly": (
        ["--target", "value", "--time-col", "date", "--id-col", "id", "--horizon", "18"],
        "m1_monthly",
    ),
    "walmart": ([], "walmart_sales_forecasting"),
}
"""Panel name: the data flags (after ``--data FILE`` for a file) and its MLflow experiment."""


def rows(uri: str, experiment: str, run_id: str) -> list[list[str]]:
    """One row per member study and one for the ensemble run ``run_id``, best test first."""
    import json

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], filter_string="tags.`mlf.role` = 'study'")
    ensemble = client.get_run(run_id)
    weights = json.loads(ensemble.data.params["members"])
    chosen = [r for r in runs if r.data.params["model"] != "ensemble"] + [ensemble]
    chosen.sort(key=lambda r: r.data.metrics.get("test_MAPE", float("inf")))
    out = []
    for run in chosen:
        m, model = run.data.metrics, run.data.params["model"]
        weight = "" if model == "ensemble" else fmt(weights.get(model, 0.0))
        out.append(
            [
                "**ensemble** (greedy)" if model == "ensemble" else model,
                weight,
                fmt(m.get("best_val_MAPE")),
                fmt(m.get("test_MAPE")),
                fmt(m.get("test_coverage_80"), 1),
                fmt(m.get("test_coverage_95"), 1),
                fmt(m.get("test_MSIS_95")),
            ]
        )
    return out


def panel_table(
    name: str, data_dir: Path, trials: int, cv_windows: int, ensemble_windows: int
) -> str:
    flags, experiment = PANELS[name]
    data = [] if name == "walmart" else ["--data", str(data_dir / f"{name}.csv")]
    optimize = ["optimize", *MODELS, "--trials", str(trials), *data, *flags]
    optimize += ["--cv-windows", str(cv_windows), "--ensemble-windows", str(ensemble_windows)]
    optimize += ["--quiet"]
    with scratch() as folder:
        done = run_mlf(optimize, folder=folder)
        if done.returncode != 0:
            return f"{shown(done.argv)} failed: {done.error_line()}"
        made = run_mlf(["ensemble", "--experiment", experiment, "--json"], folder=folder)
        if made.returncode != 0 or made.document is None:
            return f"{shown(made.argv)} failed: {made.error_line()}"
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        headers = ["model", "weight", "val MAPE", "test MAPE", "cov. 80 %", "cov. 95 %", "MSIS 95"]
        found = rows(uri, experiment, made.document["run_id"])
    return (
        f"{shown(done.argv)}  ({done.wall_s:.0f} s)\n"
        f"{shown(made.argv)}  ({made.wall_s:.0f} s)\n\n{table(headers, found, 'lrrrrrr')}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--cv-windows", type=int, default=1)
    parser.add_argument("--ensemble-windows", type=int, default=3)
    parser.add_argument("--panels", default="m1_monthly,walmart", help="comma list")
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "datasets",
        help="folder of m1_monthly.csv (../shared/datasets)",
    )
    args = parser.parse_args(argv)
    for name in args.panels.split(","):
        if name not in PANELS:
            parser.error(f"unknown panel {name!r}; choose among {', '.join(PANELS)}")
        found = panel_table(name, args.data, args.trials, args.cv_windows, args.ensemble_windows)
        print(f"## {name}\n\n{found}\n")


if __name__ == "__main__":
    main()
