"""Seeded generated panels: sales-like weekly ones of any size (the scale curve), and strongly
seasonal monthly ones with trends (the tree models' accuracy and cost, docs/trees.md).

Each series has a level (log-normal across series), a slow trend, a yearly season (two
harmonics, its own amplitude and phase), multiplicative noise, and for some series
intermittent zeros (slow movers). Lengths are mixed: most series span the whole period,
some started later, and a few are new (shorter than two seasons). Every series ends on the
same week, as a retailer's extract does.

    python benchmarks/synthetic.py 1000 /tmp/panel.parquet     # write one (CSV or Parquet)
    python benchmarks/synthetic.py --seasonal 366 /tmp/monthly.csv  # id, date, value; monthly

:func:`seasonal_panel` is multiplicative: level × trend × season × noise, the season's trough
a small share of its peak, so forecasting the trough too high is what MAPE punishes most.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

COLUMNS = {"id": "item", "time": "week", "target": "sales"}
END = "2024-12-27"  # a Friday
FREQ = "W-FRI"
SEASON = 52


def sales_panel(n_series: int, length: int = 150, seed: int = 0):
    """A long table ``item, week, sales`` of ``n_series`` series of at most ``length`` weeks."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    kind = rng.choice(3, size=n_series, p=[0.7, 0.2, 0.1])  # full, later start, new
    lengths = np.where(
        kind == 0,
        length,
        np.where(
            kind == 1,
            rng.integers(SEASON + 8, length, size=n_series),
            rng.integers(20, 2 * SEASON, size=n_series),
        ),
    )
    lengths = np.minimum(lengths, length)
    t = np.arange(length)[None, :]  # column k is week k of the period
    level = rng.lognormal(mean=4.0, sigma=1.2, size=(n_series, 1))
    trend = rng.normal(0.0, 0.002, size=(n_series, 1))
    amplitude = rng.uniform(0.0, 0.5, size=(n_series, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n_series, 1))
    angle = 2 * np.pi * t / SEASON + phase
    season = 1 + amplitude * (0.8 * np.sin(angle) + 0.2 * np.sin(2 * angle + 1.0))
    noise = rng.lognormal(0.0, rng.uniform(0.05, 0.3, size=(n_series, 1)), size=(n_series, length))
    values = level * np.exp(trend * t) * season * noise
    slow = rng.random(n_series) < 0.15
    zero_p = np.where(slow, rng.uniform(0.1, 0.5, size=n_series), 0.0)[:, None]
    values = np.where(rng.random((n_series, length)) < zero_p, 0.0, np.round(values, 2))

    keep = t >= (length - lengths)[:, None]  # series i covers its last lengths[i] weeks
    weeks = pd.date_range(end=END, periods=length, freq=FREQ).to_numpy()
    width = len(str(n_series))
    items = np.array([f"item_{i:0{width}d}" for i in range(n_series)])
    rows, cols = np.nonzero(keep)
    return pd.DataFrame(
        {
            COLUMNS["id"]: items[rows],
            COLUMNS["time"]: weeks[cols],
            COLUMNS["target"]: values[rows, cols],
        }
    )


MONTHLY_END = "2019-12-01"
MONTH_SEASON = 12


def seasonal_panel(n_series: int = 366, lengths: tuple[int, int] = (90, 330), seed: int = 0):
    """A long table ``id, date, value`` of ``n_series`` monthly multiplicative-seasonal series.

    Each series: a log-normal level; a trend of -1 to +2 % a month, damped in a third of the
    series; a yearly profile (two harmonics) whose peak is 1.5–30× its trough (log-uniform:
    some series nearly stop in their off-season); log-normal noise of
    5–30 %; lengths uniform in ``lengths``, every series ending on the same month.
    Values are positive.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    low, high = lengths
    size = rng.integers(low, high + 1, size=n_series)
    longest = int(size.max())
    t = np.arange(longest)[None, :] - (longest - size)[:, None]  # 0 at each series' start
    level = rng.lognormal(mean=6.0, sigma=1.5, size=(n_series, 1))
    slope = rng.uniform(-0.01, 0.02, size=(n_series, 1))
    damped = rng.random((n_series, 1)) < 1 / 3
    steps = np.where(damped, 60 * (1 - np.exp(-np.maximum(t, 0) / 60)), t)
    ratio = np.exp(rng.uniform(np.log(1.5), np.log(30.0), size=(n_series, 1)))  # peak / trough
    phase = rng.uniform(0.0, 2 * np.pi, size=(n_series, 1))
    angle = 2 * np.pi * t / MONTH_SEASON + phase
    shape = 0.75 * np.sin(angle) + 0.25 * np.sin(2 * angle + rng.uniform(0, 2 * np.pi))
    shape = (shape - shape.min(axis=1, keepdims=True)) / np.ptp(shape, axis=1, keepdims=True)
    season = np.exp(np.log(ratio) * shape)  # trough 1, peak `ratio`
    noise = rng.lognormal(0.0, rng.uniform(0.05, 0.3, size=(n_series, 1)), size=t.shape)
    values = np.round(level * np.exp(slope * steps) * season * noise, 2)
    dates = pd.date_range(end=MONTHLY_END, periods=longest, freq="MS").to_numpy()
    width = len(str(n_series))
    ids = np.array([f"S{i:0{width}d}" for i in range(n_series)])
    rows, cols = np.nonzero(t >= 0)
    return pd.DataFrame({"id": ids[rows], "date": dates[cols], "value": values[rows, cols]})


def write_panel(n_series: int, path: Path, length: int = 150, seed: int = 0) -> Path:
    """Write :func:`sales_panel` to ``path`` (Parquet when the suffix says so and pyarrow is
    installed, else CSV next to it); returns the path written."""
    frame = sales_panel(n_series, length, seed)
    if path.suffix == ".parquet":
        try:
            frame.to_parquet(path, index=False)
            return path
        except ImportError:
            path = path.with_suffix(".csv")
    frame.to_csv(path, index=False)
    return path


if __name__ == "__main__":
    argv = sys.argv[1:]
    seasonal = argv[:1] == ["--seasonal"]
    argv = argv[1:] if seasonal else argv
    if len(argv) not in (2, 3):
        sys.exit(
            "usage: python benchmarks/synthetic.py [--seasonal] N_SERIES "
            "OUTPUT.(csv|parquet) [SEED]"
        )
    n, out, seed = int(argv[0]), Path(argv[1]), int(argv[2]) if len(argv) == 3 else 0
    if seasonal:
        seasonal_panel(n, seed=seed).to_csv(out, index=False)
        print(out)
    else:
        print(write_panel(n, out, seed=seed))
