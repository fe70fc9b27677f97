"""Per-series work on the local process pool against a Dask ``LocalCluster`` of as many
processes: the seconds of one model configuration on a panel, and the cluster path's
overhead per series (its seconds minus the pool's, over the series).

Each path runs the same configurations one after the other: the first call of the cluster
scatters the histories, the later ones send only chunk bounds.

    python benchmarks/cluster.py --panel m1_monthly --model arima --workers 2 --configs 2
"""

from __future__ import annotations

import argparse
import time

from common import REPO

SHARED = REPO.parent / "shared" / "datasets"
CONFIGS = {
    "ets": [{"error": "Z", "trend": "Z", "season": "Z"}, {"error": "A", "trend": "A"}],
    "theta": [{"variant": "OTM"}, {"variant": "STM"}],
    "arima": [{"max_p": 2, "max_q": 2}, {"max_p": 3, "max_q": 1}],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panel", default="m1_monthly")
    parser.add_argument("--model", default="arima", choices=sorted(CONFIGS))
    parser.add_argument("--horizon", type=int, default=18)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--configs", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    from mlforecast_cli.plugins import _stats

    from mlforecast_cli.data.histories import make_histories, select
    from mlforecast_cli.data.panel import Columns, load_panel
    from mlforecast_cli.models.contract import TaskInfo
    from mlforecast_cli.models.registry import get_model
    from mlforecast_cli.services.executors import (
        connect_cluster,
        shutdown_local_pool,
        use_executor,
    )

    frame = pd.read_csv(SHARED / f"{args.panel}.csv")
    panel = load_panel(frame, Columns(target="value", time="date", ids=("id",)), source=args.panel)
    hist = make_histories(panel, panel.lengths - args.horizon, args.horizon)
    task = TaskInfo(horizon=args.horizon, season_length=hist.season_length,
                    n_series=len(hist), n_threads=args.workers)  # fmt: skip
    entry = get_model(args.model)
    configs = CONFIGS[args.model][: args.configs]
    _stats.POOL_WORTH_S = 0.0  # both paths parallel, whatever the probe says

    warm = select(hist, np.arange(min(len(hist), 64)))

    def run(label: str) -> tuple[list, float]:
        """The forecasts of each configuration and their seconds, after a warm-up."""
        start = time.perf_counter()  # start the processes and import the library first
        entry.create(configs[-1], task).predict(warm)
        print(f"{label:8} warm-up (processes, imports) {time.perf_counter() - start:.1f} s")
        out, total = [], 0.0
        for params in configs:
            _stats.clear_cache()
            start = time.perf_counter()
            out.append(entry.create(params, task).predict(hist))
            seconds = time.perf_counter() - start
            total += seconds
            ms = 1000 * seconds / len(hist)
            print(f"{label:8} {params}: {seconds:7.2f} s ({ms:.1f} ms/series)")
        return out, total

    n = len(hist)
    values = int(hist.offsets[-1])
    print(f"{args.panel}: {n} series, {values} values, {args.model}, h {args.horizon}")
    pool, pool_s = run("pool")
    shutdown_local_pool()
    start = time.perf_counter()
    with use_executor(connect_cluster(f"local:{args.workers}", ["statsforecast"])) as executor:
        print(f"cluster  start {time.perf_counter() - start:.1f} s")
        cluster, cluster_s = run("cluster")
        sent = executor.scattered_bytes
    print(f"histories sent to the cluster: {sent / 1e6:.2f} MB, once")
    same = all((a == b).all() for a, b in zip(pool, cluster, strict=True))
    print(f"pool {pool_s:.2f} s, cluster {cluster_s:.2f} s for {len(configs)} configurations")
    overhead = (cluster_s - pool_s) / (len(configs) * n)
    share = 100 * (cluster_s - pool_s) / pool_s
    print(f"cluster overhead {1000 * overhead:+.2f} ms/series ({share:+.1f} % of the pool's time)")
    print(f"same forecasts: {same}")


if __name__ == "__main__":
    main()
