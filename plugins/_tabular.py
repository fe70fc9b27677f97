"""What the tree-model plugins share: windows → feature matrix, target, validation score, pruning.

A tree model is a *global* model: one model for every series of the panel, the series index a
feature. The ``horizon`` steps are forecast directly, in one of two ways (``strategy``):

``stacked`` (default)
    one model; each sample gives ``horizon`` rows, the step index a feature;
``per_step``
    one model per horizon step, each seeing the whole seasonal profile of the horizon.

Units (``units``): by default (``relative``) every value a model sees or predicts is divided by
its window's level (the median, or with ``level: mean`` the mean, absolute value of the input
window in original units), whatever the core's scaler did, so a tree learns ratios that carry
over between series and years;
``scaled`` keeps the core's scaled units. Target (``target``): the value itself (``direct``,
default), its gap to the seasonal naive forecast (``seasonal_gap``) or to that forecast
brought down to where the series' level fell over the last season (``level_gap``); with
``gap_loss: huber`` a gap target is learned with the library's Huber loss, because a seasonal
naive that misses by 10× makes heavy-tailed gaps; with ``gap_clip: c`` the gap labels are
clipped to ``±c`` before the model learns them (a library with no Huber loss: the forest), so
that it moves the seasonal naive by a bounded amount. ``transform: log`` learns ``sign(v) log(1 +
|v| / log_offset)``; ``max_train_rows`` caps the rows a fit learns from (a seeded draw).
docs/trees.md has the measurements behind these defaults.

While searching, every boosting round (or batch of trees) is scored on the validation window
in the original units (MAPE, %): the number the pruner compares across trials, and the one
early stopping watches. This module imports no model library, and numpy only when used, so
that listing models stays light.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mlforecast_cli import Forecaster, ReportFn, Windows
from mlforecast_cli.models.baseline import seasonal_naive

if TYPE_CHECKING:
    import numpy as np

STRATEGIES = ("stacked", "per_step")
TARGETS = ("direct", "seasonal_gap", "level_gap", "last_gap")
TRANSFORMS = ("none", "log")
STOP_ON = ("metric", "loss")
UNITS = ("relative", "scaled")
LEVELS = ("median", "mean")
GAP_LOSSES = ("same", "huber")
TREES_INSTALL = 'pip install "mlforecast-cli[trees]"'
"""How to install what the tree plugins need (their ModelSpec.install)."""
ROWS_PER_THREAD = 50_000
"""Training rows that justify one more thread (see :meth:`TreeForecaster.threads_for`)."""
TREND_STEPS = 4
"""Recent steps averaged for the trend and year-over-year features."""
PREDICT_CHUNK = 50_000
"""Samples whose stacked rows are built and predicted at once."""


# --------------------------------------------------------------------------- units


baseline = seasonal_naive
"""(n, h) seasonal naive forecast: one season back where known, else the last value."""


def relative_view(windows: Windows, level: str = "median") -> Windows:
    """``windows`` in units of each window's level: the median (or mean) absolute value of
    its input window, in original units.

    The median by default: a holiday spike inside the window must not lift the level of every
    forecast (see docs/trees.md).

    The result keeps the contract's invariant ``original = value * scale + loc`` (with
    ``loc = 0`` and ``scale = level``), so whatever scores in original units works on either.
    A window that is mostly zeros falls back to its mean absolute value, an all-zero one to 1.
    """
    import numpy as np

    lo, sc = windows.loc[:, None], windows.scale[:, None]
    x = windows.x * sc + lo
    if level not in LEVELS:
        raise ValueError(f"level {level!r} is not one of {', '.join(LEVELS)}")
    mean = np.abs(x).mean(axis=1)
    value = np.median(np.abs(x), axis=1) if level == "median" else mean
    value = np.where(value > 0, value, mean)  # mostly-zero windows
    value = np.where(np.isfinite(value) & (value > 0), value, 1.0)
    lv = value[:, None]
    return replace(
        windows,
        x=x / lv,
        y=None if windows.y is None else (windows.y * sc + lo) / lv,
        seasonal=(windows.seasonal * sc + lo) / lv,
        loc=np.zeros_like(value),
        scale=value,
    )


def level_growth(windows: Windows, season: int, steps: int = TREND_STEPS) -> np.ndarray:
    """(n, 1) how each window's series has grown over one season: the mean of its last
    ``steps`` values over the mean of the same steps one season before; 1 where the window
    does not reach that far back or a mean is not positive."""
    import numpy as np

    x = windows.x
    n, w = x.shape
    reach = season + steps
    if season < 2 or w < reach:
        return np.ones((n, 1))
    now = x[:, -steps:].mean(axis=1)
    before = x[:, -reach:-season].mean(axis=1)
    ok = (now > 0) & (before > 0)
    if windows.observed is not None:
        ok &= windows.observed >= reach
    return np.where(ok, now / np.where(ok, before, 1.0), 1.0)[:, None]


def level_naive(windows: Windows, season: int) -> np.ndarray:
    """(n, h) the seasonal naive forecast brought down to the series' level where it fell:
    times :func:`level_growth` where that is below 1, unchanged where the series grew.

    A series that fell to a tenth of its level over the last season is forecast at a tenth of
    last year's values, not at them. Only a fall: MAPE charges at most 100 % for forecasting
    too low and without bound for forecasting too high, and a rise measured on a few noisy
    points, carried over a whole horizon, overshoots (docs/trees.md, issue 26)."""
    import numpy as np

    naive = baseline(windows)
    fall = np.minimum(level_growth(windows, season), 1.0)
    return np.where(np.isfinite(windows.seasonal), naive * fall, naive)  # else the last value


# --------------------------------------------------------------------------- features


def _window_block(windows: Windows, series_id: bool = True) -> tuple[np.ndarray, list[str]]:
    """(n, k) what every horizon step of a sample shares: lags, window statistics, series."""
    import warnings

    import numpy as np

    x = windows.x
    w = x.shape[1]
    lags = x[:, ::-1]  # lag 1 first: column k is lag k + 1 whatever the window size
    if windows.observed is not None and (windows.observed < w).any():
        lags = np.where(np.arange(w) < windows.observed[:, None], lags, np.nan)  # padding
    q = max(1, min(TREND_STEPS, w))
    recent = x[:, -q:].mean(axis=1)
    with warnings.catch_warnings():  # all-NaN seasonal rows (first year) stay NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        seasonal_start = np.nanmean(windows.seasonal[:, :q], axis=1)
        seasonal_mean = np.nanmean(windows.seasonal, axis=1)
    cols = [
        lags,
        x.mean(axis=1, keepdims=True),
        x.std(axis=1, keepdims=True),
        x.min(axis=1, keepdims=True),
        x.max(axis=1, keepdims=True),
        (recent - x[:, :q].mean(axis=1))[:, None],  # trend over the window
        (recent - seasonal_start)[:, None],  # now against the start of last year's horizon
        seasonal_mean[:, None],
    ]
    names = [f"lag_{k + 1}" for k in range(w)]
    names += ["win_mean", "win_std", "win_min", "win_max", "win_trend", "yoy_gap"]
    names += ["seasonal_mean"]
    if series_id:
        cols.append(windows.series[:, None].astype(np.float64))
        names.append("series")
    return np.concatenate(cols, axis=1), names


def _step_block(windows: Windows, j: int) -> tuple[np.ndarray, list[str]]:
    """(n, k) what is known of horizon step ``j``: season-back values, features, calendar."""
    import numpy as np

    s = windows.seasonal
    n, h = s.shape
    nan = np.full(n, np.nan)
    cols = [
        s[:, j],
        s[:, j - 1] if j > 0 else nan,  # last year's neighbours: holidays move by a week
        s[:, j + 1] if j + 1 < h else nan,
    ]
    f = windows.features[:, j, :]
    c = windows.calendar[:, j, :]
    names = ["seasonal", "seasonal_prev", "seasonal_next"]
    names += [f"feature_{k}" for k in range(f.shape[1])]
    names += [f"calendar_{k}" for k in range(c.shape[1])]
    return np.column_stack([*cols, f, c]), names


def stacked_matrix(windows: Windows, series_id: bool = True) -> tuple[np.ndarray, list[str]]:
    """(n * h, k) float32, one row per (sample, step), sample-major (row ``i * h + j``), the
    step a feature; filled in place, so no float64 copy of the whole matrix is made."""
    import numpy as np

    shared, shared_names = _window_block(windows, series_id)
    n, h = len(windows), windows.horizon
    names: list[str] = []
    out: np.ndarray | None = None
    k = shared.shape[1]
    for j in range(h):
        block, names = _step_block(windows, j)
        if out is None:
            out = np.empty((n, h, k + 1 + block.shape[1]), dtype=np.float32)
            out[:, :, :k] = shared[:, None, :]
        out[:, j, k] = j
        out[:, j, k + 1 :] = block
    return out.reshape(n * h, -1), shared_names + ["step", *names]


def step_matrix(windows: Windows, j: int, series_id: bool = True) -> tuple[np.ndarray, list[str]]:
    """(n, k) float32, the rows of the step-``j`` model: the whole seasonal profile plus step
    ``j``."""
    import numpy as np

    shared, shared_names = _window_block(windows, series_id)
    block, names = _step_block(windows, j)
    profile = windows.seasonal
    profile_names = [f"seasonal_h{k + 1}" for k in range(profile.shape[1])]
    matrix = np.concatenate([shared, profile, block], axis=1).astype(np.float32)
    return matrix, shared_names + profile_names + names


# --------------------------------------------------------------------------- scoring


def mape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """MAPE in percent over the non-zero actuals, each point capped at 100 %, which pruning and
    early stopping watch; NaN if none. The study selects on it under ``--ape-cap 100``
    (:func:`mlforecast_cli.search.metrics.selection_score`), else on the plain MAPE: reporting
    the plain MAPE here instead moved nothing measurable (docs/trees.md, "Windows no longer
    than the history")."""
    from mlforecast_cli.search.metrics import capped_mape

    return capped_mape(actual, forecast)


# --------------------------------------------------------------------------- pruning


class Monitor:
    """Bridges a library's per-round validation score to the core's ``report``.

    A library callback calls :meth:`round` after each boosting round (or batch of trees) with
    the round number (1-based) and the validation score; False means "stop training": the
    pruner said so. The pruning exception is kept and raised again by :meth:`reraise` once the
    library has returned, because some libraries (CatBoost) wrap what their callbacks raise.
    """

    def __init__(self, report: ReportFn | None) -> None:
        self.report = report
        self.error: BaseException | None = None
        self.history: list[float] = []

    def round(self, step: int, value: float) -> bool:
        self.history.append(float(value))
        if self.report is None or self.error is not None:
            return self.error is None
        try:
            self.report(int(step), float(value))
        except Exception as exc:  # optuna.TrialPruned, or whatever the caller raises
            self.error = exc
            return False
        return True

    def reraise(self) -> None:
        if self.error is not None:
            raise self.error


@dataclass
class EvalSet:
    """The validation rows of one model and how to score its raw outputs on them.

    ``score(raw)`` takes the model's outputs on ``X`` (in ``X``'s row order) and returns the
    MAPE (%) of the forecasts they make, in original units.
    """

    X: np.ndarray
    y: np.ndarray
    score: Callable[[np.ndarray], float]
    huber_delta: float | None = None
    """Set when training minimises a Huber loss with this delta: :meth:`loss` is then Huber's."""

    def loss(self, raw: np.ndarray) -> float:
        """The training loss of raw outputs in the model's units: squared error, or Huber's."""
        import numpy as np

        err = np.abs(np.asarray(raw, dtype=np.float64) - self.y)
        d = self.huber_delta
        if d is None:
            return float(np.mean(err**2))
        return float(np.mean(np.where(err <= d, 0.5 * err**2, d * (err - 0.5 * d))))


# --------------------------------------------------------------------------- the model


def _positive_or_none(key: str, value: Any) -> float | None:
    """``value`` as a positive finite float (None stays None), else a ValueError naming ``key``."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"{key} must be a positive number, got {value!r}")
    return number


class TreeForecaster(Forecaster):
    """A global tree model over the panel; a subclass wraps one library.

    It implements :meth:`_fit_one` (train one model for at most ``rounds`` rounds; when
    ``valid`` is given, call ``monitor.round`` once per round with ``valid.score`` of the
    round's predictions, stop when it returns False, and stop early on that score) and
    :meth:`_predict_one`. ``rounds_param`` names its rounds parameter; :meth:`refit_params`
    sets it to the rounds early stopping chose.
    """

    supports_pruning = True
    objective_key: str | None = "objective"
    """The space key naming the library's loss (None: the library has one loss)."""
    default_objective = "regression"
    huber_objective: str | None = None
    """The library's name of its Huber loss, for ``gap_loss: huber``."""
    rounds_param = "n_estimators"
    default_rounds = 300
    early_stopping = True

    def __init__(self, params, task) -> None:
        super().__init__(params, task)
        # OpenMP threads that spin while waiting make a busy machine many times slower; this
        # must be set before the library loads OpenMP (a value the user set is kept)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.strategy = str(self.params.get("strategy", "stacked"))
        self.target = str(self.params.get("target", "direct"))
        self.transform = str(self.params.get("transform", "none"))
        self.series_id = bool(self.params.get("series_id", True))
        self.stop_on = str(self.params.get("stop_on", "metric"))
        self.units = str(self.params.get("units", "relative"))
        self.level = str(self.params.get("level", "median"))
        self.gap_loss = str(self.params.get("gap_loss", "same"))
        self.gap_clip = _positive_or_none("gap_clip", self.params.get("gap_clip"))
        self.log_offset = _positive_or_none("log_offset", self.params.get("log_offset", 1.0))
        rows_cap = _positive_or_none("max_train_rows", self.params.get("max_train_rows"))
        self.max_train_rows = None if rows_cap is None else max(1, int(rows_cap))
        for key, value, allowed in (
            ("strategy", self.strategy, STRATEGIES),
            ("target", self.target, TARGETS),
            ("transform", self.transform, TRANSFORMS),
            ("stop_on", self.stop_on, STOP_ON),
            ("units", self.units, UNITS),
            ("level", self.level, LEVELS),
            ("gap_loss", self.gap_loss, GAP_LOSSES),
        ):
            if value not in allowed:
                raise ValueError(f"{key} {value!r} is not one of {', '.join(allowed)}")
        self.models: list[Any] = []
        self.best_rounds: list[int] = []
        self.feature_names: list[str] = []
        self.threads = max(1, int(task.n_threads))
        """Threads the library may use; :meth:`fit` lowers it for small data."""

    # ----------------------------------------------------------------- for subclasses

    def _fit_one(
        self,
        X: np.ndarray,
        y: np.ndarray,
        valid: EvalSet | None,
        monitor: Monitor,
        rounds: int,
        categorical: list[int],
    ) -> tuple[Any, int]:
        """Train one model; return it and the number of rounds it uses."""
        raise NotImplementedError

    def _predict_one(self, model: Any, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def rounds(self) -> int:
        return int(self.params.get(self.rounds_param, self.default_rounds))

    @property
    def patience(self) -> int:
        """Rounds without a better validation score before early stopping."""
        return int(self.params.get("early_stopping_rounds", 30))

    @property
    def huber_delta(self) -> float:
        """Where a Huber loss turns linear (``huber_delta``); by default 10 % of the level in
        relative units, 1 std else."""
        value = self.params.get("huber_delta")
        if value is not None:
            return float(value)
        return 0.1 if self.units == "relative" else 1.0

    def objective(self) -> str | None:
        """The library's loss name: ``objective_key``'s value, or its Huber loss
        (``huber_objective``) for a gap target with ``gap_loss: huber``."""
        if self.objective_key is None:
            return None
        if self.target != "direct" and self.gap_loss == "huber" and self.huber_objective:
            return self.huber_objective
        return str(self.params.get(self.objective_key, self.default_objective))

    @property
    def robust_loss(self) -> bool:
        """Whether training minimises a Huber loss."""
        return self.huber_objective is not None and self.objective() == self.huber_objective

    @property
    def seed(self) -> int:
        return int(self.task.seed)

    def threads_for(self, rows: int) -> int:
        """Threads for ``rows`` training rows: at most the task's, one per ROWS_PER_THREAD.

        On panels of a few thousand rows a second thread costs more than it saves (OpenMP
        start-up and spinning: ten times slower on a busy 2-core machine), so small fits run
        on one thread whatever the task allows.
        """
        return max(1, min(int(self.task.n_threads), rows // ROWS_PER_THREAD))

    # ----------------------------------------------------------------- units and target

    def _view(self, windows: Windows) -> Windows:
        """The windows in the units the model works in."""
        return relative_view(windows, self.level) if self.units == "relative" else windows

    def _anchor(self, windows: Windows) -> np.ndarray | float:
        """What the target is measured from (transformed): 0, the seasonal naive, the seasonal
        naive at the series' fallen level (:func:`level_naive`) or the last value."""
        if self.target == "seasonal_gap":
            return self._to(baseline(windows))
        if self.target == "level_gap":
            return self._to(level_naive(windows, self.task.season_length))
        if self.target == "last_gap":
            return self._to(windows.x[:, -1:])
        return 0.0

    def _to(self, values: np.ndarray) -> np.ndarray:
        """The target transform: identity, or ``sign(v) log(1 + |v| / c)`` (``log``, ``c`` the
        ``log_offset``): with a small ``c`` an error of ``d`` is a relative error of about
        ``d`` at every value above ``c``, so a trough weighs as much as a peak."""
        import numpy as np

        if self.transform != "log":
            return values
        return np.sign(values) * np.log1p(np.abs(values) / self.log_offset)

    def _from(self, values: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.transform != "log":
            return values
        return np.sign(values) * np.expm1(np.abs(values)) * self.log_offset

    def _labels(self, windows: Windows) -> np.ndarray:
        """(n, h) what the model learns, in its units."""
        if windows.y is None:
            raise ValueError("these windows have no labels to learn from")
        return self._to(windows.y) - self._anchor(windows)

    def _forecast(self, windows: Windows, raw: np.ndarray) -> np.ndarray:
        """(n, h) forecast in the model's units from its (n, h) outputs."""
        return self._from(raw + self._anchor(windows))

    def _scorer(self, windows: Windows, j: int | None) -> Callable[[np.ndarray], float]:
        """Scores outputs on ``windows`` (every step, or step ``j`` only) in original units."""
        import numpy as np

        actual = windows.y * windows.scale[:, None] + windows.loc[:, None]
        n, h = actual.shape
        cols = slice(None) if j is None else slice(j, j + 1)

        def score(raw: np.ndarray) -> float:
            raw = np.asarray(raw, dtype=np.float64).reshape(n, -1)
            if j is not None:
                full = np.zeros((n, h))
                full[:, j] = raw[:, 0]
                raw = full
            forecast = self._forecast(windows, raw) * windows.scale[:, None]
            forecast += windows.loc[:, None]
            return mape(actual[:, cols], forecast[:, cols])

        return score

    # ----------------------------------------------------------------- the contract

    def fit(
        self, train: Windows, valid: Windows | None = None, report: ReportFn | None = None
    ) -> TreeForecaster:
        import numpy as np

        train = self._view(train)
        has_valid = valid is not None and valid.y is not None
        valid = self._view(valid) if has_valid else None
        labels = self._labels(train)
        if self.gap_clip is not None and self.target != "direct":
            labels = np.clip(labels, -self.gap_clip, self.gap_clip)
        self.models, self.best_rounds = [], []
        if self.strategy == "stacked":
            parts = [(stacked_matrix, None, labels.reshape(-1), report)]
        else:  # one model per step: nothing to prune on until all are fit, so no report
            parts = [(step_matrix, j, labels[:, j], None) for j in range(train.horizon)]
        for build, j, y, report_to in parts:
            keep = self._kept_rows(np.isfinite(y))
            X, self.feature_names = self._rows(build, train, j, keep)
            self.threads = self.threads_for(int(keep.sum()))
            evalset = None
            if valid is not None:
                Xv, _ = self._rows(build, valid, j)
                yv = self._labels(valid)
                yv = yv.reshape(-1) if j is None else yv[:, j]
                delta = self.huber_delta if self.robust_loss else None
                evalset = EvalSet(Xv, yv, self._scorer(valid, j), delta)
            monitor = Monitor(report_to)
            model, best = self._fit_one(
                X, y[keep], evalset, monitor, self.rounds, self._categorical()
            )
            monitor.reraise()
            self.models.append(model)
            self.best_rounds.append(int(best))
        return self

    def _kept_rows(self, finite: np.ndarray) -> np.ndarray:
        """Which training rows a model learns from: those with a finite label (always all, for
        the core's windows), a seeded draw of ``max_train_rows`` of them when there are more.

        Stacked rows of overlapping windows repeat each other: on long series with a long
        horizon (366 series x 200 points, h = 24: 1.3 million rows) a draw learns about as
        well at a fraction of the cost (docs/trees.md, "Cost on long series")."""
        import numpy as np

        cap = self.max_train_rows
        if cap is None or int(finite.sum()) <= cap:
            return finite
        rows = np.flatnonzero(finite)
        drawn = np.random.default_rng(self.seed).choice(rows, size=cap, replace=False)
        keep = np.zeros_like(finite)
        keep[drawn] = True
        return keep

    def _rows(
        self, build, windows: Windows, j: int | None, keep: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[str]]:
        """The rows of ``windows`` (only the ``keep`` ones where given); stacked rows are
        built PREDICT_CHUNK samples at a time, so a draw never holds the whole matrix."""
        import numpy as np

        if j is not None:
            X, names = build(windows, j, series_id=self.series_id)
            return (X if keep is None else X[keep]), names
        if keep is None:
            return build(windows, series_id=self.series_id)
        h, parts, names = windows.horizon, [], []
        for lo in range(0, len(windows), PREDICT_CHUNK):
            part = self._slice(windows, lo, lo + PREDICT_CHUNK)
            X, names = build(part, series_id=self.series_id)
            parts.append(X[keep[lo * h : (lo + len(part)) * h]])
        return np.concatenate(parts), names

    def _categorical(self) -> list[int]:
        return [self.feature_names.index("series")] if self.series_id else []

    def predict(self, windows: Windows) -> np.ndarray:
        import numpy as np

        if not self.models:
            raise RuntimeError("fit the model before predict")
        view = self._view(windows)
        n, h = len(view), view.horizon
        if self.strategy == "stacked":
            raw = np.empty((n, h))
            for lo in range(0, n, PREDICT_CHUNK):  # bounded memory on large panels
                part = self._slice(view, lo, lo + PREDICT_CHUNK)
                X = stacked_matrix(part, series_id=self.series_id)[0]
                raw[lo : lo + len(part)] = np.reshape(self._predict_one(self.models[0], X), (-1, h))
        else:
            raw = np.column_stack(
                [
                    np.asarray(
                        self._predict_one(m, step_matrix(view, j, self.series_id)[0]),
                        dtype=np.float64,
                    )
                    for j, m in enumerate(self.models)
                ]
            )
        forecast = self._forecast(view, raw)
        if view is windows:
            return forecast
        original = forecast * view.scale[:, None] + view.loc[:, None]
        return (original - windows.loc[:, None]) / windows.scale[:, None]

    @staticmethod
    def _slice(windows: Windows, lo: int, hi: int) -> Windows:
        if lo == 0 and hi >= len(windows):
            return windows
        cut = slice(lo, hi)
        return replace(
            windows,
            **{
                f: getattr(windows, f)[cut]
                for f in ("x", "y", "seasonal", "features", "calendar", "series", "loc", "scale")
                if getattr(windows, f) is not None
            },
            step_offset=None if windows.step_offset is None else windows.step_offset[cut],
            observed=None if windows.observed is None else windows.observed[cut],
        )

    def refit_params(self) -> dict[str, Any]:
        """The rounds early stopping chose (per step: their mean), for the refit on train+valid."""
        if not self.best_rounds:
            return {}
        mean = sum(self.best_rounds) / len(self.best_rounds)
        return {self.rounds_param: max(1, int(round(mean)))}
