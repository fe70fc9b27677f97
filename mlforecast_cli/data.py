"""Load, validate, split, window and scale a sales panel.

A panel is many series (one per id), each a regular time index with a target and optional
known-in-advance features. Every check that the user's data can fail raises
:class:`~mlforecast_cli.errors.DataError` with one line saying what is wrong, where, and how
to fix it. Windowing is vectorised with :func:`numpy.lib.stride_tricks.sliding_window_view`
(a Python loop runs over series, never over rows).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from .contract import Windows
from .errors import DataError

__all__ = [
    "SCALERS",
    "Columns",
    "Fold",
    "Panel",
    "Split",
    "calendar_features",
    "future_times",
    "infer_freq",
    "inverse_scale",
    "labels",
    "load_panel",
    "make_windows",
    "read_table",
    "season_length_for",
    "split_panel",
]

SCALERS = ("none", "series", "window")
"""Names accepted by :func:`make_windows` ``scaler``."""

_NS = np.dtype("datetime64[ns]")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".tsv")
_PARQUET_SUFFIXES = (".parquet", ".pq")
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
        return [_id_label(i) for i in self.ids]

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
        out[c.time] = np.concatenate(self.times) if self.n_series else np.array([], dtype=_NS)
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


def _id_label(key: tuple) -> str:
    return "_".join(str(v) for v in key) if key else "series"


# --------------------------------------------------------------------------- reading


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (optionally compressed) or Parquet file into a DataFrame.

    The format comes from the suffix; an unknown suffix is sniffed (Parquet magic bytes,
    else text as CSV). Raises :class:`DataError` when the file is missing, empty,
    unreadable or neither CSV nor Parquet.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(
            f"data file not found: {p} (working directory {Path.cwd()}); check the path"
        )
    if p.is_dir():
        raise DataError(f"{p} is a folder, not a data file; give a .csv or .parquet file")
    if p.stat().st_size == 0:
        raise DataError(
            f"data file {p} is empty; give a CSV or Parquet file with a header and rows"
        )
    name = p.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        kind = "parquet"
    elif name.endswith(_CSV_SUFFIXES):
        kind = "csv"
    else:
        kind = _sniff(p)
    try:
        if kind == "parquet":
            frame = pd.read_parquet(p)
        else:
            frame = pd.read_csv(p, sep="\t" if name.endswith(".tsv") else ",")
    except ImportError as exc:
        raise DataError(
            f"cannot read Parquet file {p}: {_one_line(exc)}; install pyarrow (pip install "
            "pyarrow) or convert it to CSV"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot read {p} as CSV: it is not text (UTF-8); give a CSV or Parquet file"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(
            f"data file {p} has no columns; give a CSV or Parquet file with a header and rows"
        ) from exc
    except Exception as exc:  # parser errors of pandas/pyarrow: report, never a traceback
        what = _one_line(exc)
        raise DataError(
            f"cannot read {p} as {kind.upper() if kind == 'csv' else 'Parquet'}: {what}; give a "
            "valid CSV or Parquet file"
        ) from exc
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise DataError(
            f"data file {p} has no rows; give a file with a header and at least one row per time "
            "point"
        )
    if (
        kind == "csv"
        and frame.shape[1] == 1
        and "," not in str(frame.columns[0])
        and _looks_binary(p)
    ):
        raise DataError(
            f"{p} is not a CSV or Parquet file (binary content); give a .csv or .parquet file"
        )
    return frame


def _looks_binary(p: Path) -> bool:
    import gzip

    opener = gzip.open if p.name.lower().endswith(".gz") else open
    try:
        with opener(p, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return True
    return b"\x00" in head


def _sniff(p: Path) -> str:
    with open(p, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    if b"\x00" in head or head.startswith(b"\x1f\x8b"):
        raise DataError(
            f"{p} is not a CSV or Parquet file (binary content); give a .csv or .parquet file"
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character may be cut at the end of the sample
        try:
            head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(
                f"{p} is not a CSV or Parquet file (not UTF-8 text); give a .csv or .parquet file"
            ) from None
    return "csv"


# --------------------------------------------------------------------------- loading


def load_panel(
    data: str | Path | pd.DataFrame,
    columns: Columns,
    *,
    freq: str | None = None,
    source: str | None = None,
) -> Panel:
    """Validate a long table and turn it into a :class:`Panel`.

    ``data`` is a path (see :func:`read_table`) or a DataFrame; other columns are ignored.
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
    c = columns
    _check_columns(frame, c, src)
    ids = list(c.ids)

    times = _parse_times(frame[c.time], c.time, src)
    y = _to_float(frame[c.target], c.target, src, role="target")
    bad = ~np.isfinite(y)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        what = "missing" if np.isnan(y[r]) else f"not finite ({y[r]})"
        raise DataError(
            f"target column {c.target!r} in {src} has {int(bad.sum())} missing or infinite "
            f"value(s); first at row {r + 1} ({_where(frame, ids, c.time, r)}) is {what}: fill "
            "or drop those rows"
        )
    feats = np.empty((len(frame), len(c.features)), dtype=np.float64)
    for k, name in enumerate(c.features):
        col = _to_float(frame[name], name, src, role="feature")
        if np.isinf(col).any():
            r = int(np.flatnonzero(np.isinf(col))[0])
            raise DataError(
                f"feature column {name!r} in {src} has an infinite value at row {r + 1} "
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
                f"at row {r + 1}; fill or drop those rows"
            )

    # order rows by series then time, and cut them into series
    if ids:
        try:
            codes = frame.groupby(ids, sort=True, dropna=False).ngroup().to_numpy()
        except TypeError as exc:
            raise DataError(
                f"id columns {ids} in {src} mix types that cannot be sorted ({_one_line(exc)}); "
                "make each id column all text or all numbers"
            ) from exc
    else:
        codes = np.zeros(len(frame), dtype=np.int64)
    order = np.lexsort((times, codes))
    codes, times, y, feats = codes[order], times[order], y[order], feats[order]
    weights = None if weights is None else weights[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(codes)) + 1))
    bounds = np.append(starts, len(codes))
    if ids:
        id_rows = frame[ids].iloc[order[starts]].to_numpy(dtype=object)
        keys = [tuple(v.item() if isinstance(v, np.generic) else v for v in row) for row in id_rows]
    else:
        keys = [()]

    dup = np.flatnonzero((np.diff(codes) == 0) & (np.diff(times) == np.timedelta64(0, "ns")))
    if dup.size:
        k = int(dup[0])
        s = int(np.searchsorted(starts, k, side="right") - 1)
        raise DataError(
            f"duplicate rows in {src}: series {_id_label(keys[s])!r} has {int(dup.size)} "
            f"repeated {c.time} value(s), first {_fmt_time(times[k])}; aggregate or drop the "
            f"duplicates (one row per {'/'.join(ids + [c.time])})"
        )
    lengths = np.diff(bounds)
    if (lengths < 2).any():
        s = int(np.flatnonzero(lengths < 2)[0])
        raise DataError(
            f"series {_id_label(keys[s])!r} in {src} has only {int(lengths[s])} time point; "
            "every series needs at least 2: drop it or check the --id-col columns"
        )

    series_times = np.split(times, starts[1:])
    freq = _check_freq_alias(freq) if freq else _panel_freq(series_times, keys, src, c.time)
    for s in _irregular_candidates(times, codes, starts, freq):
        _check_regular(series_times[s], freq, keys[s], src, c.time)

    return Panel(
        columns=c,
        ids=keys,
        times=series_times,
        y=np.split(y, starts[1:]),
        features=np.split(feats, starts[1:]),
        weights=None if weights is None else np.split(weights, starts[1:]),
        freq=freq,
        season_length=season_length_for(freq),
        source=src,
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
    label = _id_label(tuple(rec[n] for n in ids))
    return f"series {label!r}, {time} {_one_line(rec[time], 40)}"


def _fmt_time(t: np.datetime64) -> str:
    ts = pd.Timestamp(t)
    return str(ts.date()) if ts == ts.normalize() else str(ts)


def _parse_times(col: pd.Series, name: str, src: str) -> np.ndarray:
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
        return parsed.dt.tz_localize(None).to_numpy().astype(_NS)
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime) as exc:
        raise DataError(
            f"time column {name!r} in {src} has dates out of range ({_one_line(exc)}); use dates "
            "between 1678 and 2261"
        ) from exc


