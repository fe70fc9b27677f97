"""Does the validation winner win on test? The same models searched with 1, 2 and 3 CV windows.

For each panel and each ``--cv-windows K``, one ``mlf optimize MODELS --trials N --cv-windows K``
in a fresh folder; the model with the best validation metric (the CV mean, what `mlf
leaderboard` ranks by and `mlf predict` chooses) is compared with the model with the best test
metric (the last ``horizon`` steps, the same window for every K). A hit: they are the same
model. Regret: the test metric of the validation winner over the best test metric (1.00: the
choice lost nothing). Wall: the command's seconds (the search's cost grows with K).

Panels: the built-in Walmart data, M1 quarterly and monthly (../shared/datasets, or
benchmarks/data) cut into groups of series, and seeded synthetic sales panels.

    python benchmarks/cv_choice.py                      # the default, small grid
    python benchmarks/cv_choice.py --trials 3 --windows 1,2 --panels walmart,m1q-0
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from common import fmt, run_mlf, scratch, table

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
MODELS = ("ets", "theta", "seasonal_naive", "lightgbm")
FLAGS = ["--target", "value", "--time-col", "date", "--id-col", "id"]


@dataclass(frozen=True)
class Panel:
    name: str
    horizon: int
    source: str | None = None
    """M1 file name (a group of its series), ``synthetic`` or None (built-in Walmart)."""
    group: int = 0
    groups: int = 1
    series: int = 30

    def args(self, folder: Path) -> list[str]:
        """The data flags of ``mlf optimize``, writing the panel's file into ``folder``."""
        if self.source is None:
            return ["--dataset", "walmart", "--horizon", str(self.horizon)]
        path = folder / f"{self.name}.csv"
        self.frame().to_csv(path, index=False)
        return ["--data", str(path), *FLAGS, "--horizon", str(self.horizon)]

    def frame(self):
        import numpy as np
        import pandas as pd

        if self.source == "synthetic":
            from synthetic import sales_panel

            frame = sales_panel(self.series, length=120, seed=self.group)
            return frame.rename(columns={"item": "id", "week": "date", "sales": "value"})
        frame = pd.read_csv(SHARED / self.source)
        ids = frame["id"].drop_duplicates().to_numpy()
        rng = np.random.default_rng(self.group)
        chosen = rng.choice(ids, size=min(self.series, len(ids)), replace=False)
        return frame[frame["id"].isin(chosen)]


PANELS = {
    "walmart": Panel("walmart", 13),
    **{f"m1q-{g}": Panel(f"m1q-{g}", 8, "m1_quarterly.csv", g) for g in range(3)},
    **{f"m1m-{g}": Panel(f"m1m-{g}", 18, "m1_monthly.csv", g) for g in range(3)},
    **{f"synth-{g}": Panel(f"synth-{g}", 13, "synthetic", g, series=20) for g in range(2)},
}


def one(panel: Panel, windows: int, trials: int, metric: str) -> dict:
    """One search: each model's validation and test metric, and the command's seconds."""
    with scratch("mlf-cv-choice-") as folder:
        args = ["optimize", *MODELS, *panel.args(folder), "--trials", str(trials)]
        args += ["--cv-windows", str(windows), "--metric", metric, "--json", "--quiet"]
        run = run_mlf(args, folder=folder, timeout=1800)
    doc = run.document
    if doc is None:
        return {"error": run.error_line(), "wall": run.wall_s}
    scores = {
        m["model"]: (m["best_value"], (m["test_metrics"] or {}).get(metric))
        for m in doc["models"]
        if m.get("best_value") is not None and (m.get("test_metrics") or {}).get(metric)
    }
    return {"scores": scores, "wall": run.wall_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", default="walmart,m1q-0,m1q-1,m1m-0,synth-0")
    parser.add_argument("--windows", default="1,2,3")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--metric", default="mape")
    opts = parser.parse_args(argv)
    ks = [int(k) for k in opts.windows.split(",")]
    rows, totals = [], {k: [0, 0, [], 0.0] for k in ks}
    for name in opts.panels.split(","):
        for k in ks:
            got = one(PANELS[name], k, opts.trials, opts.metric)
            if "error" in got:
                rows.append([name, k, "–", "–", "–", got["error"][:60], fmt(got["wall"], 0)])
                print(f"{name} cv{k}: {got['error']}", file=sys.stderr, flush=True)
                continue
            scores = got["scores"]
            by_val = min(scores, key=lambda m: scores[m][0])
            by_test = min(scores, key=lambda m: scores[m][1])
            regret = scores[by_val][1] / scores[by_test][1]
            hit = by_val == by_test
            total = totals[k]
            total[0] += hit
            total[1] += 1
            total[2].append(regret)
            total[3] += got["wall"]
            same = "yes" if hit else "no"
            row = [name, k, by_val, by_test, same, fmt(regret), fmt(got["wall"], 0)]
            rows.append(row)
            print(" | ".join(map(str, row)), file=sys.stderr, flush=True)
    print(table(["panel", "K", "val winner", "test winner", "same", "regret", "wall s"], rows))
    print()
    summary = [
        [k, f"{t[0]}/{t[1]}", fmt(sum(t[2]) / len(t[2]) if t[2] else None, 3), fmt(t[3], 0)]
        for k, t in totals.items()
    ]
    print(table(["--cv-windows", "same winner", "mean regret", "total wall s"], summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
