"""A validated sales panel: many series, each a regular time index with a target and optional
known-in-advance features; loading it from a long table checks everything a user's data can
get wrong and raises :class:`~mlforecast_cli.errors.DataError` with one line saying what is
wrong, where, and how to fix it.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, one_line
from .frequency import (
    NS,
    check_freq_alias,
    format_time,
    freq_from_steps,
    season_length_for,
    to_offset,
)
from .tables import read_table

__all__ = [
    "Columns",
    "Panel",
    "future_rows",
    "id_label",
    "load_panel",
    "parse_times",
    "to_float",
]

_HOLIDAY_WEIGHT = 5.0  # Walmart's WMAE convention: holiday weeks weigh 5, the others 1


# --------------------------------------------------------------------------- columns, panel


@dataclass(frozen=True)
class Columns:
    """Which columns of the table hold what.

    ``ids`` may be empty (the table is a single series). ``weight`` names the WMAE weight
    column: a boolean column means Walmart's convention (True -> 5, False -> 1), a numeric
    one is used as is.
    """

    target: str
    time: str
    ids: tuple[str, ...]
    features: tuple[str, ...] = ()
    weight: str | None = None


@dataclass
class Panel:
    """A validated panel: one entry per series in each list, series sorted by id."""

    columns: Columns
    ids: list[tuple]
    times: list[np.ndarray]
    y: list[np.ndarray]
    features: list[np.ndarray]
    weights: list[np.ndarray] | None
    freq: str
    season_length: int
    source: str

    @property
    def n_series(self) -> int:
        """Number of series."""
        return len(self.y)

    @property
    def lengths(self) -> np.ndarray:
        """(n_series,) number of time points of each series."""
        return np.fromiter((len(v) for v in self.y), dtype=np.int64, count=len(self.y))

    @property
    def id_labels(self) -> list[str]:
        """One readable label per series: its id values joined with ``_``."""
        return [id_label(i) for i in self.ids]

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the content: column mapping, frequency, ids, times, values."""
        h = hashlib.sha256()
        meta = {
            "columns": asdict(self.columns),
            "freq": self.freq,
            "ids": [list(map(repr, i)) for i in self.ids],
        }
        h.update(json.dumps(meta, sort_keys=True).encode())
        for i in range(self.n_series):
            parts = [self.times[i], self.y[i], self.features[i]]
            if self.weights is not None:
                parts.append(self.weights[i])
            for arr in parts:
                a = np.ascontiguousarray(arr)
                h.update(str(a.shape).encode())
                h.update(a.tobytes())
        return h.hexdigest()

    def to_frame(self) -> pd.DataFrame:
        """The panel in long format again: id columns, time, target, features (and weight).

        Loading the result with the same :class:`Columns` gives back an equal panel.
        """
        c = self.columns
        lengths = self.lengths
        out: dict[str, np.ndarray] = {}
        for k, name in enumerate(c.ids):
            out[name] = np.repeat(np.array([i[k] for i in self.ids], dtype=object), lengths)
        out[c.time] = np.concatenate(self.times) if self.n_series else np.array([], dtype=NS)
        out[c.target] = np.concatenate(self.y) if self.n_series else np.array([])
        feats = np.concatenate(self.features) if self.n_series else np.zeros((0, len(c.features)))
        for k, name in enumerate(c.features):
            out[name] = feats[:, k]
        if c.weight is not None and self.weights is not None:
            w = np.concatenate(self.weights)
            if c.weight in c.features:
                col = out[c.weight]
                as_bool = np.isin(col, (0.0, 1.0)).all() and np.array_equal(
                    w, np.where(col == 1.0, _HOLIDAY_WEIGHT, 1.0)
                )
                out[c.weight] = col.astype(bool) if as_bool else col
            else:
                out[c.weight] = w
        frame = pd.DataFrame(out)
        for name in c.ids:  # restore plain dtypes (int ids stay ints)
            frame[name] = frame[name].infer_objects()
        return frame


def id_label(key: tuple) -> str:
    return "_".join(str(v) for v in key) if key else "series"


