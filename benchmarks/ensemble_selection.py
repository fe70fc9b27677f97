"""Ways to choose an ensemble's weights, compared on the forecasts an experiment kept.

Every way chooses on the studies' validation forecasts only; the table shows each one's
validation and test metric and weights, next to each member's. Besides mlf's greedy
selection (Caruana et al., 2004) it measures two bagged variants: greedy on bootstrap
samples of the validation series, weights averaged; and Caruana et al. (2006)'s bagged
ensemble selection, greedy on random halves of the members, weights averaged.

    python benchmarks/ensemble_selection.py --tracking-uri sqlite:///runs/mlflow.db --bags 50
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, table  # noqa: E402
from interval_coverage import studies  # noqa: E402

ROUNDS = 25


def bagged_series(tables, metric: str, bags: int, seed: int):
    """Greedy on ``bags`` bootstrap samples of the validation series; the mean weights."""
    import numpy as np

    from mlforecast_cli.ensembles.ensemble import greedy_weights

    rng = np.random.default_rng(seed)
    first = tables[0]
    ids = np.unique(first.id)
    rows_of = [np.flatnonzero(first.id == i) for i in ids]
    weights = np.zeros(len(tables))
    for _ in range(bags):
        rows = np.concatenate([rows_of[k] for k in rng.choice(len(ids), len(ids))])
        rows = rows[np.argsort(first.window[rows], kind="stable")]
        weights += greedy_weights([t.take(rows) for t in tables], metric, ROUNDS).weights
    return weights / bags


def bagged_members(tables, metric: str, bags: int, seed: int):
    """Caruana et al. (2006): greedy on random halves of the members; the mean weights."""
    import numpy as np

    from mlforecast_cli.ensembles.ensemble import greedy_weights

    rng = np.random.default_rng(seed)
    weights = np.zeros(len(tables))
    for _ in range(bags):
        chosen = np.flatnonzero(rng.random(len(tables)) < 0.5)
        if len(chosen) == 0:
            chosen = rng.integers(len(tables), size=1)
        weights[chosen] += greedy_weights([tables[i] for i in chosen], metric, ROUNDS).weights
    return weights / bags


def rows(uri: str, bags: int, seeds: int) -> list[list[str]]:
    from mlforecast_cli.ensembles.ensemble import combine, greedy_weights

    metric, found = studies(uri)
    names = sorted(found)
    val = [found[m][0] for m in names]
    test = [found[m][1] for m in names]
    out = [
        [m, "", fmt(v.metrics()[metric]), fmt(t.metrics()[metric])]
        for m, v, t in zip(names, val, test, strict=True)
    ]
    ways = {"greedy": lambda seed: greedy_weights(val, metric, ROUNDS).weights}
    ways["bagged series"] = lambda seed: bagged_series(val, metric, bags, seed)
    ways["bagged members"] = lambda seed: bagged_members(val, metric, bags, seed)
    for label, way in ways.items():
        for seed in range(seeds if label != "greedy" else 1):
            w = way(seed)
            shown = ", ".join(f"{m} {x:.2f}" for m, x in zip(names, w, strict=True) if x >= 0.005)
            name = f"**{label}**" + (f" (seed {seed})" if label != "greedy" else "")
            val_value = combine(val, w).metrics()[metric]
            test_value = combine(test, w).metrics()[metric]
            out.append([name, shown, fmt(val_value), fmt(test_value)])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", action="append", required=True, help="repeat")
    parser.add_argument("--bags", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)
    headers = ["model / way", "weights", "val", "test"]
    for uri in args.tracking_uri:
        print(f"## {uri}\n\n{table(headers, rows(uri, args.bags, args.seeds), 'llrr')}\n")


if __name__ == "__main__":
    main()
