"""What recording the reference costs a study: the seasonal naive's validation and test
metrics on the study's split (`reference.reference_scores`), on Walmart and on generated
weekly panels of growing size (benchmarks/synthetic.py), h=13, one and three CV windows.

    python benchmarks/reference_cost.py [--series 1000,10000,30000] [--repeat 3]

Prints a table of the median seconds of one call (numbers on a shared machine are upper
bounds).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, table  # noqa: E402
from synthetic import COLUMNS, FREQ, sales_panel  # noqa: E402


def seconds(panel, cv_windows: int, repeat: int) -> float:
    from mlforecast_cli.data.split import split_panel
    from mlforecast_cli.trials.reference import reference_scores

    split = split_panel(panel, 13, cv_windows, min_train=1)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        reference_scores(panel, split)
        times.append(time.perf_counter() - start)
    return median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default="1000,10000,30000")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args(argv)
    from mlforecast_cli.data.panel import Columns, load_panel
    from mlforecast_cli.datasets import load_dataset

    panels = [("walmart", load_dataset("walmart"))]
    for n in (int(x) for x in opts.series.split(",") if x):
        frame = sales_panel(n)
        columns = Columns(target=COLUMNS["target"], time=COLUMNS["time"], ids=(COLUMNS["id"],))
        panels.append((f"generated {n}", load_panel(frame, columns, freq=FREQ, source="gen")))
    rows = []
    for name, panel in panels:
        rows.append(
            [
                name,
                panel.n_series,
                f"{seconds(panel, 1, opts.repeat):.3f}",
                f"{seconds(panel, 3, opts.repeat):.3f}",
            ]
        )
    print(table(["panel", "series", "s (1 CV window)", "s (3 CV windows)"], rows, "lrrr"))


if __name__ == "__main__":
    main()