def _to_float(col: pd.Series, name: str, src: str, *, role: str) -> np.ndarray:
    """Numbers as float64 (NaN for missing); booleans and TRUE/FALSE text as 1.0/0.0."""
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    text = col.astype("string").str.strip()
    lowered = text.str.lower()
    mapped = text.mask(lowered == "true", "1").mask(lowered == "false", "0")
    values = pd.to_numeric(mapped, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = (
        np.isnan(values)
        & col.notna().to_numpy()
        & (text != "").to_numpy(dtype=bool, na_value=False)
    )
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
    values = _to_float(col, name, src, role="weight")
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


# --------------------------------------------------------------------------- frequency


def _offset(freq: str) -> pd.DateOffset:
    """``freq`` as a pandas offset; :class:`DataError` when it is not an alias."""
    try:
        return pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"unknown frequency {freq!r}; use a pandas offset alias such as W-FRI, MS, D or h "
            "(--freq)"
        ) from exc


def _check_freq_alias(freq: str) -> str:
    return _offset(freq).freqstr


def _one_line(value: object, limit: int = 200) -> str:
    return " ".join(str(value).split())[:limit]


def infer_freq(times: np.ndarray) -> str:
    """The pandas offset alias of a regular, increasing time index (e.g. ``"W-FRI"``).

    Uses :func:`pandas.infer_freq` (the step alone for two points). Raises
    :class:`DataError` when the index has gaps or uneven steps.
    """
    t = np.asarray(times).astype(_NS)
    if t.size < 2:
        raise DataError(
            f"cannot infer a frequency from {t.size} time point(s); give at least 2 or pass --freq"
        )
    if t.size >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                found = pd.infer_freq(pd.DatetimeIndex(t))
            except (TypeError, ValueError):
                found = None
        freq = None if found is None else getattr(found, "freqstr", found)
    else:
        freq = _freq_from_steps(t)
    if freq is None:
        raise DataError(
            f"time index from {_fmt_time(t[0])} to {_fmt_time(t[-1])} is irregular (gaps or "
            "uneven steps); fill the missing dates or pass --freq"
        )
    return _check_freq_alias(freq)


