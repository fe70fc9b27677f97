"""One tree-model configuration fit on a CSV panel's validation cut and on its test cut.

Prints validation and test MAPE, sMAPE, MASE and the CPU and wall seconds of each fit: the
quick comparison behind the fixed-configuration tables of docs/trees.md (issue 26), without a
search. The space's fixed values apply, then ``window_size: 15``, then the JSON given.

    python benchmarks/tree_fit.py ../shared/datasets/m1_monthly.csv 18 lightgbm \\
        '{"learning_rate": 0.05, "n_estimators": 60, "num_leaves": 16, "max_depth": 4,
          "target": "direct", "log_offset": 0.1}'

The CSV has columns ``id, date, value`` (``python benchmarks/synthetic.py --seasonal``).
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    from mlforecast_cli.data.panel import Columns, load_panel
    from mlforecast_cli.data.split import split_panel
    from mlforecast_cli.models.registry import Registry
    from mlforecast_cli.trials.fit import FitOptions, fit_and_score, task_info

    if len(argv) not in (3, 4):
        sys.exit("usage: python benchmarks/tree_fit.py DATA.csv HORIZON MODEL ['{JSON params}']")
    data, horizon, model = argv[0], int(argv[1]), argv[2]
    extra = json.loads(argv[3]) if len(argv) == 4 else {}
    panel = load_panel(data, Columns(target="value", time="date", ids=("id",)))
    split = split_panel(panel, horizon, 1)
    entry = Registry().get(model)
    params = {**entry.load_space().fixed, "window_size": 15, **extra}
    task = task_info(panel, horizon, seed=42, device="cpu", n_jobs=1)
    options = FitOptions(report=None, train_metrics=False)
    for name, end in (("val", split.folds[0].train_end), ("test", split.test_start)):
        cpu, wall = time.process_time(), time.perf_counter()
        result = fit_and_score(entry, params, task, panel, end, options)
        shown = {
            k: round(v, 3) for k, v in result.metrics.items() if k in ("mape", "smape", "mase")
        }
        print(
            f"{name} {shown} refit {result.refit_params} cpu {time.process_time() - cpu:.1f} s "
            f"wall {time.perf_counter() - wall:.1f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
