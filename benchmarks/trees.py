"""The tree models against the seasonal naive baseline, on validation and on test.

Runs the real CLI (``mlf optimize ... --json``) in a fresh temporary folder, so nothing of an
earlier study is resumed, and prints a markdown table: best validation MAPE, test MAPE (the
hold-out, scored once after the refit on train+valid), each beside the seasonal naive's on the
same split (the run's reference), trials and wall time per model. The data is the built-in
Walmart panel, a CSV of ``id, date, value`` (``--data``), or a generated multiplicative-seasonal
monthly panel (``--data seasonal``: :func:`synthetic.seasonal_panel`, 366 series, seed 0).

    python benchmarks/trees.py                      # the table of docs/trees.md (30 trials)
    python benchmarks/trees.py --trials 10 --models lightgbm seasonal_naive
    python benchmarks/trees.py --strategy both      # one model per step vs the step a feature
    python benchmarks/trees.py --set learning_rate=0.01..0.1
    python benchmarks/trees.py --backtest 1         # test on the 13 weeks before the hold-out
    python benchmarks/trees.py --data ../shared/datasets/m1_monthly.csv --horizon 18 \
        --trials 20 --timeout 300                   # issue 26: a CSV panel, each model timed
    python benchmarks/trees.py --data seasonal --horizon 24 --trials 20

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
from dataclasses import dataclass

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


def panel_data(folder: str, data: str, horizon: int) -> list[str]:
    """The CLI flags that read ``data``: a CSV of ``id, date, value``, or ``seasonal``, the
    generated panel written into ``folder``."""
    if data == "seasonal":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from synthetic import seasonal_panel

        data = os.path.join(folder, "seasonal.csv")
        seasonal_panel(366, seed=0).to_csv(data, index=False)
    flags = ["--data", os.path.abspath(data), "--target", "value", "--time-col", "date"]
    return [*flags, "--id-col", "id", "--horizon", str(horizon), "--no-final-refit"]


@dataclass(frozen=True)
class RunOptions:
    """What every ``mlf optimize`` of one benchmark shares."""

    trials: int
    seed: int
    sets: tuple[str, ...] = ()
    backtest: int = 0
    data: str | None = None
    horizon: int | None = None
    timeout: float | None = None


def optimize(models: list[str], strategy: str | None, options: RunOptions) -> tuple[dict, float]:
    """One ``mlf optimize`` run in a fresh folder; its --json document and wall time."""
    args = [sys.executable, "-m", "mlforecast_cli", "optimize", *models]
    args += ["--trials", str(options.trials), "--seed", str(options.seed), "--json"]
    if options.timeout:
        args += ["--timeout", str(options.timeout)]
    for assignment in options.sets:
        args += ["--set", assignment]
    if strategy is not None:
        args += ["--set", f"strategy={strategy}"]
    with tempfile.TemporaryDirectory(prefix="mlf-bench-trees-") as folder:
        if options.data:
            args += panel_data(folder, options.data, options.horizon or 1)
        elif options.backtest:
            args += backtest_data(folder, options.backtest)
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
    reference = document.get("reference") or {}
    naive_val = (reference.get("val_metrics") or {}).get("mape")
    naive_test = (reference.get("test_metrics") or {}).get("mape")
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
                "naive_val": naive_val,
                "naive_test": naive_test,
                "trials": (
                    f"{trials.get('complete', 0)} done, {trials.get('pruned', 0)} pruned, "
                    f"{trials.get('fail', 0)} failed"
                ),
                "seconds": m.get("seconds"),
                "error": m.get("error"),
                "params": m.get("best_params") or {},
            }
        )
    return out


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _beats(value: float | None, naive: float | None) -> str:
    """``value`` beside the seasonal naive's, bold where it is lower."""
    if value is None or naive is None:
        return _number(value)
    return f"**{value:.2f}**" if value < naive else f"{value:.2f}"


def table(all_rows: list[dict]) -> str:
    """Markdown: each model's best validation and test MAPE beside the seasonal naive's on the
    same split (bold: lower than the naive's)."""
    lines = [
        "| model | best val MAPE % | naive val | test MAPE % | naive test | trials | time (s) |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in all_rows:
        val = _number(r["val"]) if r["name"] == BASELINE else _beats(r["val"], r["naive_val"])
        test = _number(r["test"]) if r["name"] == BASELINE else _beats(r["test"], r["naive_test"])
        trials = r["trials"] if not r["error"] else f"{r['trials']}; {r['error']}"
        seconds = "–" if r["seconds"] is None else f"{r['seconds']:.0f}"
        lines.append(
            f"| {r['model']} | {val} | {_number(r['naive_val'])} | {test} | "
            f"{_number(r['naive_test'])} | {trials} | {seconds} |"
        )
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
    parser.add_argument(
        "--data",
        default=None,
        help="a CSV of id, date, value, or 'seasonal' (the generated panel); default Walmart",
    )
    parser.add_argument("--horizon", type=int, default=None, help="the horizon of --data")
    parser.add_argument(
        "--timeout", type=float, default=None, help="stop each model's search after SECONDS"
    )
    args = parser.parse_args(argv)
    if args.data and not args.horizon:
        parser.error("--data needs --horizon")
    options = RunOptions(
        args.trials,
        args.seed,
        tuple(args.sets),
        args.backtest,
        args.data,
        args.horizon,
        args.timeout,
    )

    trees = [m for m in args.models if m != BASELINE]
    runs: list[tuple[list[str], str | None]] = []
    if args.strategy == "both":
        runs = [(trees, "stacked"), (trees, "per_step")]
        if BASELINE in args.models:
            runs.insert(0, ([BASELINE], None))
    else:  # one model a run: its row is printed as soon as it is done
        runs = [([model], args.strategy) for model in args.models]
    all_rows: list[dict] = []
    total = 0.0
    for models, strategy in runs:
        if not models:
            continue
        document, seconds = optimize(models, strategy, options)
        total += seconds
        new = rows(document, strategy if args.strategy == "both" else None)
        all_rows += new
        print(table(new).splitlines()[-1], file=sys.stderr, flush=True)
    command = "python benchmarks/trees.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(
        f"`{command.strip()}`: {args.trials} trials per model, seed {args.seed}, "
        f"{os.cpu_count()} cores, {total:.0f} s in all\n"
    )
    print(table(all_rows))
    print("\nBest configurations:\n")
    for r in all_rows:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in sorted(r["params"].items()))
        print(f"- {r['model']}: {shown or '–'}")
    failed = [r for r in all_rows if r["error"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