_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def _freq_from_steps(t: np.ndarray) -> str | None:
    """A frequency from the step most of ``t`` follows (tolerates a few gaps); None if none."""
    steps = np.diff(t).astype(np.int64)
    if (steps <= 0).any():
        return None
    vals, counts = np.unique(steps, return_counts=True)
    if 2 * counts.max() < steps.size:
        return None
    step = int(vals[np.argmax(counts)])
    day = 86_400 * 10**9
    stamps = pd.DatetimeIndex(t)
    if step % day == 0:
        days = step // day
        if days % 7 == 0:
            n = days // 7
            return f"{n if n > 1 else ''}W-{_WEEKDAYS[stamps[0].day_of_week]}"
        if days < 28:
            return f"{days if days > 1 else ''}D"
        mult = {range(28, 32): 1, range(89, 93): 3, range(365, 367): 12}
        months = next((m for r, m in mult.items() if days in r), None)
        if months is None:
            return None
        if (stamps.day == 1).all():
            kind = "MS" if months == 1 else ("QS" if months == 3 else "YS")
        elif stamps.is_month_end.all():
            kind = "ME" if months == 1 else ("QE" if months == 3 else "YE")
        else:
            return None
        return kind if months == 1 else f"{kind}-{_MONTHS[stamps[0].month - 1]}"
    for unit, alias in ((3600 * 10**9, "h"), (60 * 10**9, "min"), (10**9, "s")):
        if step % unit == 0:
            n = step // unit
            return f"{n if n > 1 else ''}{alias}"
    return None


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
        return _check_freq_alias(max(found, key=found.__getitem__))
    for t in series_times:
        f = _freq_from_steps(t)
        if f is not None:
            return _check_freq_alias(f)
    raise DataError(
        f"cannot infer the frequency of {time!r} in {src}: series {_id_label(keys[0])!r} has no "
        "regular step; fill the missing dates or pass --freq (e.g. W-FRI, MS, D, h)"
    )