def load_panel(
    data: str | Path | pd.DataFrame,
    columns: Columns,
    *,
    freq: str | None = None,
    source: str | None = None,
) -> Panel:
    """Validate a long table and turn it into a :class:`Panel`.

    ``data`` is a path (see :func:`read_table`) or a DataFrame; other columns are ignored.
    Rows after the last target value of a series (the known future: target empty, features
    filled, as `mlf predict` reads them) are left out.
    ``freq`` (a pandas offset alias) is inferred from the dates when not given. Raises
    :class:`DataError` for missing columns, unparseable dates, non-numeric or missing
    targets, non-numeric features, duplicate (id, time) rows, gaps, or series with fewer
    than 2 time points.
    """
    if isinstance(data, pd.DataFrame):
        frame, src = data, source or "the data frame"
    else:
        frame, src = read_table(data), source or str(data)
    if len(frame) == 0:
        raise DataError(f"{src} has no rows; give a table with at least 2 time points per series")
    _check_columns(frame, columns, src)
    row_number = np.arange(1, len(frame) + 1)  # of the file, for messages
    future = future_rows(frame, columns, src)
    if future.any():
        frame, row_number = frame.loc[~future].reset_index(drop=True), row_number[~future]

    rows = _read_rows(frame, columns, src, row_number)
    keys, starts = _cut_series(frame, columns, src, rows)
    series_times = np.split(rows.times, starts[1:])
    freq = check_freq_alias(freq) if freq else _panel_freq(series_times, keys, src, columns.time)
    for s in _irregular_candidates(rows.times, rows.codes, starts, freq):
        _check_regular(series_times[s], freq, keys[s], src, columns.time)

    return Panel(
        columns=columns,
        ids=keys,
        times=series_times,
        y=np.split(rows.y, starts[1:]),
        features=np.split(rows.features, starts[1:]),
        weights=None if rows.weights is None else np.split(rows.weights, starts[1:]),
        freq=freq,
        season_length=season_length_for(freq),
        source=src,
    )


@dataclass
class _Rows:
    """A table's checked columns as arrays, one entry per row (file order until cut)."""

    times: np.ndarray
    y: np.ndarray
    features: np.ndarray
    weights: np.ndarray | None
    codes: np.ndarray | None = None


def _read_rows(frame: pd.DataFrame, c: Columns, src: str, row_number: np.ndarray) -> _Rows:
    """Parse and check the time, target, feature, weight and id columns."""
    ids = list(c.ids)
    times = parse_times(frame[c.time], c.time, src)
    y = to_float(frame[c.target], c.target, src, role="target")
    bad = ~np.isfinite(y)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        what = "missing" if np.isnan(y[r]) else f"not finite ({y[r]})"
        raise DataError(
            f"target column {c.target!r} in {src} has {int(bad.sum())} missing or infinite "
            f"value(s); first at row {row_number[r]} ({_where(frame, ids, c.time, r)}) is "
            f"{what}: fill or drop those rows"
        )
    feats = np.empty((len(frame), len(c.features)), dtype=np.float64)
    for k, name in enumerate(c.features):
        col = to_float(frame[name], name, src, role="feature")
        if np.isinf(col).any():
            r = int(np.flatnonzero(np.isinf(col))[0])
            raise DataError(
                f"feature column {name!r} in {src} has an infinite value at row {row_number[r]} "
                f"({_where(frame, ids, c.time, r)}); replace it or drop the column from --feature"
            )
        feats[:, k] = np.nan_to_num(col, nan=0.0)
    weights = (
        None if c.weight is None else _weights(frame[c.weight], c.weight, src, frame, ids, c.time)
    )
    for name in ids:
        missing = frame[name].isna().to_numpy()
        if missing.any():
            r = int(np.flatnonzero(missing)[0])
            raise DataError(
                f"id column {name!r} in {src} has {int(missing.sum())} missing value(s), first "
                f"at row {row_number[r]}; fill or drop those rows"
            )
    return _Rows(times=times, y=y, features=feats, weights=weights)


