"""Forecast past the end of each series with a refit model (:class:`SavedModel`).

The input is the long table the model was trained on (id columns, time, target, features),
optionally with rows *after* the last target value of a series: those rows (target empty)
carry the known-in-advance features of the future steps. The output is a long table with
the id columns, the time column and ``forecast`` for ``horizon`` steps past the end of each
series. `mlf predict` and the MLflow pyfunc model both call :func:`forecast_frame`, so they
give the same numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from ..data.frequency import future_times
from ..data.panel import Columns, Panel, load_panel
from ..errors import DataError, MlfError, UsageError, first_line

if TYPE_CHECKING:
    from .saved_model import SavedModel

FORECAST = "forecast"
"""Name of the forecast column of the output."""
FILL_CHOICES = ("error", "season", "zero")
"""What to do with future feature values the data lacks: refuse, repeat one season back, 0."""


def model_columns(saved: SavedModel) -> Columns:
    """The column mapping the model was trained with (without the metric's weight column)."""
    c = saved.columns
    return Columns(
        target=c["target"],
        time=c["time"],
        ids=tuple(c.get("ids") or ()),
        features=tuple(c.get("features") or ()),
    )


def check_horizon(saved: SavedModel, horizon: int | None) -> int:
    """``horizon`` (default: the model's); refuses one longer than the model was trained for."""
    if horizon is None:
        return saved.horizon
    if int(horizon) != horizon or horizon < 1:
        raise UsageError(f"--horizon must be a whole number >= 1, got {horizon!r}")
    if horizon > saved.horizon:
        raise UsageError(
            f"--horizon {horizon} is longer than the {saved.horizon} steps model "
            f"'{saved.model_name}' (study '{saved.study_name}') was trained to forecast; pass "
            f"--horizon {saved.horizon} or less, or optimize a model with --horizon {horizon}"
        )
    return int(horizon)


def forecast_frame(
    saved: SavedModel,
    frame: pd.DataFrame,
    *,
    horizon: int | None = None,
    fill_features: str = "error",
    source: str = "the data",
    levels: Sequence[float] = (),
) -> pd.DataFrame:
    """Forecast ``horizon`` steps past the last target value of every series of ``frame``.

    Returns a DataFrame with the id columns, the time column and ``forecast`` (original
    units), sorted by series then time; with ``levels`` also ``lo-<level>`` and
    ``hi-<level>``, the model's conformal interval at each level (:mod:`.intervals`). An
    ensemble (``saved.members``) forecasts the weighted sum of its members' forecasts.
    Raises :class:`~mlforecast_cli.errors.UsageError` (a :class:`DataError` for the data)
    with one line saying what to fix.
    """
    from ..ensembles.held_out import series_scale
    from ..ensembles.intervals import check_levels

    h = check_horizon(saved, horizon)
    levels = check_levels(levels)
    if levels and saved.conformal is None:
        raise UsageError(
            f"model '{saved.model_name}' (study {saved.study_name}) has no validation residuals "
            "to give prediction intervals (it was saved by an older mlf); drop --level or run "
            "'mlf optimize' again"
        )
    if fill_features not in FILL_CHOICES:
        raise UsageError(
            f"--fill-features {fill_features!r} is not one of {', '.join(FILL_CHOICES)}"
        )
    if saved.members:
        parts = [(w, point_forecast(m, frame, h, fill_features, source)) for w, m in saved.members]
        panel, times, _ = parts[0][1]
        values = sum(w * part[2] for w, part in parts)
    else:
        panel, times, values = point_forecast(saved, frame, h, fill_features, source)
    bounds = {}
    if levels:
        bounds = saved.conformal.bounds(values, series_scale(panel, panel.lengths), levels)
    return _output(panel, model_columns(saved), times, values, bounds)


def point_forecast(
    saved: SavedModel, frame: pd.DataFrame, h: int, fill_features: str, source: str
) -> tuple[Panel, np.ndarray, np.ndarray]:
    """The panel of ``frame``'s history, the (n, h) future times and the model's forecast."""
    columns = model_columns(saved)
    history, future = _split_history(frame, columns, source)
    panel = load_panel(history, columns, freq=saved.freq, source=source)
    trained = _trained_index(saved, panel, source)
    full = saved.horizon
    times = np.stack([future_times(t[-1], panel.freq, full) for t in panel.times])
    windows = saved.model_inputs(panel)  # Windows, or Histories for a whole-series model
    windows = dataclasses.replace(windows, series=trained[windows.series])
    if columns.features:
        feats = _future_features(future, panel, columns, times, source)
        fill = FeatureFill(feats, times, h, fill_features, source)
        windows = _with_features(saved, panel, windows, fill)
    raw = _predict(saved, windows)
    values = saved.original_units(raw, windows)[:, :h]
    return panel, times[:, :h], values


# --------------------------------------------------------------------------- input


def _split_history(
    frame: pd.DataFrame, columns: Columns, source: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows up to the last target value of each series, and the rows after it."""
    from ..data.panel import future_rows

    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"{source} must be a table (a pandas DataFrame), not {type(frame).__name__}"
        )
    needed = [*columns.ids, columns.time, columns.target, *columns.features]
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source} lacks the column(s) {', '.join(map(repr, missing))} the model was "
            f"trained with (it needs {', '.join(dict.fromkeys(needed))}); rename the columns "
            "or give the model's data"
        )
    if len(frame) == 0:
        raise DataError(f"{source} has no rows; give the history of every series to forecast")
    frame = frame.loc[:, list(dict.fromkeys(needed))].reset_index(drop=True)
    after = future_rows(frame, columns, source)
    return frame.loc[~after], frame.loc[after]


def _trained_index(saved: SavedModel, panel: Panel, source: str) -> np.ndarray:
    """Index of each series of ``panel`` among the series the model was trained on."""
    position = {label: i for i, label in enumerate(saved.series_ids)}
    labels = panel.id_labels
    unknown = [label for label in labels if label not in position]
    if unknown:
        raise DataError(
            f"series {unknown[0]!r} in {source} was not in the data model '{saved.model_name}' "
            f"was trained on ({len(unknown)} such series; known: "
            f"{', '.join(saved.series_ids[:8])}{' ...' if len(saved.series_ids) > 8 else ''}); "
            "forecast only those series, or optimize on data that has them"
        )
    return np.array([position[label] for label in labels], dtype=np.int64)


def _future_features(
    future: pd.DataFrame, panel: Panel, columns: Columns, times: np.ndarray, source: str
) -> np.ndarray:
    """(n, H, f) feature values of the future steps from the rows after each series' end;
    NaN where the data has none."""
    from ..data.panel import parse_times, to_float

    n, full = times.shape
    out = np.full((n, full, len(columns.features)), np.nan)
    if len(future) == 0:
        return out
    row = {key: i for i, key in enumerate(panel.ids)}
    if columns.ids:
        keys = future[list(columns.ids)].itertuples(index=False, name=None)
        sid = np.array([row[tuple(_plain(v) for v in key)] for key in keys], dtype=np.int64)
    else:
        sid = np.zeros(len(future), dtype=np.int64)
    t = parse_times(future[columns.time], columns.time, source)
    grid = times[sid]  # (rows, H): the future grid of each row's series
    hit = grid == t[:, None]
    on_grid = hit.any(axis=1)
    beyond = t > grid[:, -1]
    off = np.flatnonzero(~on_grid & ~beyond)
    if off.size:
        r = int(off[0])
        raise DataError(
            f"series {panel.id_labels[sid[r]]!r} in {source} has a row on "
            f"{_day(t[r])} after its last {columns.target} value that is not on the "
            f"{panel.freq} grid of the forecast ({_day(grid[r, 0])}, {_day(grid[r, 1 % full])}, "
            "...); fix its date or drop it"
        )
    keep = np.flatnonzero(on_grid)
    step = hit[keep].argmax(axis=1)
    for k, name in enumerate(columns.features):
        values = to_float(future[name], name, source, role="feature")
        out[sid[keep], step, k] = values[keep]
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _day(t) -> str:
    stamp = pd.Timestamp(t)
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)


# --------------------------------------------------------------------------- features


class FeatureFill(NamedTuple):
    """The future features of a forecast and how to fill the missing ones."""

    feats: np.ndarray
    """(n, full horizon, k) future feature values, NaN where the data has none."""
    times: np.ndarray
    h: int
    """Steps output (the rest are filled quietly)."""
    fill_features: str
    source: str


def _with_features(saved: SavedModel, panel: Panel, windows, fill: FeatureFill):
    """``windows`` with the future features; missing ones filled or refused."""
    feats, times, h, fill_features, source = fill
    missing = np.isnan(feats)
    if not missing.any():
        return dataclasses.replace(windows, features=feats)
    seasonal = _season_back(panel, feats)
    # steps past the requested horizon are not output: fill them quietly (one season back)
    tail = missing.copy()
    tail[:, :h] = False
    feats = np.where(tail, seasonal, feats)
    missing[:, h:] = False
    if not missing.any():
        return dataclasses.replace(windows, features=feats)
    if fill_features == "season":
        return dataclasses.replace(windows, features=np.where(missing, seasonal, feats))
    if fill_features == "zero" or not _uses_features(saved, panel, windows, feats, missing):
        return dataclasses.replace(windows, features=np.where(missing, 0.0, feats))
    names = [saved.columns["features"][k] for k in np.flatnonzero(missing.any(axis=(0, 1)))]
    series = np.flatnonzero(missing.any(axis=(1, 2)))
    where = "; ".join(
        _span(panel.id_labels[s], times[s][missing[s].any(axis=1)]) for s in series[:3]
    )
    more = f"; and {series.size - 3} more series" if series.size > 3 else ""
    raise DataError(
        f"model '{saved.model_name}' uses the feature(s) {', '.join(names)}, but {source} has no "
        f"value for them at {int(missing.any(axis=2).sum())} future step(s) of {series.size} "
        f"series ({where}{more}); add rows after the last {saved.columns['target']} value with "
        "the known feature values and an empty target, or pass --fill-features season (repeat "
        "the values one season back) or --fill-features zero"
    )


def _span(label: str, times: np.ndarray) -> str:
    days = [_day(t) for t in times]
    return f"{label}: {days[0]}" if len(days) == 1 else f"{label}: {days[0]}..{days[-1]}"


def _season_back(panel: Panel, feats: np.ndarray) -> np.ndarray:
    """(n, H, f) the feature values one season before each future step (0 where unknown);
    known future values are used where the season back is itself in the future."""
    season = max(int(panel.season_length), 1)
    n, full, _ = feats.shape
    out = np.zeros_like(feats)
    for s in range(n):
        hist = panel.features[s]
        ext = np.concatenate([hist, np.zeros_like(feats[s])])
        length = len(hist)
        for j in range(full):
            back = length + j - season
            known = feats[s, j]
            value = ext[back] if back >= 0 else np.zeros_like(known)
            ext[length + j] = np.where(np.isnan(known), value, known)
            out[s, j] = value
    return out


def _uses_features(saved: SavedModel, panel: Panel, windows, feats, missing) -> bool:
    """Whether the forecast depends on the missing feature values.

    A model may say so with a ``uses_features`` attribute; otherwise it is asked: the
    forecast with the missing values at 0, at each feature's lowest and at its highest
    value in the history must be identical for the answer to be no.
    """
    flag = getattr(saved.forecaster, "uses_features", None)
    if flag is not None:
        return bool(flag)
    history = np.concatenate(panel.features)
    lows, highs = history.min(axis=0), history.max(axis=0)
    base = _predict(saved, dataclasses.replace(windows, features=np.where(missing, 0.0, feats)))
    for probe in (lows, highs, lows - 1.0, highs + 1.0):
        filled = np.where(missing, probe[None, None, :], feats)
        if not np.array_equal(_predict(saved, dataclasses.replace(windows, features=filled)), base):
            return True
    return False


# --------------------------------------------------------------------------- output


def _predict(saved: SavedModel, windows) -> np.ndarray:
    try:
        raw = np.asarray(saved.forecaster.predict(windows), dtype=float)
    except MlfError:
        raise
    except Exception as exc:
        first = first_line(exc)
        raise MlfError(
            f"model '{saved.model_name}' failed to forecast: {type(exc).__name__}: {first}"
        ) from exc
    expected = (len(windows), windows.horizon)
    if raw.shape != expected:
        raise MlfError(
            f"model '{saved.model_name}' returned a forecast of shape {raw.shape}, expected "
            f"{expected}"
        )
    if not np.all(np.isfinite(raw)):
        raise MlfError(f"model '{saved.model_name}' forecast NaN or infinite values")
    return raw


def _output(
    panel: Panel,
    columns: Columns,
    times: np.ndarray,
    values: np.ndarray,
    bounds: Mapping[float, tuple[np.ndarray, np.ndarray]],
) -> pd.DataFrame:
    from ..ensembles.intervals import bound_columns

    n, h = values.shape
    out: dict[str, Any] = {}
    for k, name in enumerate(columns.ids):
        out[name] = np.repeat(np.array([key[k] for key in panel.ids], dtype=object), h)
    out[columns.time] = times.reshape(-1)
    out[FORECAST] = values.reshape(-1)
    for level, (lo, hi) in bounds.items():
        lo_name, hi_name = bound_columns(level)
        out[lo_name], out[hi_name] = lo.reshape(-1), hi.reshape(-1)
    frame = pd.DataFrame(out)
    for name in columns.ids:
        frame[name] = frame[name].infer_objects()
    return frame
