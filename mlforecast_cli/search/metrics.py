"""Forecast accuracy metrics, computed in the original units of the target.

Every metric takes ``y`` (actuals) and ``yhat`` (forecasts) as (n, h) arrays and returns
a float; lower is better for all of them. A forecast holding NaN or inf gives ``nan``
(the runner fails that trial) rather than an exception. :data:`METRICS` is the one place a
metric is named (label, function, what it needs, MLflow key); numpy loads on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DEFAULT_METRIC",
    "INTERVAL_METRICS",
    "METRICS",
    "METRIC_NAMES",
    "Metric",
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
    "APE_CAP",
    "capped_mape",
    "check_metric",
    "selection_score",
    "coverage",
    "evaluate_intervals",
    "interval_key",
    "metric_label",
    "mlflow_key",
    "msis",
    "zero_actuals",
]


class MetricError(UsageError):
    """The chosen metric cannot be computed on this data (e.g. MAPE with all-zero actuals)."""


def _pair(y: np.ndarray, yhat: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Both as float64 arrays of one shape; None when the forecast is not all finite."""
    import numpy as np

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
    import numpy as np

    return int(np.count_nonzero(np.asarray(y) == 0))


def mape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean absolute percentage error, in percent, over the entries with ``y != 0``.

    Raises :class:`MetricError` when every actual is zero.
    """
    import numpy as np

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


APE_CAP = 100.0
"""Percent at which :func:`capped_mape` caps one point's APE: the error of forecasting zero."""


def capped_mape(y: np.ndarray, yhat: np.ndarray, cap: float = APE_CAP) -> float:
    """MAPE in percent with each point's absolute percentage error capped at ``cap``.

    A forecast of zero errs by exactly 100 %, so with the default cap no point counts for
    more than forecasting nothing there. Equal to :func:`mape` when no point errs by more.
    NaN when the forecast is not all finite or every actual is zero.
    """
    import numpy as np

    pair = _pair(y, yhat)
    if pair is None:
        return float("nan")
    y, yhat = pair
    keep = y != 0
    if not keep.any():
        return float("nan")
    ape = 100.0 * np.abs(y[keep] - yhat[keep]) / np.abs(y[keep])
    return float(np.mean(np.minimum(ape, cap)))


def smape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Symmetric MAPE in percent: mean of ``200 |e| / (|y| + |yhat|)``, with 0/0 counted as 0."""
    import numpy as np

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
    import numpy as np

    pair = _pair(y, yhat)
    if pair is None:
        return float("nan")
    return float(np.mean(np.abs(pair[0] - pair[1])))


def rmse(y: np.ndarray, yhat: np.ndarray) -> float:
    """Root mean squared error."""
    import numpy as np

    pair = _pair(y, yhat)
    if pair is None:
        return float("nan")
    return float(np.sqrt(np.mean(np.square(pair[0] - pair[1]))))


def wape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Weighted absolute percentage error in percent: ``100 sum|e| / sum|y|``.

    Raises :class:`MetricError` when every actual is zero.
    """
    import numpy as np

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
    import numpy as np

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
    Vectorised over the series laid end to end (a panel of 30,000 series in milliseconds).
    """
    import numpy as np

    season = max(int(season), 1)
    n = len(history)
    sizes = np.fromiter((np.size(v) for v in history), dtype=np.int64, count=n)
    values = np.concatenate(
        [np.asarray(v, dtype=np.float64).reshape(-1) for v in history] or [np.zeros(0)]
    )
    lag = np.where(sizes > season, season, 1)
    n_diffs = np.maximum(sizes - lag, 0)
    sid = np.repeat(np.arange(n), n_diffs)  # the series of each difference
    later = np.arange(n_diffs.sum()) - np.repeat(np.cumsum(n_diffs) - n_diffs, n_diffs)
    later += (np.cumsum(sizes) - sizes + lag)[sid]  # flat index of y_t in y_t - y_{t-lag}
    d = _segment_means(np.abs(values[later] - values[later - lag[sid]]), n_diffs)
    level = _segment_means(np.abs(values), sizes)
    tiny = 1e-8 * np.maximum(level, 1.0)
    return np.where(d > tiny, d, np.where(level > 0, level, 1.0))


def _segment_means(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The mean of each run of ``sizes`` consecutive ``values`` (0 for an empty run), summed
    as :func:`numpy.mean` sums each on its own."""
    import numpy as np

    out = np.zeros(len(sizes))
    full = sizes > 0
    if full.any():
        starts = (np.cumsum(sizes) - sizes)[full]
        out[full] = np.add.reduceat(values, starts) / sizes[full]
    return out


def wmae(y: np.ndarray, yhat: np.ndarray, weights: np.ndarray) -> float:
    """Weighted MAE ``sum(w |e|) / sum(w)`` (Walmart: holiday weeks weigh 5, others 1)."""
    import numpy as np

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


