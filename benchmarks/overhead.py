"""Framework cost per trial: mlf's storage + tracking + progress against a bare Optuna loop.

Runs the same model fits (same sampler seed, so the same parameters) twice or more:
  bare     in-memory Optuna storage, no callbacks (what a hand-written loop costs)
  mlf/...  an on-disk Optuna storage, MLflow tracking (real SQLite store) and Rich progress
and reports the median time per trial (from one trial's start to the next one's start, so
storage writes and callbacks are included) and the difference.

    python benchmarks/overhead.py --model lightgbm --trials 50
    python benchmarks/overhead.py --model seasonal_naive --storages journal,sqlite
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def per_trial_seconds(study) -> list[float]:
    starts = sorted(t.datetime_start for t in study.trials if t.datetime_start)
    return [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]


def run(model: str, trials: int, storage: str | None, tracked: bool, folder: Path) -> dict:
    from rich.console import Console

    from mlforecast_cli.data.split import split_panel
    from mlforecast_cli.datasets import load_dataset
    from mlforecast_cli.models.registry import get_model
    from mlforecast_cli.tracking.parent_run import MlflowTracker, ParentRun
    from mlforecast_cli.trials.objective import build_objective, run_study
    from mlforecast_cli.trials.optuna_study import StudyConfig, create_study
    from mlforecast_cli.views.progress import ProgressBoard

    entry = get_model(model)
    panel = load_dataset("walmart")
    config = StudyConfig.of(
        f"{model}", f"bench-{model}", entry.load_space(), horizon=13, storage=storage
    )
    objective = build_objective(entry, panel, config, split_panel(panel, 13))
    study, _ = create_study(config, panel)
    callbacks = []
    tracker = board = None
    if tracked:
        tracker = MlflowTracker(
            experiment="bench", tracking_uri=f"sqlite:///{folder / 'mlflow.db'}"
        )
        tracker.start(study, parent=ParentRun(params={"model": model}))
        board = ProgressBoard(console=Console(file=io.StringIO(), force_terminal=True))
        board.__enter__()
        callbacks = [tracker, board.add(model, trials, "MAPE", study)]
    start = time.perf_counter()
    run_study(objective, study, n_trials=trials, callbacks=callbacks)
    if tracker is not None:
        tracker.close()
        board.__exit__(None, None, None)
    wall = time.perf_counter() - start
    gaps = per_trial_seconds(study)
    fits = [t.user_attrs.get("training_time_s", 0.0) for t in study.trials]
    return {
        "median_s": statistics.median(gaps),
        "wall_s": wall,
        "fit_median_s": statistics.median(fits),
        "tracking_writer_s": tracker.seconds / trials if tracker else 0.0,
        "best": study.best_value,
        "gaps": gaps,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lightgbm")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--storages", default="journal", help="comma list: journal,sqlite")
    args = parser.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["MLF_HOME"] = str(folder / ".mlf")
        bare = run(args.model, args.trials, "memory", False, folder)
        rows.append(("bare (in-memory, no callbacks)", bare))
        for name in args.storages.split(","):
            url = {
                "journal": f"journal:///{folder / 'optuna.journal'}",
                "sqlite": f"sqlite:///{folder / 'optuna.db'}",
            }[name]
            rows.append(
                (
                    f"mlf ({name} + MLflow + progress)",
                    run(args.model, args.trials, url, True, folder),
                )
            )
    base = bare["median_s"]
    print(
        f"model {args.model}, {args.trials} trials, Walmart data, python {sys.version.split()[0]}"
    )
    print()
    print("| setup | median s/trial | overhead ms/trial | overhead % | fit median s | best |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, r in rows:
        extra = (r["median_s"] - base) * 1000
        share = 100 * (r["median_s"] - base) / r["median_s"]
        print(
            f"| {label} | {r['median_s']:.4f} | {extra:.1f} | {share:.1f} | "
            f"{r['fit_median_s']:.4f} | {r['best']:.3f} |"
        )


if __name__ == "__main__":
    main()
