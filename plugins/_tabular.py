"""What the tree-model plugins share: windows → feature matrix, target, validation score, pruning.

A tree model is a *global* model: one model for every series of the panel, the series index a
feature. The ``horizon`` steps are forecast directly, in one of two ways (``strategy``):

``stacked`` (default)
    one model, each sample cut into ``horizon`` rows with the step index as a feature;
``per_step``
    one model per horizon step, each seeing the whole seasonal profile of the horizon.

The model learns, in the window's scaled units, either the target itself (``target: level``)
or its gap to the seasonal naive forecast (``target: seasonal``, default): the value one season
back where it is known, the last observed value where it is not. The gap is what the trees
correct, so a model that learns nothing falls back to the seasonal naive.

While searching, every boosting round (or batch of trees) is scored on the validation window
in the original units (MAPE, %), the number the pruner compares across trials; the same score
drives early stopping. This module imports numpy only; no model library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlforecast_cli import Forecaster, ReportFn, Windows

STRATEGIES = ("stacked", "per_step")
TARGETS = ("seasonal", "level")
TREND_STEPS = 4
"""Recent steps averaged for the level / year-over-year features."""


# --------------------------------------------------------------------------- features


def baseline(windows: Windows) -> np.ndarray:
    """(n, h) seasonal naive forecast in scaled units: one season back, else the last value."""
    last = np.broadcast_to(windows.x[:, -1:], windows.seasonal.shape)
    return np.where(np.isfinite(windows.seasonal), windows.seasonal, last)


def _window_block(windows: Windows) -> tuple[np.ndarray, list[str]]:
    """(n, k) what every horizon step of a sample shares: lags, window statistics, series."""
    x = windows.x
    n, w = x.shape
    q = max(1, min(TREND_STEPS, w))
    recent = x[:, -q:].mean(axis=1)
    with np.errstate(invalid="ignore"), _quiet():
        seasonal_start = np.nanmean(windows.seasonal[:, :q], axis=1)
        seasonal_mean = np.nanmean(windows.seasonal, axis=1)
    cols = [
        x[:, ::-1],  # lag 1 first, so column k is always lag k + 1
        x.mean(axis=1, keepdims=True),
        x.std(axis=1, keepdims=True),
        x.min(axis=1, keepdims=True),
        x.max(axis=1, keepdims=True),
        (recent - x[:, :q].mean(axis=1))[:, None],  # trend over the window
        (recent - seasonal_start)[:, None],  # now against the start of last year's horizon
        seasonal_mean[:, None],
        windows.series[:, None].astype(np.float64),
    ]
    names = [f"lag_{k + 1}" for k in range(w)]
    names += ["win_mean", "win_std", "win_min", "win_max", "win_trend", "yoy_gap"]
    names += ["seasonal_mean", "series"]
    return np.concatenate(cols, axis=1), names


class _quiet:
    """Silence numpy's 'mean of empty slice' for all-NaN seasonal rows (they stay NaN)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _step_block(windows: Windows, j: int) -> tuple[np.ndarray, list[str]]:
    """(n, k) what is known about horizon step ``j``: season-back values, features, calendar."""
    s = windows.seasonal
    n, h = s.shape
    nan = np.full(n, np.nan)
    cols = [
        s[:, j],
        s[:, j - 1] if j > 0 else nan,  # last year's neighbours (moving holidays)
        s[:, j + 1] if j + 1 < h else nan,
    ]
    names = ["seasonal", "seasonal_prev", "seasonal_next"]
    f = windows.features[:, j, :]
    c = windows.calendar[:, j, :]
    names += [f"feature_{k}" for k in range(f.shape[1])]
    names += [f"calendar_{k}" for k in range(c.shape[1])]
    return np.column_stack([*cols, f, c]), names