def _cut_series(
    frame: pd.DataFrame, c: Columns, src: str, rows: _Rows
) -> tuple[list[tuple], np.ndarray]:
    """Order ``rows`` by series then time (in place) and return each series' key and first row.

    Refuses duplicate (id, time) rows and series of fewer than 2 points.
    """
    ids = list(c.ids)
    if ids:
        try:
            codes = frame.groupby(ids, sort=True, dropna=False).ngroup().to_numpy()
        except TypeError as exc:
            raise DataError(
                f"id columns {ids} in {src} mix types that cannot be sorted ({one_line(exc)}); "
                "make each id column all text or all numbers"
            ) from exc
    else:
        codes = np.zeros(len(frame), dtype=np.int64)
    order = np.lexsort((rows.times, codes))
    rows.codes, rows.times, rows.y = codes[order], rows.times[order], rows.y[order]
    rows.features = rows.features[order]
    rows.weights = None if rows.weights is None else rows.weights[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(rows.codes)) + 1))
    if ids:
        id_rows = frame[ids].iloc[order[starts]].to_numpy(dtype=object)
        keys = [tuple(v.item() if isinstance(v, np.generic) else v for v in row) for row in id_rows]
    else:
        keys = [()]

    same_series = np.diff(rows.codes) == 0
    dup = np.flatnonzero(same_series & (np.diff(rows.times) == np.timedelta64(0, "ns")))
    if dup.size:
        k = int(dup[0])
        s = int(np.searchsorted(starts, k, side="right") - 1)
        raise DataError(
            f"duplicate rows in {src}: series {id_label(keys[s])!r} has {int(dup.size)} "
            f"repeated {c.time} value(s), first {format_time(rows.times[k])}; aggregate or drop "
            f"the duplicates (one row per {'/'.join(ids + [c.time])})"
        )
    lengths = np.diff(np.append(starts, len(rows.codes)))
    if (lengths < 2).any():
        s = int(np.flatnonzero(lengths < 2)[0])
        raise DataError(
            f"series {id_label(keys[s])!r} in {src} has only {int(lengths[s])} time point; "
            "every series needs at least 2: drop it or check the --id-col columns"
        )
    return keys, starts


def future_rows(frame: pd.DataFrame, columns: Columns, src: str) -> np.ndarray:
    """Which rows of ``frame`` come after the last target value of their series: the known
    future (target empty, features filled). Every bad target value before that (text, missing,
    infinite) is a :class:`DataError` naming each kind at once, as is a series with no target
    value at all."""
    values, text = numbers(frame[columns.target])
    empty = np.isnan(values) & ~text
    future = _after_last_value(frame, columns, src, empty) if empty.any() else empty
    check_target(frame, columns, src, np.where(future, 0.0, values), text)
    return future


def _after_last_value(
    frame: pd.DataFrame, columns: Columns, src: str, empty: np.ndarray
) -> np.ndarray:
    ids = list(columns.ids)
    if ids:
        codes = frame.groupby(ids, sort=False, dropna=False).ngroup().to_numpy()
    else:
        codes = np.zeros(len(frame), dtype=np.int64)
    ns = parse_times(frame[columns.time], columns.time, src).astype(np.int64)
    never = np.iinfo(np.int64).min
    last = np.full(int(codes.max()) + 1, never)
    np.maximum.at(last, codes[~empty], ns[~empty])
    lacking = np.flatnonzero(last == never)
    if lacking.size:
        r = int(np.flatnonzero(codes == lacking[0])[0])
        label = id_label(tuple(frame[n].iloc[r] for n in ids))
        raise DataError(
            f"series {label!r} in {src} has no {columns.target} value ({lacking.size} such "
            "series): give its history, or drop its rows"
        )
    return ns > last[codes]


_THOUSANDS = r"[-+]?\d{1,3}(,\d{3})+(\.\d*)?"


