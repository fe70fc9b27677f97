"""Frequencies of a time index: inference, season length, and the times after a series' end."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = [
    "NS",
    "check_freq_alias",
    "fixed_step",
    "format_time",
    "format_times",
    "freq_from_steps",
    "freq_kind",
    "future_block",
    "future_times",
    "infer_freq",
    "season_length_for",
    "to_offset",
]

NS = np.dtype("datetime64[ns]")


def format_times(times, sep: str = " ") -> list[str]:
    """Times as text: dates alone when every one is at midnight, else date ``sep`` time."""
    stamps = pd.DatetimeIndex(times)
    whole_days = bool((stamps == stamps.normalize()).all())
    return list(stamps.strftime("%Y-%m-%d" if whole_days else f"%Y-%m-%d{sep}%H:%M:%S"))


def format_time(t: np.datetime64) -> str:
    """A time for messages: the date alone at midnight, else the full timestamp."""
    return format_times([t])[0]


def to_offset(freq: str) -> pd.DateOffset:
    """``freq`` as a pandas offset; :class:`DataError` when it is not an alias."""
    try:
        return pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"unknown frequency {freq!r}; use a pandas offset alias such as W-FRI, MS, D or h "
            "(--freq)"
        ) from exc


def check_freq_alias(freq: str) -> str:
    """The canonical alias of ``freq``; quarters are named by their first (start-anchored) or
    last (end-anchored) quarter of the year, so ``QS-OCT`` and ``QS-JAN`` both read ``QS-JAN``.
    """
    offset = to_offset(freq)
    quarterly = (pd.offsets.QuarterBegin, pd.offsets.BQuarterBegin)
    if isinstance(offset, quarterly + (pd.offsets.QuarterEnd, pd.offsets.BQuarterEnd)):
        residue = (offset.startingMonth - 1) % 3
        month = residue + 1 if isinstance(offset, quarterly) else residue + 10
        offset = type(offset)(n=offset.n, startingMonth=month)
    return offset.freqstr


def infer_freq(times: np.ndarray) -> str:
    """The pandas offset alias of a regular, increasing time index (e.g. ``"W-FRI"``).

    Uses :func:`pandas.infer_freq` (the step alone for two points). Raises
    :class:`DataError` when the index has gaps or uneven steps.
    """
    t = np.asarray(times).astype(NS)
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
        freq = freq_from_steps(t)
    if freq is None:
        raise DataError(
            f"time index from {format_time(t[0])} to {format_time(t[-1])} is irregular (gaps or "
            "uneven steps); fill the missing dates or pass --freq"
        )
    return check_freq_alias(freq)


_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def freq_from_steps(t: np.ndarray) -> str | None:
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


def fixed_step(freq: str) -> np.timedelta64 | None:
    """The constant step of ``freq`` (hours, days, weeks...), None for calendar offsets."""
    offset = to_offset(freq)
    if isinstance(offset, pd.offsets.Tick):
        return np.timedelta64(int(offset.nanos), "ns")
    if isinstance(offset, pd.offsets.Day):  # not a Tick since pandas 3
        return np.timedelta64(int(offset.n), "D").astype("m8[ns]")
    if isinstance(offset, pd.offsets.Week) and offset.weekday is not None:
        return np.timedelta64(7 * int(offset.n), "D").astype("m8[ns]")
    return None


_KIND_CODES = {
    "ns": "second", "us": "second", "ms": "second", "s": "second", "S": "second", "L": "second",
    "U": "second", "N": "second", "min": "minute", "T": "minute", "h": "hour", "H": "hour",
    "bh": "bhour", "BH": "bhour", "cbh": "bhour", "D": "day", "B": "bday", "C": "bday", "W": "week",
}  # fmt: skip
_SEASONS = {"second": 60, "minute": 60, "hour": 24, "bhour": 8, "day": 7, "bday": 5, "week": 52,
            "semimonth": 24, "month": 12, "quarter": 4}  # fmt: skip
CYCLES = {"second": ("hour", "day", "year"), "minute": ("hour", "day", "year"),
           "hour": ("day", "week", "year"), "bhour": ("day", "week", "year"),
           "day": ("week", "year"), "bday": ("week", "year")}  # fmt: skip


def freq_kind(freq: str) -> tuple[str, int]:
    """('second' ... 'year' or 'other', multiple) of a pandas offset alias."""
    offset = to_offset(freq)
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
    kind, n = freq_kind(freq)
    season = _SEASONS.get(kind, 1)
    return season // n if season % n == 0 and season // n > 1 else 1


def future_times(last: np.datetime64, freq: str, n: int) -> np.ndarray:
    """The ``n`` times after ``last`` on the ``freq`` grid, as datetime64[ns]."""
    if n <= 0:
        return np.array([], dtype=NS)
    offset = to_offset(freq)
    start = pd.Timestamp(last) + offset
    return pd.date_range(start=start, periods=n, freq=offset).to_numpy().astype(NS)


def future_block(lasts: np.ndarray, freq: str, h: int) -> np.ndarray:
    """(n, h) the ``h`` times after each of ``lasts`` on the ``freq`` grid."""
    step = fixed_step(freq)
    k = np.arange(1, h + 1)
    if step is not None:
        return lasts[:, None] + k * step
    offset, index = to_offset(freq), pd.DatetimeIndex(lasts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PerformanceWarning: offsets applied element-wise
        return np.stack([(index + offset * j).to_numpy().astype(NS) for j in k], axis=1)