def stacked_matrix(windows: Windows) -> tuple[np.ndarray, list[str]]:
    """(n * h, k) one row per (sample, step), sample-major, with the step index as a feature."""
    shared, shared_names = _window_block(windows)
    n, h = len(windows), windows.horizon
    blocks, names = [], []
    for j in range(h):
        block, names = _step_block(windows, j)
        blocks.append(np.column_stack([np.full(n, float(j)), block]))
    steps = np.stack(blocks, axis=1).reshape(n * h, -1)  # row i * h + j
    matrix = np.concatenate([np.repeat(shared, h, axis=0), steps], axis=1)
    return matrix, shared_names + ["step", *names]


def step_matrix(windows: Windows, j: int) -> tuple[np.ndarray, list[str]]:
    """(n, k) the rows of the step-``j`` model: the whole seasonal profile plus step ``j``."""
    shared, shared_names = _window_block(windows)
    block, names = _step_block(windows, j)
    profile = windows.seasonal
    profile_names = [f"seasonal_h{k + 1}" for k in range(profile.shape[1])]
    matrix = np.concatenate([shared, profile, block], axis=1)
    return matrix, shared_names + profile_names + names


# --------------------------------------------------------------------------- scoring


def mape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """MAPE in percent over the non-zero actuals (as the core's metric); NaN if none."""
    keep = actual != 0
    if not keep.any() or not np.all(np.isfinite(forecast[keep])):
        return float("nan")
    return float(100.0 * np.mean(np.abs(actual[keep] - forecast[keep]) / np.abs(actual[keep])))