@dataclass(frozen=True)
class Metric:
    """One metric, named once: what it is called, computed with, needs, and logged as."""

    name: str
    """Name on the command line and in a space (``optimizer.metric``)."""
    label: str
    """How tables, plots and MLflow keys show it (``MAPE``)."""
    fn: Callable[..., float]
    needs: str | None = None
    """Extra input: ``"scale"`` (MASE's in-sample naive MAE), ``"weights"`` (WMAE), or None."""

    def __call__(self, *args, **kwargs) -> float:
        return self.fn(*args, **kwargs)

    def key(self, prefix: str) -> str:
        """The MLflow metric key: ``val_MAPE``, ``test_MAPE``, ``best_val_MAPE``..."""
        return f"{prefix}_{self.label}"


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("mape", "MAPE", mape),
        Metric("smape", "sMAPE", smape),
        Metric("mae", "MAE", mae),
        Metric("rmse", "RMSE", rmse),
        Metric("mase", "MASE", mase, needs="scale"),
        Metric("wape", "WAPE", wape),
        Metric("wmae", "WMAE", wmae, needs="weights"),
    )
}
"""Every metric by name (a :class:`Metric` is called like its function)."""
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)
DEFAULT_METRIC = "mape"


def metric_label(name: str) -> str:
    """``name`` as tables and MLflow keys show it (``mape`` → ``MAPE``)."""
    found = METRICS.get(name)
    if found:
        return found.label
    base, _, level = name.rpartition("_")
    if base in INTERVAL_METRICS:  # coverage_80, msis_95
        return f"{INTERVAL_METRICS[base].label}_{level}"
    return name.upper()


def mlflow_key(prefix: str, name: str) -> str:
    """The MLflow key of metric ``name`` logged under ``prefix`` (``test``, ``val``...)."""
    return f"{prefix}_{metric_label(name)}"


def check_metric(name: str, flag: str = "--metric") -> str:
    """``name`` if it is a metric; else a one-line :class:`UsageError` naming ``flag``."""
    if name not in METRICS:
        raise UsageError(f"{flag} {name!r} is not one of {', '.join(METRIC_NAMES)}")
    return name


def selection_score(
    name: str,
    y: np.ndarray,
    yhat: np.ndarray,
    metrics: Mapping[str, float],
    ape_cap: float | None = None,
) -> float:
    """What a study minimises for metric ``name`` on one fold: ``metrics[name]`` (the fold's
    :func:`evaluate`), except MAPE when ``ape_cap`` is given (the run's ``--ape-cap``, one
    rule for every model): then each point's APE is capped there (:func:`capped_mape`).

    On a panel where a few series' actuals fall near zero, their APEs of thousands of percent
    would make the mean: the search would pick whatever forecasts those few points low. Capped
    at 100 %, each point counts for at most the error of forecasting zero. The metric reported
    (``val_metrics``, the leaderboard, the test score) stays the plain one.
    """
    if name == "mape" and ape_cap is not None:
        return capped_mape(y, yhat, ape_cap)
    return float(metrics.get(name, float("nan")))


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
    extra = {"scale": scale, "weights": weights}
    for name, metric in METRICS.items():
        if metric.needs is not None:
            if extra[metric.needs] is None:
                continue
            out[name] = metric.fn(y, yhat, extra[metric.needs])
        else:
            try:
                out[name] = metric.fn(y, yhat)
            except MetricError:
                continue
    return out


# --------------------------------------------------------------------------- intervals


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of the actuals inside ``[lo, hi]``, in percent."""
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    return float(100.0 * np.mean((y >= lo) & (y <= hi)))


def msis(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, scale: np.ndarray, level: float) -> float:
    """Mean scaled interval score (M4): the width plus ``2 / alpha`` times each miss, over
    each row's in-sample seasonal-naive MAE (``scale``, (n,)); ``alpha = 1 - level / 100``."""
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    alpha = 1.0 - float(level) / 100.0
    below = np.maximum(lo - y, 0.0)
    above = np.maximum(y - hi, 0.0)
    score = (hi - lo) + (2.0 / alpha) * (below + above)
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    return float(np.mean(score / scale[:, None]))


@dataclass(frozen=True)
class IntervalMetric:
    """A metric of a prediction interval at one level: name, label, and its MLflow key."""

    name: str
    label: str
    fn: Callable[..., float]
    needs_scale: bool = False

    def key(self, level: float) -> str:
        """Name of the value at ``level`` in a metrics dict: ``coverage_80``, ``msis_95``."""
        return f"{self.name}_{level:g}"


INTERVAL_METRICS: dict[str, IntervalMetric] = {
    m.name: m
    for m in (
        IntervalMetric("coverage", "coverage", coverage),
        IntervalMetric("msis", "MSIS", msis, needs_scale=True),
    )
}
"""Metrics of prediction intervals, computed at each level (``test_coverage_80``...)."""


def interval_key(name: str, level: float) -> str:
    """``coverage_80``: the metrics-dict key of interval metric ``name`` at ``level``."""
    return INTERVAL_METRICS[name].key(level)


def evaluate_intervals(
    y: np.ndarray,
    bounds: dict[float, tuple[np.ndarray, np.ndarray]],
    scale: np.ndarray,
) -> dict[str, float]:
    """Every interval metric at every level of ``bounds`` (``{level: (lo, hi)}``)."""
    out: dict[str, float] = {}
    for level, (lo, hi) in bounds.items():
        for metric in INTERVAL_METRICS.values():
            extra = (scale, level) if metric.needs_scale else ()
            out[metric.key(level)] = metric.fn(y, lo, hi, *extra)
    return out
