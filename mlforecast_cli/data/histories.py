"""Whole histories of a panel's series for whole-series models (:class:`Histories`).

Every history lies in one flat array with offsets, as in Nixtla mlforecast's
``grouped_array.py``: ragged lengths, no padding, one copy of the values a fold may see.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..models.contract import Histories
from .frequency import NS, future_block
from .panel import Panel

__all__ = ["make_histories", "select"]


def make_histories(
    panel: Panel, end: np.ndarray, horizon: int, series: np.ndarray | None = None
) -> Histories:
    """The histories ``[0, end_i)`` of the ``series`` of ``panel`` (default: all) and their next
    ``horizon`` steps; ``end`` holds one cut-off per series of the panel.

    ``features`` over the horizon come from the panel where it has them (a fold's validation
    or test steps), else 0 (past the data: the caller fills them in); ``y`` is left None.
    """
    end = np.asarray(end, dtype=np.int64).reshape(-1)
    lengths = panel.lengths
    rows = np.arange(panel.n_series) if series is None else np.asarray(series, dtype=np.int64)
    if end.shape != (panel.n_series,) or (end[rows] < 1).any() or (end > lengths).any():
        raise ValueError(f"end must hold one value in [1, length] per series, got {end}")
    h = int(horizon)
    n, f = len(rows), len(panel.columns.features)
    offsets = np.concatenate([[0], np.cumsum(end[rows])])
    values = np.concatenate([panel.y[s][: end[s]] for s in rows]).astype(np.float64)
    times = np.concatenate([panel.times[s][: end[s]] for s in rows]).astype(NS)
    past = np.concatenate([panel.features[s][: end[s]] for s in rows]).reshape(len(values), f)
    future_features = np.zeros((n, h, f))
    future_times = np.empty((n, h), dtype=NS)
    if (end[rows] + h > lengths[rows]).any():
        lasts = np.array([panel.times[s][-1] for s in rows], dtype=NS)
        block = future_block(lasts, panel.freq, h)  # (n, h) steps after each series' end
    for i, s in enumerate(rows):
        inside = min(h, int(lengths[s] - end[s]))
        future_times[i, :inside] = panel.times[s][end[s] : end[s] + inside]
        future_features[i, :inside] = panel.features[s][end[s] : end[s] + inside]
        if inside < h:
            future_times[i, inside:] = block[i, : h - inside]
    return Histories(
        values=values,
        offsets=offsets,
        times=times,
        past_features=past,
        features=future_features,
        future_times=future_times,
        series=rows,
        season_length=int(panel.season_length),
    )


def select(histories: Histories, rows: np.ndarray) -> Histories:
    """The histories at ``rows`` (any order, repeats allowed), in one new flat array."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    starts, stops = histories.offsets[rows], histories.offsets[rows + 1]
    take = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)] or [[]])
    take = take.astype(np.int64)
    return dataclasses.replace(
        histories,
        values=histories.values[take],
        offsets=np.concatenate([[0], np.cumsum(stops - starts)]),
        times=histories.times[take],
        past_features=histories.past_features[take],
        features=histories.features[rows],
        future_times=histories.future_times[rows],
        series=histories.series[rows],
        y=None if histories.y is None else histories.y[rows],
    )