def _fixed_step(freq: str) -> np.timedelta64 | None:
    """The constant step of ``freq`` (hours, days, weeks...), None for calendar offsets."""
    offset = _offset(freq)
    if isinstance(offset, pd.offsets.Tick):
        return np.timedelta64(int(offset.nanos), "ns")
    if isinstance(offset, pd.offsets.Day):  # not a Tick since pandas 3
        return np.timedelta64(int(offset.n), "D").astype("m8[ns]")
    if isinstance(offset, pd.offsets.Week) and offset.weekday is not None:
        return np.timedelta64(7 * int(offset.n), "D").astype("m8[ns]")
    return None


def _irregular_candidates(
    times: np.ndarray, codes: np.ndarray, starts: np.ndarray, freq: str
) -> np.ndarray:
    """Series that may be off the ``freq`` grid (a step that is not one ``freq``, or a first
    date off its anchor), found at once over all rows; the first series is always listed."""
    offset, index = _offset(freq), pd.DatetimeIndex(times)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PerformanceWarning: offsets applied element-wise
        following = (index[:-1] + offset).to_numpy().astype(_NS)
        first = index[starts]
        off_grid = ((first + offset) - offset).to_numpy().astype(_NS) != first.to_numpy()
    bad_step = (times[1:] != following) & (np.diff(codes) == 0)
    suspect = off_grid.copy()
    suspect[np.searchsorted(starts, np.flatnonzero(bad_step), side="right") - 1] = True
    suspect[0] = True
    return np.flatnonzero(suspect)


def _check_regular(t: np.ndarray, freq: str, key: tuple, src: str, time: str) -> None:
    expected = pd.date_range(start=t[0], periods=t.size, freq=freq).to_numpy().astype(_NS)
    off = np.flatnonzero(t != expected)
    if off.size == 0:
        return
    k = int(off[0])
    label = _id_label(key)
    if k == 0:
        raise DataError(
            f"series {label!r} in {src} starts on {_fmt_time(t[0])}, which is not on the {freq} "
            f"grid of {time!r}; align the dates or pass the right --freq"
        )
    problem = "a gap" if t[k] > expected[k] else "a date off the grid"
    raise DataError(
        f"series {label!r} in {src} has {problem} in {time!r} between {_fmt_time(t[k - 1])} and "
        f"{_fmt_time(t[k])} (frequency {freq}, expected {_fmt_time(expected[k])} next); fill the "
        "missing dates or pass the right --freq"
    )


_KIND_CODES = {
    "ns": "second", "us": "second", "ms": "second", "s": "second", "S": "second", "L": "second",
    "U": "second", "N": "second", "min": "minute", "T": "minute", "h": "hour", "H": "hour",
    "bh": "bhour", "BH": "bhour", "cbh": "bhour", "D": "day", "B": "bday", "C": "bday", "W": "week",
}  # fmt: skip
_SEASONS = {"second": 60, "minute": 60, "hour": 24, "bhour": 8, "day": 7, "bday": 5, "week": 52,
            "semimonth": 24, "month": 12, "quarter": 4}  # fmt: skip
_CYCLES = {"second": ("hour", "day", "year"), "minute": ("hour", "day", "year"),
           "hour": ("day", "week", "year"), "bhour": ("day", "week", "year"),
           "day": ("week", "year"), "bday": ("week", "year")}  # fmt: skip


def _freq_kind(freq: str) -> tuple[str, int]:
    """('second' ... 'year' or 'other', multiple) of a pandas offset alias."""
    offset = _offset(freq)
    code = offset.rule_code.split("-")[0]
    if code in _KIND_CODES:
        kind = _KIND_CODES[code]
    elif code.startswith("SM"):
        kind = "semimonth"
    elif "Q" in code:
        kind = "quarter"
    elif "Y" in code or "A" in code:
        kind = "year"
    elif "M" in code:
        kind = "month"
    else:
        kind = "other"
    return kind, abs(int(offset.n)) or 1


def season_length_for(freq: str) -> int:
    """Steps per season: weekly 52, monthly 12, quarterly 4, daily 7 (business days 5),
    hourly 24, minutes/seconds 60, else 1; divided by the multiple when whole
    (``"2W"`` -> 26, ``"15min"`` -> 4), 1 when it does not divide."""
    kind, n = _freq_kind(freq)
    season = _SEASONS.get(kind, 1)
    return season // n if season % n == 0 and season // n > 1 else 1


# --------------------------------------------------------------------------- calendar


