"""What the statsforecast plugins (``ets``, ``theta``, ``arima``) share.

Each is a *local* whole-series model: one statistical model per series, fit on that series'
history when it is forecast, so ``fit`` only checks the configuration and ``predict`` does
the work (the same model forecasts any history, as ``mlf predict`` needs).

- **Every series gets a forecast.** A model is tried in order along a chain: the configured
  model, then simpler ones the library allows on a short or odd series (without season,
  then the naive last value). How many series fell back, and to what, is in ``notes``.
- **In parallel** where the core says (:func:`mlforecast_cli.series_executor`): on the
  ``task.n_threads`` cores it gives, the series are cut into chunks of about equal work and
  forecast by a pool of worker processes that lives as long as the process, so each worker
  imports statsforecast once, not once per trial; with ``--cluster``, on a Dask cluster's
  workers, for any panel of at least ``PARALLEL_MIN_SERIES`` series. statsforecast
  2.x compiles nothing at run time (its kernels are C++, no numba); that import is the whole
  first-call cost, so a panel whose first series say it is seconds of work (Theta, a small
  panel) is forecast in-process without a pool.
- **Cached.** A configuration's forecasts of the same histories are kept (a small LRU per
  process): a study that samples a configuration again does not recompute it.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any

from mlforecast_cli import ExecutorUnavailable, SeriesForecaster, series_executor

STATS_INSTALL = 'pip install "mlforecast-cli[stats]"'
"""The install hint of every statsforecast plugin."""
NAIVE = "naive (last value)"
"""The last link of every chain: the forecast any history of one value allows."""
PARALLEL_MIN_SERIES = 64
"""Below this many series a forecast runs in-process (a pool costs more than it saves)."""
PROBE_SERIES = 8
"""Series forecast in-process first, to time the model before choosing the pool."""
POOL_WORTH_S = 10.0
"""In-process seconds the remaining series must be expected to take for the pool to be used
(starting its workers costs a few seconds, once per process)."""
CACHE_SIZE = 16

_pool_broken = False
_cache: OrderedDict[tuple, tuple[Any, Any]] = OrderedDict()


class StatsForecaster(SeriesForecaster):
    """A chain of statsforecast models per series; a subclass says which (:meth:`chain`)."""

    uses_features = False
    """The forecast ignores known features (``mlf predict`` needs no future values)."""

    def __init__(self, params, task) -> None:
        super().__init__(params, task)
        self.notes: list[str] = []
        self.check()

    # ----------------------------------------------------------------- for subclasses

    def check(self) -> None:
        """Raise ValueError naming the fault when the params make no valid model."""

    def chain(self, season_length: int) -> list[tuple[str, Any]]:
        """(label, statsforecast model) in the order they are tried; the naive comes last.
        A model of None is a link no series can take (a form the library forbids)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- the contract

    def season_length(self, histories) -> int:
        value = self.params.get("season_length", "data")
        return int(histories.season_length if value in (None, "data") else value)

    def fit(self, train, valid=None, report=None):
        return self

    def predict(self, histories):
        import numpy as np

        chain = self.chain(self.season_length(histories))
        h = histories.horizon
        forecasts, levels = forecast_panel(
            chain, histories.values, histories.offsets, h, self.task.n_threads
        )
        labels = [label for label, _ in chain] + [NAIVE]
        counts = np.bincount(levels, minlength=len(labels))
        n = len(histories)
        self.notes = [
            f"{int(counts[k])} of {n} series forecast by {labels[k]}: "
            f"{', '.join(labels[:k])} could not be fit on them"
            for k in range(1, len(labels))
            if counts[k]
        ]
        return forecasts


# --------------------------------------------------------------------------- the work


def forecast_series(values, offsets, chain, h: int):
    """(n, h) forecasts of every history in ``values``/``offsets`` and (n,) the chain level
    that gave each (``len(chain)``: the naive last value)."""
    import warnings

    import numpy as np

    n = len(offsets) - 1
    out = np.empty((n, h))
    levels = np.full(n, len(chain), dtype=np.int64)
    for i in range(n):
        y = values[offsets[i] : offsets[i + 1]]
        for k, (_, model) in enumerate(chain):
            if model is None:  # a form the library forbids: every series falls past it
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    mean = np.asarray(model.forecast(y=y, h=h)["mean"], dtype=np.float64)
            except Exception:
                continue
            if mean.shape == (h,) and np.all(np.isfinite(mean)):
                out[i], levels[i] = mean, k
                break
        else:
            out[i] = y[-1]
    return out, levels


def forecast_panel(chain, values, offsets, h: int, n_threads: int):
    """:func:`forecast_series` on the core's executor (:func:`mlforecast_cli.series_executor`:
    ``n_threads`` local processes, or the cluster's workers), in-process for a small panel,
    with its result cached for the same chain and histories."""
    import numpy as np

    key = (
        repr([(label, repr(vars(model)) if model is not None else None) for label, model in chain]),
        int(h),
        hashlib.blake2b(np.ascontiguousarray(values).tobytes(), digest_size=16).hexdigest(),
        hashlib.blake2b(np.asarray(offsets, dtype=np.int64).tobytes(), digest_size=16).hexdigest(),
    )
    if key in _cache:
        _cache.move_to_end(key)
        forecasts, levels = _cache[key]
        return forecasts.copy(), levels.copy()
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    executor = series_executor(n_threads)
    result = None
    if executor.remote and n >= PARALLEL_MIN_SERIES:
        result = _mapped(executor, chain, values, offsets, h)
    elif executor.workers > 1 and n >= PARALLEL_MIN_SERIES and not _pool_broken:
        # time the first series here: the pool pays only for more than a few seconds of work
        k = PROBE_SERIES
        start = time.perf_counter()
        head = forecast_series(values[: offsets[k]], offsets[: k + 1], chain, h)
        rest = (time.perf_counter() - start) * (offsets[-1] - offsets[k]) / max(offsets[k], 1)
        if rest > POOL_WORTH_S:
            tail = _mapped(executor, chain, values[offsets[k] :], offsets[k:] - offsets[k], h)
            if tail is not None:
                result = np.concatenate([head[0], tail[0]]), np.concatenate([head[1], tail[1]])
    if result is None:
        result = forecast_series(values, offsets, chain, h)
    _cache[key] = result
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return result[0].copy(), result[1].copy()


def _mapped(executor, chain, values, offsets, h: int):
    """:func:`forecast_series` through ``executor``; None when a local pool cannot run."""
    import numpy as np

    global _pool_broken
    try:
        parts = executor.map_series(forecast_series, values, offsets, chain, h)
    except ExecutorUnavailable:  # workers that cannot start (no importable __main__...)
        _pool_broken = True
        return None
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def cache_size() -> int:
    """Forecasts kept in the cache."""
    return len(_cache)


def clear_cache() -> None:
    """Forget every cached forecast."""
    _cache.clear()
