"""The statistical models (ets, theta, arima) in mlf against statsforecast run directly.

For each panel and model: statsforecast's automatic model (``AutoETS``, ``AutoTheta``,
``AutoARIMA``, the season length of the data) fit directly on every series but its last
``horizon`` values and scored on them with mlf's own metric functions; then ``mlf optimize``
with the model's space fixed to the same automatic model (nothing to search: one trial), and
``mlf optimize`` searching the space (``--trials N``). Wall times include everything each
command does (for mlf: loading the data, the validation fold, the refit, MLflow tracking).

    python benchmarks/stats.py                       # M1 quarterly, M1 monthly, Walmart
    python benchmarks/stats.py --panels m1_quarterly --models ets --trials 10
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from common import REPO, fmt, run_mlf, shown, table

SHARED = REPO.parent / "shared" / "datasets"
AUTOMATIC = {
    "ets": ["error=Z", "trend=Z", "season=Z", "damped=auto"],
    "theta": ["variant=auto", "decomposition=multiplicative"],
    "arima": [
        "max_p=5",
        "max_q=5",
        "max_P=2",
        "max_Q=2",
        "max_d=2",
        "seasonal=true",
        "approximation=false",
        "nmodels=94",
    ],
}
"""--set flags that fix each model's space to statsforecast's defaults (nothing searched)."""


@dataclass(frozen=True)
class Panel:
    name: str
    horizon: int
    file: str | None  # in ../shared/datasets; None: the built-in walmart data

    def flags(self) -> list[str]:
        if self.file is None:
            return ["--dataset", self.name, "--horizon", str(self.horizon)]
        path = str(SHARED / self.file)
        return ["--data", path, "--target", "value", "--time-col", "date", "--id-col", "id",
                "--horizon", str(self.horizon)]  # fmt: skip


PANELS = {
    "m1_quarterly": Panel("m1_quarterly", 8, "m1_quarterly.csv"),
    "m1_monthly": Panel("m1_monthly", 18, "m1_monthly.csv"),
    "walmart": Panel("walmart", 13, None),
}


def direct(panel: Panel, model: str, n_jobs: int) -> tuple[float, float]:
    """(test MAPE, seconds) of statsforecast's automatic model run directly on the split."""
    import numpy as np
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    from mlforecast_cli.data.panel import Columns, load_panel
    from mlforecast_cli.datasets import load_dataset
    from mlforecast_cli.search.metrics import mape

    if panel.file is None:
        data = load_dataset(panel.name)
    else:
        import pandas as pd

        frame = pd.read_csv(SHARED / panel.file)
        data = load_panel(frame, Columns(target="value", time="date", ids=("id",)))
    h, m = panel.horizon, data.season_length
    cls = {"ets": AutoETS, "theta": AutoTheta, "arima": AutoARIMA}[model]
    import pandas as pd

    train = pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(data.n_series), data.lengths - h),
            "ds": np.concatenate([np.arange(n - h) for n in data.lengths]),
            "y": np.concatenate([y[:-h] for y in data.y]),
        }
    )
    actuals = np.stack([y[-h:] for y in data.y])
    start = time.perf_counter()
    sf = StatsForecast(models=[cls(season_length=m)], freq=1, n_jobs=n_jobs)
    out = sf.forecast(df=train, h=h)
    seconds = time.perf_counter() - start
    forecasts = out.sort_values(["unique_id", "ds"])[cls.__name__].to_numpy().reshape(-1, h)
    return mape(actuals, forecasts), seconds


def via_mlf(panel: Panel, model: str, sets: list[str], trials: int) -> dict:
    args = ["optimize", model, *panel.flags(), "--trials", str(trials), "--json"]
    args += [a for s in sets for a in ("--set", s)]
    run = run_mlf(args)
    doc = run.document
    if run.returncode != 0 or doc is None:
        return {"error": run.error_line(), "command": shown(run.argv), "wall": run.wall_s}
    result = doc["models"][0]
    return {
        "val": result["best_value"],
        "test": result["test_metrics"].get("mape"),
        "trials": result["trials"],
        "wall": run.wall_s,
        "command": shown(run.argv),
        "best": result["best_params"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", default="m1_quarterly,m1_monthly,walmart")
    parser.add_argument("--models", default="ets,theta,arima")
    parser.add_argument("--trials", type=int, default=30, help="trials of the searched study")
    parser.add_argument("--no-search", action="store_true", help="only the automatic models")
    parser.add_argument(
        "--only-search", action="store_true", help="only the searched study (no direct run)"
    )
    parser.add_argument("--n-jobs", type=int, default=2, help="statsforecast's processes")
    opts = parser.parse_args(argv)
    rows, commands = [], []
    for name in opts.panels.split(","):
        panel = PANELS[name]
        for model in opts.models.split(","):
            runs = []
            if not opts.only_search:
                score, seconds = direct(panel, model, opts.n_jobs)
                rows.append(
                    [name, model, "statsforecast direct", "–", fmt(score), f"{seconds:.1f}"]
                )
                runs.append(("automatic", via_mlf(panel, model, AUTOMATIC[model], 1)))
            if not opts.no_search:
                runs.append(
                    (f"searched, {opts.trials} trials", via_mlf(panel, model, [], opts.trials))
                )
            for label, r in runs:
                commands.append(r["command"])
                if "error" in r:
                    rows.append(
                        [name, model, f"mlf {label}", "error", r["error"], f"{r['wall']:.1f}"]
                    )
                    continue
                rows.append([name, model, f"mlf {label}", fmt(r["val"]), fmt(r["test"]),
                             f"{r['wall']:.1f}"])  # fmt: skip
            print(
                table(
                    ["panel", "model", "run", "val MAPE", "test MAPE", "wall s"],
                    rows[-len(runs) - (not opts.only_search) :],
                ),
                flush=True,
            )
    print()
    print(table(["panel", "model", "run", "val MAPE", "test MAPE", "wall s"], rows))
    print("\n" + "\n".join(f"    {c}" for c in commands))
    return 0


if __name__ == "__main__":
    sys.exit(main())
