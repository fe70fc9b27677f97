"""Cut scaled samples (input window, horizon labels, features) out of a panel.

Vectorised with :func:`numpy.lib.stride_tricks.sliding_window_view`: every series lies in one
flat array, so no Python loop runs over rows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import DataError
from ..models.contract import Windows
from .calendar_features import calendar_features
from .frequency import NS, future_block
from .panel import Panel

__all__ = ["SCALERS", "actuals", "inverse_scale", "labels", "make_windows", "seasonal_lags"]

SCALERS = ("none", "series", "window")
"""Names accepted by :func:`make_windows` ``scaler``."""


def seasonal_lags(horizon: int, season: int) -> np.ndarray:
    """lag_j = season * ceil((j + 1) / season): whole seasons, always > j."""
    season = max(int(season), 1)
    j = np.arange(horizon)
    return season * ((j + season) // season)


def _loc_scale(values: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std along ``axis``; a (near) zero std is floored to |mean| or 1."""
    return _floor_scale(values.mean(axis=axis), values.std(axis=axis))


def _floor_scale(loc: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(loc, scale)`` with a (near) zero or undefined std replaced by |loc|, or 1 at 0."""
    tiny = std <= 1e-8 * np.maximum(np.abs(loc), 1.0)
    fallback = np.where(np.abs(loc) > 0, np.abs(loc), 1.0)
    scale = np.where(tiny | ~np.isfinite(std), fallback, std)
    return loc, scale


class Draw(NamedTuple):
    """A seeded random draw of at most ``max_samples`` training samples."""

    max_samples: int
    seed: int = 0


def make_windows(
    panel: Panel,
    end: np.ndarray,
    window_size: int,
    horizon: int,
    *,
    mode: str,
    scaler: str = "window",
) -> Windows:
    """Cut scaled samples out of ``panel``, seeing only ``[0, end_i)`` of series ``i``.

    ``mode="train"``: every sample whose input and labels lie wholly in ``[0, end_i)``
    (:func:`train_windows`, which can also draw a sample of them).
    ``mode="eval"``: one sample per series that has a point before ``end_i``, with input
    ``[end_i - window_size, end_i)`` and labels ``[end_i, end_i + horizon)``; ``y`` is None when
    a series has no such labels. An input that starts before its series repeats the series'
    first value over the missing steps; ``observed`` counts the real ones.
    ``seasonal[:, j]`` is the target ``lag_j = season * ceil((j + 1) / season)`` steps before
    label ``j`` (NaN before the series start). ``scaler``: ``"none"``, ``"series"`` (mean/std
    of ``[0, end_i)``) or ``"window"`` (mean/std of each input window).
    """
    if mode == "train":
        return train_windows(panel, end, window_size, horizon, scaler=scaler)
    w, h = _check_sizes(mode, scaler, window_size, horizon)
    end = _check_end(panel, end)
    sid = np.flatnonzero(end >= 1)  # every series with at least one point before `end`
    past_end = bool((end[sid] + h > panel.lengths[sid]).any())
    return _assemble(panel, end, (sid, end[sid]), (w, h), scaler, past_end)


def train_windows(
    panel: Panel,
    end: np.ndarray,
    window_size: int,
    horizon: int,
    *,
    scaler: str = "window",
    draw: Draw | None = None,
) -> Windows:
    """Every training sample of ``panel`` before ``end`` (see :func:`make_windows`); a series
    with fewer than ``window_size + horizon`` points there gives its one latest sample (at least
    one input point), with a shorter input. With ``draw``, that many samples drawn at random
    (seeded) when there are more, so that the cost of a fit stops growing with the panel."""
    w, h = _check_sizes("train", scaler, window_size, horizon)
    end = _check_end(panel, end)
    rows = _train_samples(end, w, h, draw.max_samples if draw else None, draw.seed if draw else 0)
    return _assemble(panel, end, rows, (w, h), scaler, False)


def _assemble(
    panel: Panel,
    end: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray],
    shape: tuple[int, int],
    scaler: str,
    past_end: bool,
) -> Windows:
    """The windows of series ``rows[0]`` whose labels start at ``rows[1]``: inputs of
    ``shape[0]`` steps, ``shape[1]`` labels (none when ``past_end``), scaled by ``scaler``."""
    (sid, first), (w, h) = rows, shape
    x, y, seasonal, observed = _cut(panel, sid, first, w, h)
    features, calendar = _covariates(panel, sid, first, h, past_end)
    loc, scale = _scales(panel, scaler, x, end, sid)
    lo, sc = loc[:, None], scale[:, None]
    return Windows(
        x=(x - lo) / sc,
        y=None if past_end else (y - lo) / sc,
        seasonal=(seasonal - lo) / sc,
        features=features,
        calendar=calendar,
        series=sid,
        loc=loc,
        scale=scale,
        step_offset=first,
        observed=observed,
    )


def _check_sizes(mode: str, scaler: str, window_size: int, horizon: int) -> tuple[int, int]:
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', not {mode!r}")
    if scaler not in SCALERS:
        raise DataError(f"unknown scaler {scaler!r}; choose one of {', '.join(SCALERS)}")
    if int(window_size) != window_size or window_size < 1:
        raise DataError(f"window_size must be a whole number >= 1, got {window_size!r}")
    if int(horizon) != horizon or horizon < 1:
        raise DataError(
            f"horizon must be a whole number >= 1, got {horizon!r}; pass e.g. --horizon 13"
        )
    return int(window_size), int(horizon)


def _check_end(panel: Panel, end: np.ndarray) -> np.ndarray:
    end = np.asarray(end, dtype=np.int64).reshape(-1).copy()
    lengths = panel.lengths
    if end.shape != (panel.n_series,):
        raise ValueError(
            f"end must have one entry per series ({panel.n_series}), got shape {end.shape}"
        )
    if (end < 0).any() or (end > lengths).any():
        s = int(np.flatnonzero((end < 0) | (end > lengths))[0])
        raise ValueError(
            f"end[{s}]={int(end[s])} is outside series {panel.id_labels[s]!r} of length "
            f"{int(lengths[s])}"
        )
    return end


def _train_samples(
    end: np.ndarray, w: int, h: int, max_samples: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Series and first label position of every training sample: from ``w`` on, or the one
    latest sample when the history is shorter; ``max_samples`` of them drawn when more."""
    last = end - h
    lo = np.clip(last, 1, w)
    counts = np.where(last >= 1, last - lo + 1, 0)
    sid = np.repeat(np.arange(len(end)), counts)
    first = np.repeat(lo, counts) + np.arange(counts.sum())
    first -= np.repeat(np.cumsum(counts) - counts, counts)
    if max_samples is not None and len(sid) > max_samples:
        keep = np.sort(np.random.default_rng(seed).choice(len(sid), max_samples, False))
        sid, first = sid[keep], first[keep]
    return sid, first


def _cut(
    panel: Panel, sid: np.ndarray, first: np.ndarray, w: int, h: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unscaled input ``x``, labels ``y``, seasonal lags and observed input lengths."""
    lengths = panel.lengths
    lags = seasonal_lags(h, panel.season_length)
    pad = max(int(lags.max()), w)  # NaN history in front of each series: every index exists
    # every series in one flat array, as [pad NaN | y_i | h NaN] blocks
    within = _within(lengths)
    block = pad + lengths + h
    off = np.cumsum(block) - block + pad  # flat index of y_i[0]
    flat = np.full(int(block.sum()), np.nan)
    flat[np.repeat(off, lengths) + within] = np.concatenate(panel.y)
    origin = off[sid] + first  # flat index of each sample's first label step
    windows = sliding_window_view(flat, w + h)[origin - w]  # input and labels, one copy
    x, y = windows[:, :w], windows[:, w:]
    observed = np.minimum(first, w)
    if (observed < w).any():  # short history: repeat the first value over the missing steps
        x = np.take_along_axis(x, np.maximum(np.arange(w), w - observed[:, None]), axis=1)
    seasonal = flat[origin[:, None] + np.arange(h) - lags]  # lag_j > j: before the input end
    return x, y, seasonal, observed


def _within(lengths: np.ndarray) -> np.ndarray:
    """Each point's position within its series, for the series laid end to end."""
    return np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def _covariates(
    panel: Panel, sid: np.ndarray, first: np.ndarray, h: int, past_end: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The (n, h, k) features and calendar of each sample's label steps (unknown -> 0)."""
    lengths = panel.lengths
    cols = np.arange(h)
    ext = lengths + h  # [y_i | h future steps] blocks
    foff = np.cumsum(ext) - ext
    rows = np.repeat(foff, lengths) + _within(lengths)
    feat_flat = np.zeros((int(ext.sum()), len(panel.columns.features)))
    feat_flat[rows] = np.concatenate(panel.features)
    lasts = np.array([t[-1] for t in panel.times], dtype=NS)
    future = (foff + lengths)[:, None] + cols
    times_flat = np.empty(int(ext.sum()), dtype=NS)
    times_flat[rows] = np.concatenate(panel.times)
    times_flat[future] = future_block(lasts, panel.freq, h) if past_end else lasts[:, None]
    steps = (foff[sid] + first)[:, None] + cols
    return feat_flat[steps], calendar_features(times_flat, panel.freq)[steps]


def _scales(
    panel: Panel, scaler: str, x: np.ndarray, end: np.ndarray, sid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's (loc, scale) under ``scaler``."""
    if scaler == "none":
        return np.zeros(len(x)), np.ones(len(x))
    if scaler == "window":
        return _loc_scale(x, axis=1)
    # per series over [0, end_i): the history this fold may see
    n, lengths = panel.n_series, panel.lengths
    row_sid = np.repeat(np.arange(n), lengths)
    seen = _within(lengths) < end[row_sid]
    values = np.concatenate(panel.y)[seen]
    seen_n = np.maximum(end, 1)
    mean = np.bincount(row_sid[seen], weights=values, minlength=n) / seen_n
    var = np.bincount(row_sid[seen], weights=(values - mean[row_sid[seen]]) ** 2, minlength=n)
    loc, scale = _floor_scale(mean, np.sqrt(var / seen_n))
    return loc[sid], scale[sid]


def inverse_scale(values: np.ndarray, windows: Windows) -> np.ndarray:
    """Undo the scaling of ``windows`` on (n, h) ``values``: ``values * scale + loc``."""
    v = np.asarray(values, dtype=np.float64)
    return v * windows.scale[:, None] + windows.loc[:, None]


def labels(windows: Windows) -> np.ndarray:
    """The (n, h) labels of ``windows`` in original units."""
    if windows.y is None:
        raise ValueError("these windows forecast past the end of the data: they have no labels")
    return inverse_scale(windows.y, windows)


def actuals(panel: Panel, windows: Windows) -> np.ndarray:
    """The (n, h) target of ``windows``' horizon steps as read from ``panel``: the data's own
    values, what every metric scores. :func:`labels` gives them back through the scaler,
    where a zero may return as 1e-14 (which MAPE would then divide by)."""
    if windows.y is None:
        raise ValueError("these windows forecast past the end of the data: they have no labels")
    if windows.step_offset is None:
        return labels(windows)
    lengths = panel.lengths
    start = np.cumsum(lengths) - lengths  # flat index of each series' first value
    idx = start[windows.series, None] + windows.step_offset[:, None] + np.arange(windows.horizon)
    return np.concatenate(panel.y).astype(np.float64, copy=False)[idx]