def calendar_features(times: np.ndarray, freq: str) -> np.ndarray:
    """(T, C) sin/cos of the position of each time within its cycles.

    Cycles per frequency (C is fixed by ``freq``): sub-hourly -> hour, day, year (C=6);
    hourly -> day, week, year (C=6); daily/business -> week, year (C=4); weekly and
    longer -> year (C=2, the year is their season).
    """
    t = np.asarray(times).astype(_NS)
    cols = []
    for cycle in _CYCLES.get(_freq_kind(freq)[0], ("year",)):
        if cycle == "year":
            start = t.astype("datetime64[Y]")
            frac = (t - start) / ((start + 1).astype(_NS) - start.astype(_NS))
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


def future_times(last: np.datetime64, freq: str, n: int) -> np.ndarray:
    """The ``n`` times after ``last`` on the ``freq`` grid, as datetime64[ns]."""
    if n <= 0:
        return np.array([], dtype=_NS)
    offset = _offset(freq)
    start = pd.Timestamp(last) + offset
    return pd.date_range(start=start, periods=n, freq=offset).to_numpy().astype(_NS)


# --------------------------------------------------------------------------- split


@dataclass(frozen=True)
class Fold:
    """One validation fold: per series, validation is ``[train_end, train_end + horizon)``."""

    train_end: np.ndarray
    horizon: int


@dataclass(frozen=True)
class Split:
    """Train | valid (K rolling folds) | test, per series and by time only."""

    horizon: int
    folds: tuple[Fold, ...]
    test_start: np.ndarray

    @property
    def refit_end(self) -> np.ndarray:
        """(n_series,) end of the refit training part (train + valid): where test starts."""
        return self.test_start


def split_panel(panel: Panel, horizon: int, cv_windows: int = 1, min_train: int = 1) -> Split:
    """Split each series: test = last ``horizon`` steps, ``cv_windows`` validation windows of
    ``horizon`` steps before it (oldest first), training = everything before a fold.

    Raises :class:`DataError` when the horizon or fold count is below 1, or when the shortest
    series is shorter than ``min_train + (cv_windows + 1) * horizon``.
    """
    if int(horizon) != horizon or horizon < 1:
        raise DataError(
            f"horizon must be a whole number >= 1, got {horizon!r}; pass e.g. --horizon 13"
        )
    if int(cv_windows) != cv_windows or cv_windows < 1:
        raise DataError(
            f"number of validation windows must be >= 1, got {cv_windows!r}; pass e.g. "
            "--cv-windows 1"
        )
    horizon, cv_windows, min_train = int(horizon), int(cv_windows), max(int(min_train), 1)
    lengths = panel.lengths
    need = min_train + (cv_windows + 1) * horizon
    if lengths.min() < need:
        s = int(np.argmin(lengths))
        raise DataError(
            f"series {panel.id_labels[s]!r} in {panel.source} has {int(lengths[s])} time points, "
            f"but horizon {horizon} with {cv_windows} validation window(s) needs at least {need} "
            f"({min_train} training + {cv_windows + 1} x {horizon}); pass a smaller --horizon or "
            "--cv-windows, or drop short series"
        )
    test_start = lengths - horizon
    folds = tuple(
        Fold(train_end=test_start - (cv_windows - k) * horizon, horizon=horizon)
        for k in range(cv_windows)
    )
    return Split(horizon=horizon, folds=folds, test_start=test_start)


# --------------------------------------------------------------------------- windows


