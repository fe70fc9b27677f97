"""Seeded, sales-like weekly panels of any size, for the scale curve.

Each series has a level (log-normal across series), a slow trend, a yearly season (two
harmonics, its own amplitude and phase), multiplicative noise, and for some series
intermittent zeros (slow movers). Lengths are mixed: most series span the whole period,
some started later, and a few are new (shorter than two seasons). Every series ends on the
same week, as a retailer's extract does.

    python benchmarks/synthetic.py 1000 /tmp/panel.parquet     # write one (CSV or Parquet)
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
    if len(sys.argv) != 3:
        sys.exit("usage: python benchmarks/synthetic.py N_SERIES OUTPUT.(csv|parquet)")
    print(write_panel(int(sys.argv[1]), Path(sys.argv[2])))
