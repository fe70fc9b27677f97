"""The tree models against the seasonal naive baseline on the built-in Walmart data.

Runs the real CLI (``mlf optimize ... --json``) in a fresh temporary folder, so nothing of an
earlier study is resumed, and prints a markdown table: best validation MAPE, test MAPE (the
13-week hold-out, scored once after the refit on train+valid), trials and wall time per model.

    python benchmarks/trees.py                      # the table of docs/trees.md (30 trials)
    python benchmarks/trees.py --trials 10 --models lightgbm seasonal_naive
    python benchmarks/trees.py --strategy both      # one model per step vs the step a feature
    python benchmarks/trees.py --set learning_rate=0.01..0.1
    python benchmarks/trees.py --backtest 1         # test on the 13 weeks before the hold-out

Every model of one run shares the CLI's seed (``--seed``); the same seed gives the same table
on the same machine (times aside).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TREES = ("lightgbm", "xgboost", "catboost", "random_forest")
BASELINE = "seasonal_naive"


def backtest_data(folder: str, windows: int) -> list[str]:
    """Walmart without its last ``windows`` x 13 weeks, as a CSV in ``folder``; the CLI flags
    that read it. Its test window is then an earlier 13 weeks that the real search never
    scores, to make design choices on without looking at the real hold-out."""
    from mlforecast_cli.datasets import get_dataset, load_dataset

    card = get_dataset("walmart")
    frame = load_dataset("walmart").to_frame()
    cut = windows * card.horizon
    frame = frame[frame.groupby(list(card.ids)).cumcount(ascending=False) >= cut]
    path = os.path.join(folder, f"walmart-backtest{windows}.csv")
    frame.to_csv(path, index=False)
    flags = ["--data", path, "--target", card.target, "--time-col", card.time]
    for name in card.ids:
        flags += ["--id-col", name]
    for name in card.features:
        flags += ["--feature", name]
    return [*flags, "--horizon", str(card.horizon)]


def optimize(
    models: list[str],
    trials: int,
    seed: int,
    sets: list[str],
    strategy: str | None,
    backtest: int = 0,
) -> tuple[dict, float]:
    """One ``mlf optimize`` run in a fresh folder; its --json document and wall time."""
    args = [sys.executable, "-m", "mlforecast_cli", "optimize", *models]
    args += ["--trials", str(trials), "--seed", str(seed), "--json"]
    for assignment in sets:
        args += ["--set", assignment]
    if strategy is not None:
        args += ["--set", f"strategy={strategy}"]
    with tempfile.TemporaryDirectory(prefix="mlf-bench-trees-") as folder:
        if backtest:
            args += backtest_data(folder, backtest)
        env = {
            **os.environ,
            "MLF_HOME": os.path.join(folder, ".mlf"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{os.path.join(folder, 'mlflow.db')}",
        }
        started = time.perf_counter()
        proc = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        sys.exit(f"mlf optimize failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout), seconds


def rows(document: dict, label: str | None = None) -> list[dict]:
    out = []
    for m in document["models"]:
        trials = m.get("trials") or {}
        test = (m.get("test_metrics") or {}).get("mape")
        out.append(
            {
                "model": m["model"] + (f" ({label})" if label else ""),
                "name": m["model"],
                "val": m.get("best_value"),
                "test": test,
                "trials": (
                    f"{trials.get('complete', 0)} done, {trials.get('pruned', 0)} pruned, "
                    f"{trials.get('fail', 0)} failed"
                ),
                "seconds": m.get("seconds"),
                "error": m.get("error"),
            }
        )
    return out


def table(all_rows: list[dict]) -> str:
    reference = next((r["test"] for r in all_rows if r["name"] == BASELINE), None)
    lines = [
        "| model | best val MAPE % | test MAPE % | vs seasonal naive | trials | time (s) |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for r in all_rows:
        val = "–" if r["val"] is None else f"{r['val']:.2f}"
        test = "–" if r["test"] is None else f"{r['test']:.2f}"
        if r["name"] == BASELINE:
            versus = "reference"
        elif r["test"] is None or reference is None:
            versus = r["error"] or "–"
        else:
            versus = f"{r['test'] - reference:+.2f}"
        seconds = "–" if r["seconds"] is None else f"{r['seconds']:.0f}"
        lines.append(f"| {r['model']} | {val} | {test} | {versus} | {r['trials']} | {seconds} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="trials per model (30)")
    parser.add_argument("--seed", type=int, default=42, help="sampler and model seed (42)")
    parser.add_argument(
        "--models", nargs="+", default=[*TREES, BASELINE], help="models (the four + baseline)"
    )
    parser.add_argument(
        "--strategy",
        choices=("stacked", "per_step", "both"),
        default=None,
        help="force the horizon strategy of the tree models (default: their space's)",
    )
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], help="extra --set KEY=VALUE"
    )
    parser.add_argument(
        "--backtest",
        type=int,
        default=0,
        metavar="K",
        help="drop the last K x 13 weeks first: test on an earlier window (default 0)",
    )
    args = parser.parse_args(argv)

    trees = [m for m in args.models if m != BASELINE]
    runs: list[tuple[list[str], str | None]] = []
    if args.strategy == "both":
        runs = [(trees, "stacked"), (trees, "per_step")]
        if BASELINE in args.models:
            runs.insert(0, ([BASELINE], None))
    else:
        runs = [(args.models, args.strategy)]
    all_rows: list[dict] = []
    total = 0.0
    for models, strategy in runs:
        if not models:
            continue
        document, seconds = optimize(
            models, args.trials, args.seed, args.sets, strategy, args.backtest
        )
        total += seconds
        all_rows += rows(document, strategy if args.strategy == "both" else None)
    command = "python benchmarks/trees.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(
        f"`{command.strip()}`: {args.trials} trials per model, seed {args.seed}, "
        f"{os.cpu_count()} cores, {total:.0f} s in all\n"
    )
    print(table(all_rows))
    failed = [r for r in all_rows if r["error"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
