"""The two bases of a residual neural network, scored alone on a CSV panel's validation and
test windows: what an untrained network forecasts with ``base: seasonal`` and ``base: level``
(docs/neural.md, "The base"). No fit, no search: a second per panel.

    python benchmarks/neural_base.py ../shared/datasets/m1_monthly.csv 18
    python benchmarks/neural_base.py ../shared/datasets/m1_quarterly.csv 8 --window 16

The CSV has columns ``id, date, value``. Prints MAPE per window and base.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    from mlforecast_cli.plugins._torch_training import base_values

    from mlforecast_cli.data.panel import Columns, load_panel
    from mlforecast_cli.data.split import split_panel
    from mlforecast_cli.data.windows import make_windows
    from mlforecast_cli.search.metrics import mape

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("horizon", type=int)
    parser.add_argument("--window", type=int, default=43, help="input steps (default 43)")
    args = parser.parse_args(argv)
    panel = load_panel(args.data, Columns(target="value", time="date", ids=("id",)))
    split = split_panel(panel, args.horizon, 1, min_train=args.window)
    print(f"{args.data}: {panel.n_series} series, season {panel.season_length}")
    print("| window | base: seasonal MAPE | base: level MAPE |")
    print("| --- | ---: | ---: |")
    for name, end in (("validation", split.folds[0].train_end), ("test", split.test_start)):
        w = make_windows(panel, end, args.window, args.horizon, mode="eval", scaler="window")
        actual = w.y * w.scale[:, None] + w.loc[:, None]
        scores = []
        for season in (0, panel.season_length):
            forecast = base_values(w, season) * w.scale[:, None] + w.loc[:, None]
            keep = np.isfinite(actual)
            scores.append(mape(actual[keep], forecast[keep]))
        print(f"| {name} | {scores[0]:.2f} | {scores[1]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