def check_target(
    frame: pd.DataFrame, columns: Columns, src: str, values: np.ndarray, text: np.ndarray
) -> None:
    """Refuse a target with text (where ``text``), missing or infinite values (in ``values``,
    from :func:`numbers`, with the known future's rows filled), naming every kind of bad value
    in one message, so that one round of fixing is enough."""
    raw = frame[columns.target]
    shown = raw.astype("string").str.strip()
    separators = text & shown.str.fullmatch(_THOUSANDS).to_numpy(dtype=bool, na_value=False)
    kinds = [
        (np.isnan(values) & ~text, "missing (empty, or a marker such as n/a)", ""),
        (np.isinf(values), "infinite", ""),
        (separators, "written with thousands separators", "write them without (12345.00)"),
        (text & ~separators, "text", ""),
    ]
    ids = list(columns.ids)
    parts = []
    for mask, what, fix in kinds:
        if mask.any():
            r = int(np.flatnonzero(mask)[0])
            value = "" if what.startswith("missing") else f"{one_line(raw.iloc[r], 40)!r} "
            where = f"first {value}at row {r + 1} ({_where(frame, ids, columns.time, r)})"
            parts.append(f"{int(mask.sum())} {what}, {where}" + (f": {fix}" if fix else ""))
    if parts:
        raise DataError(
            f"target column {columns.target!r} in {src} has values that are not numbers: "
            f"{'; '.join(parts)}; fix or drop those rows"
        )


def _check_columns(frame: pd.DataFrame, c: Columns, src: str) -> None:
    available = ", ".join(map(str, frame.columns))
    roles = [
        (c.target, "target", "set it with --target"),
        (c.time, "time", "set it with --time-col"),
    ]
    roles += [(n, "id", "set it with --id-col") for n in c.ids]
    roles += [(n, "feature", "set it with --feature") for n in c.features]
    if c.weight is not None:
        roles.append((c.weight, "weight", "name an existing column as the weight"))
    for name, role, fix in roles:
        if name not in frame.columns:
            raise DataError(
                f"{role} column {name!r} not found in {src}; available columns: {available}; {fix}"
            )
    clash = {c.target, c.time} & (set(c.ids) | set(c.features))
    if c.target == c.time or clash or set(c.ids) & set(c.features):
        raise DataError(
            f"column mapping for {src} uses a column twice (target {c.target!r}, time "
            f"{c.time!r}, ids {list(c.ids)}, features {list(c.features)}); give each role its "
            "own column"
        )


def _where(frame: pd.DataFrame, ids: list[str], time: str, row: int) -> str:
    """'series X, <time> V' for an original row position, for messages."""
    rec = frame.iloc[row]
    label = id_label(tuple(rec[n] for n in ids))
    return f"series {label!r}, {time} {one_line(rec[time], 40)}"


