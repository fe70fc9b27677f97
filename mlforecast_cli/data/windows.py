"""Cut scaled samples (input window, horizon labels, features) out of a panel.

Every series lies in one flat array (:class:`_Flat`) and each sample is gathered from it by
index: no Python loop runs over rows, and a cut costs in proportion to the samples it cuts,
not to the panel (a seeded draw of 100,000 samples of a 30,000-series panel reads only those).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..errors import DataError
from ..models.contract import Windows
from .calendar_features import calendar_features
from .frequency import NS, future_block
from .panel import Panel

__all__ = [
    "CACHE_BYTES",
    "SCALERS",
    "WindowCache",
    "actuals",
    "inverse_scale",
    "labels",
    "make_windows",
    "seasonal_lags",
    "train_windows",
]

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
    flat = _Flat.of(panel)
    end = _check_end(panel, flat.lengths, end)
    sid = np.flatnonzero(end >= 1)  # every series with at least one point before `end`
    past_end = bool((end[sid] + h > flat.lengths[sid]).any())
    return _assemble(flat, end, (sid, end[sid]), (w, h), scaler, past_end)


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
    flat = _Flat.of(panel)
    end = _check_end(panel, flat.lengths, end)
    rows = _train_samples(end, w, h, draw.max_samples if draw else None, draw.seed if draw else 0)
    return _assemble(flat, end, rows, (w, h), scaler, False)


CACHE_BYTES = 256 * 2**20
"""What a :class:`WindowCache` holds at most by default. At 30,000 series the three cuts of a
trial (100,000 training samples, 30,000 scored, 10,000 for the train metrics) take 120-170 MB
at window sizes 48-96, so it keeps the last one or two window sizes' cuts; on M1 monthly
(617 series, about 6 MB a trial) every cut a study makes."""


class WindowCache:
    """The windows cut out of one panel, kept for the next cut with the same arguments.

    The trials of a study cut the same folds again for every configuration with the same
    window size and scaler; with this they pay the cut once. Least recently used cuts are
    dropped once the cache holds more than ``max_bytes`` (the newest always stays). A
    cached :class:`~mlforecast_cli.models.contract.Windows` is handed to every fit that asks
    for it, so a model must not write into its arrays (none of the built-in ones does).
    """

    def __init__(self, panel: Panel, max_bytes: int = CACHE_BYTES) -> None:
        self.panel = panel
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0
        self._cuts: OrderedDict[tuple, tuple[Windows, int]] = OrderedDict()

    def train(
        self,
        end: np.ndarray,
        window_size: int,
        horizon: int,
        scaler: str = "window",
        draw: Draw | None = None,
    ) -> Windows:
        """:func:`train_windows` of this panel, cut once per set of arguments."""

        def cut() -> Windows:
            return train_windows(self.panel, end, window_size, horizon, scaler=scaler, draw=draw)

        return self._get(("train", end, window_size, horizon, scaler, draw), cut)

    def eval(self, end: np.ndarray, window_size: int, horizon: int, scaler: str) -> Windows:
        """:func:`make_windows` (``mode="eval"``) of this panel, cut once per set of arguments."""

        def cut() -> Windows:
            return make_windows(self.panel, end, window_size, horizon, mode="eval", scaler=scaler)

        return self._get(("eval", end, window_size, horizon, scaler, None), cut)

    @property
    def nbytes(self) -> int:
        """Bytes the cached windows' arrays take."""
        return sum(size for _, size in self._cuts.values())

    def _get(self, args: tuple, cut: Callable[[], Windows]) -> Windows:
        mode, end, window_size, horizon, scaler, draw = args
        end = np.ascontiguousarray(end, dtype=np.int64)
        key = (mode, end.tobytes(), int(window_size), int(horizon), str(scaler), draw)
        if key in self._cuts:
            self.hits += 1
            self._cuts.move_to_end(key)
            return self._cuts[key][0]
        self.misses += 1
        windows = cut()
        self._cuts[key] = (windows, _nbytes(windows))
        while len(self._cuts) > 1 and self.nbytes > self.max_bytes:
            self._cuts.popitem(last=False)
        return windows


def _nbytes(windows: Windows) -> int:
    arrays = (getattr(windows, f.name) for f in dataclasses.fields(windows))
    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))