def _seasonal_lags(horizon: int, season: int) -> np.ndarray:
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

    ``mode="train"``: every sample whose input and labels lie wholly in ``[0, end_i)``.
    ``mode="eval"``: one sample per series with input ``[end_i - window_size, end_i)`` and
    labels ``[end_i, end_i + horizon)``; ``y`` is None when a series has no such labels.
    ``seasonal[:, j]`` is the target ``lag_j = season * ceil((j + 1) / season)`` steps before
    label ``j`` (NaN before the series start). ``scaler``: ``"none"``, ``"series"`` (mean/std
    of ``[0, end_i)``) or ``"window"`` (mean/std of each input window).
    """
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
    w, h = int(window_size), int(horizon)
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
    need = w + h if mode == "train" else w
    short = np.flatnonzero(end < need)
    if short.size:
        s = int(short[0])
        what = f"window_size {w} + horizon {h} = {need}" if mode == "train" else f"window_size {w}"
        raise DataError(
            f"series {panel.id_labels[s]!r} in {panel.source} has only {int(end[s])} time points "
            f"before its {'validation/test' if mode == 'train' else 'forecast'} window, fewer "
            f"than {what} ({short.size} such series); use a smaller window_size or --horizon, or "
            "drop short series"
        )

    n = panel.n_series
    lags = _seasonal_lags(h, panel.season_length)
    pad = int(lags.max())  # NaN history in front of each series: every seasonal index exists
    cols = np.arange(h)

    # the samples: series id and position of the first label step within the series
    if mode == "train":
        counts = end - need + 1
        sid = np.repeat(np.arange(n), counts)
        first = w + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    else:
        sid, first = np.arange(n), end.copy()

    # target: every series in one flat array, as [pad NaN | y_i | h NaN] blocks
    within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    block = pad + lengths + h
    off = np.cumsum(block) - block + pad  # flat index of y_i[0]
    flat = np.full(int(block.sum()), np.nan)
    flat[np.repeat(off, lengths) + within] = np.concatenate(panel.y)
    origin = off[sid] + first  # flat index of each sample's first label step
    windows = sliding_window_view(flat, w + h)[origin - w]  # input and labels, one copy
    x, y = windows[:, :w], windows[:, w:]
    seasonal = flat[origin[:, None] + cols - lags]  # lag_j > j: always before the input end

    # features and calendar over [y_i | h future steps] blocks (unknown features -> 0)
    ext = lengths + h
    foff = np.cumsum(ext) - ext
    rows = np.repeat(foff, lengths) + within
    feat_flat = np.zeros((int(ext.sum()), len(panel.columns.features)))
    feat_flat[rows] = np.concatenate(panel.features)
    lasts = np.array([t[-1] for t in panel.times], dtype=_NS)
    future = (foff + lengths)[:, None] + cols
    times_flat = np.empty(int(ext.sum()), dtype=_NS)
    times_flat[rows] = np.concatenate(panel.times)
    past_end = mode == "eval" and bool((end + h > lengths).any())
    times_flat[future] = _future_block(lasts, panel.freq, h) if past_end else lasts[:, None]
    steps = (foff[sid] + first)[:, None] + cols
    features = feat_flat[steps]
    calendar = calendar_features(times_flat, panel.freq)[steps]

    if scaler == "none":
        loc, scale = np.zeros(len(x)), np.ones(len(x))
    elif scaler == "window":
        loc, scale = _loc_scale(x, axis=1)
    else:  # per series over [0, end_i): the history this fold may see
        row_sid = np.repeat(np.arange(n), lengths)
        seen = within < end[row_sid]
        values = np.concatenate(panel.y)[seen]
        mean = np.bincount(row_sid[seen], weights=values, minlength=n) / end
        var = np.bincount(row_sid[seen], weights=(values - mean[row_sid[seen]]) ** 2, minlength=n)
        loc, scale = _floor_scale(mean, np.sqrt(var / end))
        loc, scale = loc[sid], scale[sid]
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
    )


def _future_block(lasts: np.ndarray, freq: str, h: int) -> np.ndarray:
    """(n, h) the ``h`` times after each of ``lasts`` on the ``freq`` grid."""
    step = _fixed_step(freq)
    k = np.arange(1, h + 1)
    if step is not None:
        return lasts[:, None] + k * step
    offset, index = _offset(freq), pd.DatetimeIndex(lasts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PerformanceWarning: offsets applied element-wise
        return np.stack([(index + offset * j).to_numpy().astype(_NS) for j in k], axis=1)


def inverse_scale(values: np.ndarray, windows: Windows) -> np.ndarray:
    """Undo the scaling of ``windows`` on (n, h) ``values``: ``values * scale + loc``."""
    v = np.asarray(values, dtype=np.float64)
    return v * windows.scale[:, None] + windows.loc[:, None]


def labels(windows: Windows) -> np.ndarray:
    """The (n, h) labels of ``windows`` in original units."""
    if windows.y is None:
        raise ValueError("these windows forecast past the end of the data: they have no labels")
    return inverse_scale(windows.y, windows)
