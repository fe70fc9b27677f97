"""Scoring one fit: forecasts in the data's units against the labels, every metric at once.

Shared by the window path (:mod:`.fit`) and the whole-series path (:mod:`.fit_series`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..data.panel import Panel
from ..data.windows import WindowCache, actuals, inverse_scale
from ..errors import MlfError, described
from ..models.contract import Windows
from ..search.metrics import evaluate, mase_scale

if TYPE_CHECKING:
    from ..models.contract import TaskInfo
    from ..models.registry import ModelEntry

__all__ = [
    "REFIT",
    "SEARCH",
    "FitData",
    "FitOptions",
    "FitResult",
    "TrialFailed",
    "fit_only",
    "fit_predict",
    "model_errors",
    "mean_metrics",
    "refit_params_of",
    "row_weights",
    "score",
]


class TrialFailed(MlfError):
    """A trial's model raised or produced non-finite values; the study goes on."""


@dataclass(frozen=True)
class FitOptions:
    """How one fit runs, on either path (windows or whole series)."""

    holdout: bool = True
    """Hand the scored window to ``fit`` as validation data (search); off for the refit."""
    report: Callable[[int, float], None] | None = None
    """Receives per-epoch validation values (pruning)."""
    train_metrics: bool = True
    """Also score the training windows (window models)."""
    windows: WindowCache | None = None
    """The cuts kept across the fits of a study (window models); None: cut for this fit only."""


SEARCH = FitOptions()
"""A search fit: the scored window is the model's validation data too."""
REFIT = FitOptions(holdout=False)
"""A refit: the model sees only its training data, and the scored window stays unseen."""


class FitData(NamedTuple):
    """What a model fits on, is validated on (or None) and predicts."""

    train: Any
    valid: Any
    inputs: Any


@dataclass
class FitResult:
    """One fit of one configuration on one cut of the panel, scored in original units."""

    model: Any
    metrics: dict[str, float]
    train_metrics: dict[str, float]
    predictions: np.ndarray
    actuals: np.ndarray | None
    windows: Windows
    refit_params: dict[str, Any]
    seconds: float
    naive_fallback: int = 0
    """Scored series forecast by the seasonal naive: too short to give a training sample."""
    notes: list[str] = field(default_factory=list)
    """What the model said about this fit (series that fell back to a simpler model...)."""


def row_weights(panel: Panel, windows: Windows) -> np.ndarray | None:
    """(n, h) metric weights of the windows' horizon steps (None when the panel has none);
    a step past its series' end weighs 1."""
    if panel.weights is None or windows.step_offset is None:
        return None
    sizes = np.fromiter((len(w) for w in panel.weights), dtype=np.int64, count=panel.n_series)
    flat = np.concatenate(panel.weights).astype(np.float64, copy=False)
    step = windows.step_offset[:, None] + np.arange(windows.horizon)
    size = sizes[windows.series][:, None]
    index = (np.cumsum(sizes) - sizes)[windows.series][:, None] + np.minimum(step, size - 1)
    return np.where(step < size, flat[index], 1.0)


def score(
    panel: Panel, windows: Windows, scaled_predictions: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, dict[str, float]]:
    """Predictions in original units and every metric against the data's own actuals
    (:func:`~mlforecast_cli.data.windows.actuals`, never the labels back through a scaler)."""
    predictions = inverse_scale(np.asarray(scaled_predictions, dtype=float), windows)
    truth = actuals(panel, windows)
    history = [panel.y[s][: int(end[s])] for s in range(panel.n_series)]
    scales = mase_scale(history, panel.season_length)[windows.series]
    metrics = evaluate(truth, predictions, scale=scales, weights=row_weights(panel, windows))
    return predictions, metrics


def fit_predict(
    entry: ModelEntry,
    params: Mapping[str, Any],
    task: TaskInfo,
    data: FitData,
    report: Callable[[int, float], None] | None,
) -> tuple[Any, np.ndarray, float]:
    """Build ``entry``'s model, fit it on ``data.train`` (``data.valid``) and predict
    ``data.inputs``: ``(model, raw forecast, fit and predict seconds)``. What the model
    raises fails the trial (:class:`TrialFailed`, one line); pruning and mlf's own errors
    pass through."""
    start = time.perf_counter()
    with model_errors(entry.name):
        model = entry.create(params, task)
        model.fit(data.train, data.valid, report)
        raw = np.array(model.predict(data.inputs), dtype=float)
    return model, raw, time.perf_counter() - start


def fit_only(
    entry: ModelEntry, params: Mapping[str, Any], task: TaskInfo, train: Any
) -> tuple[Any, float]:
    """Build ``entry``'s model and fit it on ``train`` with no validation data and nothing to
    predict (the final fit on the whole history): ``(model, seconds)``. Errors as
    :func:`fit_predict`."""
    start = time.perf_counter()
    with model_errors(entry.name):
        model = entry.create(params, task)
        model.fit(train, None, None)
    return model, time.perf_counter() - start


@contextlib.contextmanager
def model_errors(name: str) -> Iterator[None]:
    """Turn what model ``name`` raises into :class:`TrialFailed` (one line); pruning and
    mlf's own errors pass through."""
    try:
        yield
    except MlfError:
        raise
    except Exception as exc:
        import optuna

        if isinstance(exc, optuna.TrialPruned):
            raise
        raise TrialFailed(f"{name} raised {described(exc)}") from exc


def refit_params_of(model: Any) -> dict[str, Any]:
    """What ``model`` asks the refit on train + valid to use (``refit_params()``); a model that
    follows only the protocol may not have the method."""
    refit_params = getattr(model, "refit_params", None)
    return dict((refit_params() if callable(refit_params) else None) or {})


def mean_metrics(per_fold: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each metric's mean over the CV folds (the metrics every fold has)."""
    keys = set.intersection(*(set(m) for m in per_fold)) if per_fold else set()
    return {k: float(np.mean([m[k] for m in per_fold])) for k in sorted(keys)}
