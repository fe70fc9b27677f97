"""Calendar features: where each time sits within its cycles (sin/cos pairs)."""

from __future__ import annotations

import numpy as np

from .frequency import CYCLES, NS, freq_kind

__all__ = ["calendar_features", "n_calendar_features"]


def calendar_features(times: np.ndarray, freq: str) -> np.ndarray:
    """(T, C) sin/cos of the position of each time within its cycles.

    Cycles per frequency (C is fixed by ``freq``): sub-hourly -> hour, day, year (C=6);
    hourly -> day, week, year (C=6); daily/business -> week, year (C=4); weekly and
    longer -> year (C=2, the year is their season).
    """
    t = np.asarray(times).astype(NS)
    cols = []
    for cycle in CYCLES.get(freq_kind(freq)[0], ("year",)):
        if cycle == "year":
            start = t.astype("datetime64[Y]")
            frac = (t - start) / ((start + 1).astype(NS) - start.astype(NS))
        elif cycle == "week":
            days = (t - np.datetime64("1970-01-05", "ns")) / np.timedelta64(1, "D")  # a Monday
            frac = np.mod(days, 7.0) / 7.0
        elif cycle == "day":
            frac = (t - t.astype("datetime64[D]")) / np.timedelta64(1, "D")
        else:  # hour
            frac = (t - t.astype("datetime64[h]")) / np.timedelta64(1, "h")
        angle = 2.0 * np.pi * np.asarray(frac, dtype=np.float64)
        cols += [np.sin(angle), np.cos(angle)]
    return np.stack(cols, axis=1)


def n_calendar_features(freq: str) -> int:
    """C, the number of columns :func:`calendar_features` gives for ``freq``."""
    return 2 * len(CYCLES.get(freq_kind(freq)[0], ("year",)))