class Monitor:
    """Scores a model's validation predictions per round and bridges them to ``report``.

    A library callback calls :meth:`round` after each boosting round (or batch of trees)
    with the round number (1-based) and the validation score; it returns False when
    training must stop because the pruner said so. The pruning exception is kept and
    re-raised by :meth:`reraise` once the library has returned: some libraries (CatBoost)
    wrap exceptions raised inside their callbacks.
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
        except Exception as exc:  # optuna.TrialPruned, or anything the caller raises
            self.error = exc
            return False
        return True

    def reraise(self) -> None:
        if self.error is not None:
            raise self.error


@dataclass
class EvalSet:
    """Validation rows of one model and how to score its raw predictions on them.

    ``score(raw)`` takes the model's raw outputs on ``X`` (in the order of ``X``'s rows) and
    returns the MAPE (%) of the forecasts they make, in the original units.
    """

    X: np.ndarray
    y: np.ndarray
    score: Callable[[np.ndarray], float]


# --------------------------------------------------------------------------- the model


class TreeForecaster(Forecaster):
    """A global tree model over the panel; subclasses wrap one library each.

    A subclass implements :meth:`_fit_one` (train one model, calling ``monitor.round`` once per
    round with the validation score when ``valid`` is given; stop early on it) and
    :meth:`_predict_one`. ``rounds_param`` names its rounds parameter, which
    :meth:`refit_params` sets to what early stopping chose.
    """

    supports_pruning = True
    rounds_param = "n_estimators"
    default_rounds = 300
    early_stopping = True

    def __init__(self, params, task) -> None:
        super().__init__(params, task)
        self.strategy = str(self.params.get("strategy", "stacked"))
        self.target = str(self.params.get("target", "seasonal"))
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.target not in TARGETS:
            raise ValueError(f"target {self.target!r} is not one of {', '.join(TARGETS)}")
        self.models: list[Any] = []
        self.best_rounds: list[int] = []
        self.feature_names: list[str] = []

    # ----------------------------------------------------------------- hooks for subclasses

    def _fit_one(
        self,
        X: np.ndarray,
        y: np.ndarray,
        valid: EvalSet | None,
        monitor: Monitor,
        rounds: int,
        categorical: list[int],
    ) -> tuple[Any, int]:
        """Train one model for at most ``rounds`` rounds; return it and the rounds it uses."""
        raise NotImplementedError

    def _predict_one(self, model: Any, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ----------------------------------------------------------------- helpers

    @property
    def rounds(self) -> int:
        return int(self.params.get(self.rounds_param, self.default_rounds))

    @property
    def patience(self) -> int:
        return int(self.params.get("early_stopping_rounds", 30))

    @property
    def seed(self) -> int:
        return int(self.params.get("seed", self.task.seed))

    @property
    def threads(self) -> int:
        return max(1, int(self.task.n_threads))

    def _labels(self, windows: Windows) -> np.ndarray:
        """(n, h) what the model learns, in scaled units."""
        if windows.y is None:
            raise ValueError("these windows have no labels to learn from")
        y = windows.y
        return y - baseline(windows) if self.target == "seasonal" else y

    def _forecast(self, windows: Windows, raw: np.ndarray) -> np.ndarray:
        """(n, h) forecast in scaled units from (n, h) model outputs."""
        return raw + baseline(windows) if self.target == "seasonal" else raw

    def _scorer(self, windows: Windows, j: int | None) -> Callable[[np.ndarray], float]:
        """Scores raw outputs on ``windows`` (all steps, or step ``j``) in original units."""
        actual = windows.y * windows.scale[:, None] + windows.loc[:, None]
        n, h = actual.shape
        cols = slice(None) if j is None else slice(j, j + 1)

        def score(raw: np.ndarray) -> float:
            raw = np.asarray(raw, dtype=np.float64).reshape(n, -1)
            if j is not None:
                full = np.zeros((n, h))
                full[:, j] = raw[:, 0]
                raw = full
            scaled = self._forecast(windows, raw)
            forecast = scaled * windows.scale[:, None] + windows.loc[:, None]
            return mape(actual[:, cols], forecast[:, cols])

        return score

    # ----------------------------------------------------------------- contract

    def fit(
        self, train: Windows, valid: Windows | None = None, report: ReportFn | None = None
    ) -> TreeForecaster:
        labels = self._labels(train)
        has_valid = valid is not None and valid.y is not None
        self.models, self.best_rounds = [], []
        if self.strategy == "stacked":
            X, self.feature_names = stacked_matrix(train)
            y = labels.reshape(-1)
            keep = np.isfinite(y)
            evalset = None
            if has_valid:
                Xv, _ = stacked_matrix(valid)
                evalset = EvalSet(Xv, self._labels(valid).reshape(-1), self._scorer(valid, None))
            monitor = Monitor(report)
            model, best = self._fit_one(
                X[keep], y[keep], evalset, monitor, self.rounds, self._categorical()
            )
            monitor.reraise()
            self.models, self.best_rounds = [model], [best]
            return self
        for j in range(train.horizon):  # per_step: no pruning, early stopping per step
            X, self.feature_names = step_matrix(train, j)
            y = labels[:, j]
            keep = np.isfinite(y)
            evalset = None
            if has_valid:
                Xv, _ = step_matrix(valid, j)
                evalset = EvalSet(Xv, self._labels(valid)[:, j], self._scorer(valid, j))
            monitor = Monitor(None)
            model, best = self._fit_one(
                X[keep], y[keep], evalset, monitor, self.rounds, self._categorical()
            )
            self.models.append(model)
            self.best_rounds.append(best)
        return self

    def _categorical(self) -> list[int]:
        return [self.feature_names.index("series")]

    def predict(self, windows: Windows) -> np.ndarray:
        if not self.models:
            raise RuntimeError("fit the model before predict")
        n, h = len(windows), windows.horizon
        if self.strategy == "stacked":
            X, _ = stacked_matrix(windows)
            raw = np.asarray(self._predict_one(self.models[0], X), dtype=np.float64)
            raw = raw.reshape(n, h)
        else:
            raw = np.column_stack(
                [
                    np.asarray(self._predict_one(m, step_matrix(windows, j)[0]), dtype=np.float64)
                    for j, m in enumerate(self.models)
                ]
            )
        return self._forecast(windows, raw)

    def refit_params(self) -> dict[str, Any]:
        """The rounds early stopping chose (per step: their mean), for the refit on train+valid."""
        if not self.best_rounds or not self.early_stopping:
            return {}
        return {self.rounds_param: int(round(float(np.mean(self.best_rounds))))}
