"""Forecast accuracy metrics, computed in the original units of the target.

Every metric takes ``y`` (actuals) and ``yhat`` (forecasts) as (n, h) arrays and returns
a float; lower is better for all of them. A forecast holding NaN or inf gives ``nan``
(the runner fails that trial) rather than an exception. Imports only numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .errors import UsageError

__all__ = [
    "METRICS",
    "MetricError",
    "evaluate",
    "mae",
    "mape",
    "mase",
    "mase_scale",
    "rmse",
    "smape",
    "wape",
    "wmae",
    "zero_actuals",
]


class MetricError(UsageError):
    """The chosen metric cannot be computed on this data (e.g. MAPE with all-zero actuals)."""


def _pair(y: np.ndarray, yhat: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Both as float64 arrays of one shape; None when the forecast is not all finite."""
    y = np.asarray(y, dtype=np.float64)
    yhat = np.asarray(yhat, dtype=np.float64)
    if y.shape != yhat.shape:
        raise ValueError(f"actuals have shape {y.shape} but forecasts {yhat.shape}")
    if y.size == 0:
        raise ValueError("no values to score")
    if not np.isfinite(yhat).all():
        return None
    return y, yhat


def zero_actuals(y: np.ndarray) -> int:
    """How many actuals are exactly zero (MAPE leaves them out)."""
    return int(np.count_nonzero(np.asarray(y) == 0))


def mape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean absolute percentage error, in percent, over the entries with ``y != 0``.

    Raises :class:`MetricError` when every actual is zero.
    """
    pair = _pair(y, yhat)
    y = np.asarray(y, dtype=np.float64)
    keep = y != 0
    if not keep.any():
        raise MetricError(
            f"MAPE is undefined: all {y.size} actual values are zero; "
            "choose another metric with --metric smape, wape or mae"
        )
    if pair is None:
        return float("nan")
    y, yhat = pair
    return float(100.0 * np.mean(np.abs(y[keep] - yhat[keep]) / np.abs(y[keep])))


def smape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Symmetric MAPE in percent: mean of ``200 |e| / (|y| + |yhat|)``, with 0/0 counted as 0."""
    pair = _pair(y, yhat)
    if pair is None:
        return float("nan")
    y, yhat = pair
    denom = np.abs(y) + np.abs(yhat)
    err = np.abs(y - yhat)
    ratio = np.divide(err, denom, out=np.zeros_like(err), where=denom > 0)
    return float(200.0 * np.mean(ratio))


def mae(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean absolute error."""
    pair = _pair(y, yhat)
    if pair is None:
        return float("nan")
    return float(np.mean(np.abs(pair[0] - pair[1])))


def rmse(y: np.ndarray, yhat: np.ndarray) -> float:
    """Root mean squared error."""
    pair = _pair(y, yhat)
    if pair is None:
        return float("nan")
    return float(np.sqrt(np.mean(np.square(pair[0] - pair[1]))))


def wape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Weighted absolute percentage error in percent: ``100 sum|e| / sum|y|``.

    Raises :class:`MetricError` when every actual is zero.
    """
    pair = _pair(y, yhat)
    total = np.abs(np.asarray(y, dtype=np.float64)).sum()
    if total == 0:
        raise MetricError(
            f"WAPE is undefined: all {y.size} actual values are zero; "
            "choose another metric with --metric mae or rmse"
        )
    if pair is None:
        return float("nan")
    return float(100.0 * np.abs(pair[0] - pair[1]).sum() / total)


def mase(y: np.ndarray, yhat: np.ndarray, scale: np.ndarray) -> float:
    """Mean absolute scaled error: ``|e|`` divided by each row's in-sample seasonal-naive MAE.

    ``scale`` is (n,), one entry per row (see :func:`mase_scale`).
    """
    pair = _pair(y, yhat)
    if pair is None:
        return float("nan")
    y, yhat = pair
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    if scale.shape != (y.shape[0],):
        raise ValueError(f"scale must have one entry per row ({y.shape[0]}), got {scale.shape}")
    return float(np.mean(np.abs(y - yhat) / scale[:, None]))


def mase_scale(history: Sequence[np.ndarray], season: int) -> np.ndarray:
    """(n,) in-sample MAE of the seasonal naive forecast, ``mean |y_t - y_{t-season}|``.

    A series with no more than ``season`` points falls back to lag 1; a zero (or undefined)
    scale is floored to the series' mean ``|y|``, then to 1, so that MASE stays finite.
    """
    season = max(int(season), 1)
    out = np.empty(len(history), dtype=np.float64)
    for i, values in enumerate(history):
        v = np.asarray(values, dtype=np.float64)
        lag = season if v.size > season else 1
        d = np.mean(np.abs(v[lag:] - v[:-lag])) if v.size > lag else 0.0
        level = np.mean(np.abs(v)) if v.size else 0.0
        tiny = 1e-8 * max(level, 1.0)
        out[i] = d if d > tiny else (level if level > 0 else 1.0)
    return out


def wmae(y: np.ndarray, yhat: np.ndarray, weights: np.ndarray) -> float:
    """Weighted MAE ``sum(w |e|) / sum(w)`` (Walmart: holiday weeks weigh 5, others 1)."""
    pair = _pair(y, yhat)
    if pair is None:
        return float("nan")
    y, yhat = pair
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != y.shape:
        raise ValueError(f"weights have shape {w.shape} but actuals {y.shape}")
    total = w.sum()
    if not total > 0:
        raise ValueError("weights sum to zero")
    return float(np.sum(w * np.abs(y - yhat)) / total)


METRICS: dict[str, Callable[..., float]] = {
    "mape": mape,
    "smape": smape,
    "mae": mae,
    "rmse": rmse,
    "mase": mase,
    "wape": wape,
    "wmae": wmae,
}
"""Metric name -> function; ``mase`` also takes ``scale``, ``wmae`` takes ``weights``."""


def evaluate(
    y: np.ndarray,
    yhat: np.ndarray,
    *,
    scale: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> dict[str, float]:
    """Every metric that can be computed: ``mase`` needs ``scale``, ``wmae`` needs ``weights``;
    MAPE and WAPE are left out when every actual is zero."""
    out: dict[str, float] = {}
    for name, fn in METRICS.items():
        if name == "mase":
            if scale is None:
                continue
            out[name] = fn(y, yhat, scale)
        elif name == "wmae":
            if weights is None:
                continue
            out[name] = fn(y, yhat, weights)
        else:
            try:
                out[name] = fn(y, yhat)
            except MetricError:
                continue
    return out