def parse_times(col: pd.Series, name: str, src: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        first = col.iloc[0]
        raise DataError(
            f"time column {name!r} in {src} holds numbers (first value {first!r}), not dates; "
            "give dates like 2024-01-31 or choose another --time-col"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(col, errors="coerce", utc=True)
        if parsed.isna().any() and col.notna().all():  # mixed formats: try element-wise
            parsed = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        value = col.iloc[r]
        what = "is missing" if pd.isna(value) else f"{str(value)!r} is not a date"
        raise DataError(
            f"time column {name!r} in {src}: row {r + 1} {what} ({int(bad.sum())} bad value(s)); "
            "use dates like 2024-01-31 (ISO 8601) or choose another --time-col"
        )
    try:
        return parsed.dt.tz_localize(None).to_numpy().astype(NS)
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime) as exc:
        raise DataError(
            f"time column {name!r} in {src} has dates out of range ({one_line(exc)}); use dates "
            "between 1678 and 2261"
        ) from exc


def numbers(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The column as float64 (NaN where missing or text; booleans and TRUE/FALSE text as
    1.0/0.0), and where it holds text that is not a number."""
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(col), dtype=bool)
    text = col.astype("string").str.strip()
    lowered = text.str.lower()
    # a missing value compares as NA, which mask() would take as True
    is_true, is_false = (lowered == "true").fillna(False), (lowered == "false").fillna(False)
    mapped = text.mask(is_true, "1").mask(is_false, "0")
    values = pd.to_numeric(mapped, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = (
        np.isnan(values)
        & col.notna().to_numpy()
        & (text != "").to_numpy(dtype=bool, na_value=False)
    )
    return values, bad


def to_float(col: pd.Series, name: str, src: str, *, role: str) -> np.ndarray:
    """Numbers as float64 (NaN for missing); booleans and TRUE/FALSE text as 1.0/0.0."""
    values, bad = numbers(col)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        fix = (
            "fix or drop those rows"
            if role == "target"
            else "encode it as numbers or drop it from --feature"
        )
        raise DataError(
            f"{role} column {name!r} in {src} is not numeric: row {r + 1} holds "
            f"{str(col.iloc[r])!r} ({int(bad.sum())} non-numeric value(s)); {fix}"
        )
    return values


def _weights(
    col: pd.Series, name: str, src: str, frame: pd.DataFrame, ids: list[str], time: str
) -> np.ndarray:
    lowered = col.astype("string").str.strip().str.lower()
    is_bool = pd.api.types.is_bool_dtype(col) or (
        not pd.api.types.is_numeric_dtype(col) and lowered.dropna().isin(["true", "false"]).all()
    )
    values = to_float(col, name, src, role="weight")
    if is_bool:
        values = np.where(values == 1.0, _HOLIDAY_WEIGHT, np.where(np.isnan(values), np.nan, 1.0))
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"weight column {name!r} in {src} has a missing, infinite or negative value at row "
            f"{r + 1} ({_where(frame, ids, time, r)}); weights must be booleans or numbers >= 0"
        )
    return values


def _panel_freq(series_times: list[np.ndarray], keys: list[tuple], src: str, time: str) -> str:
    """The frequency most series agree on (series with gaps are checked against it later)."""
    found: dict[str, int] = {}
    for t in [t for t in series_times if t.size >= 3][:50]:  # a sample is enough
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = pd.infer_freq(pd.DatetimeIndex(t))
        if f is not None:
            f = getattr(f, "freqstr", f)
            found[f] = found.get(f, 0) + 1
    if found:
        return check_freq_alias(max(found, key=found.__getitem__))
    for t in series_times:
        f = freq_from_steps(t)
        if f is not None:
            return check_freq_alias(f)
    raise DataError(
        f"cannot infer the frequency of {time!r} in {src}: series {id_label(keys[0])!r} has no "
        "regular step; fill the missing dates or pass --freq (e.g. W-FRI, MS, D, h)"
    )


def _irregular_candidates(
    times: np.ndarray, codes: np.ndarray, starts: np.ndarray, freq: str
) -> np.ndarray:
    """Series that may be off the ``freq`` grid (a step that is not one ``freq``, or a first
    date off its anchor), found at once over all rows; the first series is always listed."""
    offset, index = to_offset(freq), pd.DatetimeIndex(times)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PerformanceWarning: offsets applied element-wise
        following = (index[:-1] + offset).to_numpy().astype(NS)
        first = index[starts]
        off_grid = ((first + offset) - offset).to_numpy().astype(NS) != first.to_numpy()
    bad_step = (times[1:] != following) & (np.diff(codes) == 0)
    suspect = off_grid.copy()
    suspect[np.searchsorted(starts, np.flatnonzero(bad_step), side="right") - 1] = True
    suspect[0] = True
    return np.flatnonzero(suspect)


def _check_regular(t: np.ndarray, freq: str, key: tuple, src: str, time: str) -> None:
    expected = pd.date_range(start=t[0], periods=t.size, freq=freq).to_numpy().astype(NS)
    off = np.flatnonzero(t != expected)
    if off.size == 0:
        return
    k = int(off[0])
    label = id_label(key)
    if k == 0:
        raise DataError(
            f"series {label!r} in {src} starts on {format_time(t[0])}, which is not on the {freq} "
            f"grid of {time!r}; align the dates or pass the right --freq"
        )
    problem = "a gap" if t[k] > expected[k] else "a date off the grid"
    raise DataError(
        f"series {label!r} in {src} has {problem} in {time!r} between {format_time(t[k - 1])} and "
        f"{format_time(t[k])} (frequency {freq}, expected {format_time(expected[k])} next); "
        "fill the missing dates or pass the right --freq"
    )