class _Flat(NamedTuple):
    """A panel's series laid end to end, built once per cut: ``y[start[i] + t]`` is point
    ``t`` of series ``i``."""

    panel: Panel
    lengths: np.ndarray
    start: np.ndarray
    y: np.ndarray

    @classmethod
    def of(cls, panel: Panel) -> _Flat:
        lengths = panel.lengths
        y = np.concatenate(panel.y).astype(np.float64, copy=False)
        return cls(panel, lengths, np.cumsum(lengths) - lengths, y)

    def index(self, sid: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Flat index of position ``pos`` (n, k) of series ``sid`` (n,), clipped to the series."""
        last = self.lengths[sid][:, None] - 1
        return self.start[sid][:, None] + np.clip(pos, 0, last)


def _assemble(
    flat: _Flat,
    end: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray],
    shape: tuple[int, int],
    scaler: str,
    past_end: bool,
) -> Windows:
    """The windows of series ``rows[0]`` whose labels start at ``rows[1]``: inputs of
    ``shape[0]`` steps, ``shape[1]`` labels (none when ``past_end``), scaled by ``scaler``."""
    (sid, first), (w, h) = rows, shape
    x, y, seasonal, observed = _cut(flat, sid, first, w, h)
    features, calendar = _covariates(flat, sid, first, h, past_end)
    loc, scale = _scales(flat, scaler, x, end, sid)
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


def _check_end(panel: Panel, lengths: np.ndarray, end: np.ndarray) -> np.ndarray:
    end = np.asarray(end, dtype=np.int64).reshape(-1).copy()
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
    flat: _Flat, sid: np.ndarray, first: np.ndarray, w: int, h: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unscaled input ``x``, labels ``y`` (NaN past the series' end), seasonal lags and
    observed input lengths of the samples of series ``sid`` whose labels start at ``first``."""
    lengths = flat.lengths[sid][:, None]
    # an input step before the series' start repeats its first value: the index is clipped
    x = flat.y[flat.index(sid, first[:, None] + np.arange(-w, 0))]
    label = first[:, None] + np.arange(h)
    y = np.where(label < lengths, flat.y[flat.index(sid, label)], np.nan)
    lagged = label - seasonal_lags(h, flat.panel.season_length)  # lag_j > j: before the input end
    seasonal = np.where(lagged >= 0, flat.y[flat.index(sid, lagged)], np.nan)
    return x, y, seasonal, np.minimum(first, w)


def _within(lengths: np.ndarray) -> np.ndarray:
    """Each point's position within its series, for the series laid end to end."""
    return np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def _covariates(
    flat: _Flat, sid: np.ndarray, first: np.ndarray, h: int, past_end: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The (n, h, k) features and calendar of each sample's label steps (unknown -> 0)."""
    import pandas as pd

    panel = flat.panel
    step = first[:, None] + np.arange(h)
    index = flat.index(sid, step)
    after = step - flat.lengths[sid][:, None]  # >= 0: that many steps after the last point
    k = len(panel.columns.features)
    if k:
        features = np.concatenate(panel.features).astype(np.float64, copy=False)[index]
        features[after >= 0] = 0.0
    else:
        features = np.zeros((*index.shape, 0))
    all_times = np.concatenate(panel.times).astype(NS, copy=False)
    times = all_times[index]  # a step past the end has the series' last time, unless:
    if past_end:  # the times after the last one, on the panel's grid
        rows = np.flatnonzero(after[:, -1] >= 0)
        lasts = all_times[flat.start[sid[rows]] + flat.lengths[sid[rows]] - 1]
        ahead = after[rows]
        future = np.take_along_axis(
            future_block(lasts, panel.freq, h), np.maximum(ahead, 0), axis=1
        )
        times[rows] = np.where(ahead >= 0, future, times[rows])
    # a calendar depends on the time only: computed once per distinct time (a few hundred)
    codes, unique = pd.factorize(times.ravel().view(np.int64))
    calendar = calendar_features(unique.view(NS), panel.freq)[codes.reshape(times.shape)]
    return features, calendar


def _scales(
    flat: _Flat, scaler: str, x: np.ndarray, end: np.ndarray, sid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's (loc, scale) under ``scaler``."""
    if scaler == "none":
        return np.zeros(len(x)), np.ones(len(x))
    if scaler == "window":
        return _loc_scale(x, axis=1)
    # per series over [0, end_i): the history this fold may see
    n, lengths = flat.panel.n_series, flat.lengths
    row_sid = np.repeat(np.arange(n), lengths)
    seen = _within(lengths) < end[row_sid]
    values = flat.y[seen]
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
