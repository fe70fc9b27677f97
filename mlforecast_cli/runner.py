"""The study loop: sample, fit, score, prune; then refit the best and score it once on test.

The runner prints and logs nothing itself: tracking and progress are Optuna callbacks
(``callback(study, frozen_trial)``) that the caller passes in.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .contract import TaskInfo, Windows
from .errors import MlfError, UsageError, first_line
from .metrics import evaluate, mase_scale
from .panel import Panel
from .registry import ModelEntry
from .space import SearchSpace, build_pruner, build_sampler
from .split import Split, split_panel
from .threads import threads_per_trial
from .windows import inverse_scale, labels, make_windows, seasonal_naive

if TYPE_CHECKING:
    import optuna

DATA_PARAMS = ("window_size", "scaler")
"""Keys of a space the core consumes to build windows (they reach the model too)."""
DEFAULT_WINDOW_SIZE = 14
DEFAULT_SCALER = "window"
METRIC_LABELS = {
    "mape": "MAPE",
    "smape": "sMAPE",
    "mae": "MAE",
    "rmse": "RMSE",
    "mase": "MASE",
    "wape": "WAPE",
    "wmae": "WMAE",
}
CONFIG_ATTR = "mlf_config"
"""Study user attribute holding what the study was created for (checked on resume)."""
WORKER_ATTR = "mlf_worker"
"""Trial user attribute naming the host and process that runs it (to reap dead workers)."""
CONFIG_WAIT_S = 60.0
MAX_TRAIN_WINDOWS = 100_000
"""Training samples one fit sees at most (a seeded random draw beyond): the cost of a trial
stops growing with the panel; panels of up to a few thousand series are not sampled."""
NAIVE_FALLBACK_ATTR = "naive_fallback"
"""Trial user attribute: validation series the seasonal naive forecast (too short to train)."""


class TrialFailed(MlfError):
    """A trial's model raised or produced non-finite values; the study goes on."""


@dataclass(frozen=True)
class StudyConfig:
    """Everything that defines one study of one model on one panel."""

    model: str
    study_name: str
    horizon: int
    space: SearchSpace
    metric: str = "mape"
    cv_windows: int = 1
    storage: str | None = None
    seed: int = 42
    device: str = "cpu"
    n_jobs: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Free-form facts to keep with the study (data source, command line...)."""

    def identity(self, fingerprint: str) -> dict[str, Any]:
        """What must not change when a study is resumed."""
        return {
            "model": self.model,
            "horizon": self.horizon,
            "metric": self.metric,
            "cv_windows": self.cv_windows,
            "data_fingerprint": fingerprint,
        }


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


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name.upper())


def resolve_device(requested: str, entry: ModelEntry) -> str:
    """``auto`` → cuda, then mps, else cpu; only models that need torch look for a GPU."""
    requested = requested.lower()
    if requested not in ("auto", "cpu", "cuda", "mps"):
        raise UsageError(f"--device {requested!r} is not one of auto, cpu, cuda, mps")
    if "torch" not in entry.spec.requires or requested == "cpu":
        return "cpu"
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (requested == "cuda" and not cuda) or (requested == "mps" and not mps):
        raise UsageError(
            f"--device {requested} was asked for but torch sees no {requested.upper()} "
            "device here: use --device auto or --device cpu"
        )
    return requested


def task_info(panel: Panel, horizon: int, *, seed: int, device: str, n_jobs: int) -> TaskInfo:
    from .calendar_features import n_calendar_features

    n_calendar = n_calendar_features(panel.freq)
    return TaskInfo(
        horizon=horizon,
        season_length=panel.season_length,
        n_series=panel.n_series,
        n_features=len(panel.columns.features),
        n_calendar=n_calendar,
        feature_names=tuple(panel.columns.features),
        seed=seed,
        device=device,
        n_threads=threads_per_trial(n_jobs),
    )


def _row_weights(panel: Panel, windows: Windows) -> np.ndarray | None:
    if panel.weights is None or windows.step_offset is None:
        return None
    horizon = windows.horizon
    out = np.ones((len(windows), horizon))
    for s in np.unique(windows.series):
        rows = np.flatnonzero(windows.series == s)
        weights = panel.weights[s]
        idx = windows.step_offset[rows, None] + np.arange(horizon)
        inside = idx < len(weights)
        out[rows] = np.where(inside, weights[np.minimum(idx, len(weights) - 1)], 1.0)
    return out


def score(
    panel: Panel, windows: Windows, scaled_predictions: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, dict[str, float]]:
    """Predictions in original units and every metric against the windows' labels."""
    predictions = inverse_scale(np.asarray(scaled_predictions, dtype=float), windows)
    actuals = labels(windows)
    history = [panel.y[s][: int(end[s])] for s in range(panel.n_series)]
    scales = mase_scale(history, panel.season_length)[windows.series]
    metrics = evaluate(actuals, predictions, scale=scales, weights=_row_weights(panel, windows))
    return predictions, metrics


def fit_and_score(
    entry: ModelEntry,
    params: Mapping[str, Any],
    task: TaskInfo,
    panel: Panel,
    end: np.ndarray,
    *,
    holdout: bool = True,
    report: Callable[[int, float], None] | None = None,
    train_metrics: bool = True,
) -> FitResult:
    """Fit ``params`` on every window before ``end`` and score the ``horizon`` steps after it.

    Every series with a point before ``end`` is forecast and scored; one with no training
    sample of its own (fewer than ``horizon + 1`` points before ``end``) is forecast by the
    seasonal naive instead of the model, and counted in ``naive_fallback``.

    With ``holdout`` the scored window is also handed to ``fit`` as validation data (search);
    without it (refit) the model sees only the training windows.
    """
    window_size = int(params.get("window_size", DEFAULT_WINDOW_SIZE))
    scaler = str(params.get("scaler", DEFAULT_SCALER))
    horizon = task.horizon
    train = make_windows(
        panel,
        end,
        window_size,
        horizon,
        mode="train",
        scaler=scaler,
        max_samples=MAX_TRAIN_WINDOWS,
        seed=task.seed,
    )
    target = make_windows(panel, end, window_size, horizon, mode="eval", scaler=scaler)
    start = time.perf_counter()
    try:
        model = entry.create(params, task)
        model.fit(train, target if holdout else None, report)
        raw = np.array(model.predict(target), dtype=float)
    except MlfError:
        raise
    except Exception as exc:
        import optuna

        if isinstance(exc, optuna.TrialPruned):
            raise
        raise TrialFailed(f"{entry.name} raised {type(exc).__name__}: {first_line(exc)}") from exc
    seconds = time.perf_counter() - start
    expected = (len(target), horizon)
    if raw.shape != expected:
        raise TrialFailed(
            f"{entry.name}.predict returned shape {raw.shape}, expected {expected} "
            "(n_windows, horizon)"
        )
    fallback = np.asarray(end)[target.series] < horizon + 1  # no training sample of its own
    raw[fallback] = seasonal_naive(target)[fallback]
    if not np.all(np.isfinite(raw)):
        raise TrialFailed(f"{entry.name} predicted NaN or infinite values")
    predictions, metrics = score(panel, target, raw, end)
    fitted = {}
    if train_metrics:
        _, fitted = score(panel, train, np.asarray(model.predict(train), dtype=float), end)
    refit_params = getattr(model, "refit_params", None)
    return FitResult(
        model=model,
        metrics=metrics,
        train_metrics=fitted,
        predictions=predictions,
        actuals=labels(target) if target.y is not None else None,
        windows=target,
        refit_params=dict(refit_params() if callable(refit_params) else {}),
        seconds=seconds,
        naive_fallback=int(fallback.sum()),
    )


class Objective:
    """The Optuna objective of one study: the mean validation metric over the CV folds."""

    def __init__(
        self,
        entry: ModelEntry,
        panel: Panel,
        split: Split,
        config: StudyConfig,
        task: TaskInfo,
    ) -> None:
        self.entry = entry
        self.panel = panel
        self.split = split
        self.config = config
        self.task = task
        self.started: set[int] = set()
        """Numbers of the trials this process has started."""

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        self.started.add(trial.number)
        trial.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": os.getpid()})
        params = self.config.space.suggest(trial)
        trial.set_user_attr("config", _jsonable(params))

        def report(step: int, value: float) -> None:
            value = float(value)
            if not math.isfinite(value):
                return
            trial.report(value, int(step))
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} (value {value:.6g})")

        folds: list[FitResult] = []
        start = time.perf_counter()
        try:
            for i, fold in enumerate(self.split.folds):
                last = i == len(self.split.folds) - 1
                folds.append(
                    fit_and_score(
                        self.entry,
                        params,
                        self.task,
                        self.panel,
                        fold.train_end,
                        report=report if i == 0 else None,
                        train_metrics=last,
                    )
                )
        except (TrialFailed, MlfError) as exc:
            _set_user_attrs(trial, error=str(exc), training_time_s=time.perf_counter() - start)
            raise
        except optuna.TrialPruned:
            _set_user_attrs(trial, training_time_s=time.perf_counter() - start)
            raise
        metrics = _mean_metrics([f.metrics for f in folds])
        _set_user_attrs(
            trial,
            val_metrics=metrics,
            train_metrics=folds[-1].train_metrics,
            training_time_s=sum(f.seconds for f in folds),
            refit_params=_jsonable(folds[-1].refit_params),
        )
        trial.set_user_attr(NAIVE_FALLBACK_ATTR, folds[-1].naive_fallback)
        value = metrics.get(self.config.metric, float("nan"))
        if not math.isfinite(value):
            message = f"validation {metric_label(self.config.metric)} is {value}"
            trial.set_user_attr("error", message)
            raise TrialFailed(message)
        return value


def _set_user_attrs(trial, **attrs: Any) -> None:
    for key, value in attrs.items():
        if value or value == 0:
            trial.set_user_attr(key, value)


def _mean_metrics(per_fold: Sequence[Mapping[str, float]]) -> dict[str, float]:
    keys = set.intersection(*(set(m) for m in per_fold)) if per_fold else set()
    return {k: float(np.mean([m[k] for m in per_fold])) for k in sorted(keys)}


def open_storage(url: str | None):
    """An Optuna storage for ``url`` (None: in memory); a clear error if it cannot be used."""
    from .storage import open_storage as _open

    return _open(url)


def create_study(config: StudyConfig, panel: Panel):
    """Create or resume the study named in ``config`` (refusing one made for another task).

    Returns ``(study, created)``; ``created`` is True for exactly one of several workers
    that start the same new study at once (the storage makes creation atomic).
    """
    import optuna
    from optuna.exceptions import DuplicatedStudyError

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures are tracked, not printed
    storage = open_storage(config.storage)
    sampler = build_sampler(config.space, seed=config.seed)
    pruner = build_pruner(config.space)
    direction = config.space.optimizer.get("direction", "minimize")
    identity = config.identity(panel.fingerprint())
    try:
        study = optuna.create_study(
            study_name=config.study_name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            direction=direction,
        )
    except DuplicatedStudyError:
        study = optuna.load_study(
            study_name=config.study_name, storage=storage, sampler=sampler, pruner=pruner
        )
    else:
        study.set_user_attr(CONFIG_ATTR, identity)
        for key, value in config.extra.items():
            study.set_user_attr(key, _jsonable(value))
        return study, True
    stored = wait_for_user_attr(study, CONFIG_ATTR, CONFIG_WAIT_S)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, identity)
        return study, False
    changed = [k for k in identity if stored.get(k) != identity[k]]
    if changed:
        what = ", ".join(f"{k} {stored.get(k)!r} → {identity[k]!r}" for k in changed)
        raise UsageError(
            f"study '{config.study_name}' was created for another task ({what}): "
            "pass a new --study-name, or the original settings to resume it"
        )
    return study, False


def wait_for_user_attr(study, key: str, timeout: float) -> Any:
    """The study's user attribute ``key``, waiting up to ``timeout`` s for another worker to
    write it (a study that predates the attribute gets None at once if it has trials)."""
    deadline = time.monotonic() + timeout
    while True:
        value = study.user_attrs.get(key)
        if value is not None or study.get_trials(deepcopy=False):
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def reap_dead_trials(study) -> list:
    """Fail the RUNNING trials whose worker process on this host has died (SIGKILL, OOM).

    Returns the trials this call failed; when several workers reap at once the storage lets
    only one of them fail each trial. Workers on other hosts are left to Optuna's heartbeat
    (RDB storages).
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    host = socket.gethostname()
    storage = study._storage  # Optuna exposes no public handle on a study's storage
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR) or {}
        if worker.get("host") != host or _pid_alive(worker.get("pid")):
            continue
        try:
            storage.set_trial_user_attr(
                trial._trial_id, "error", f"worker process {worker.get('pid')} died"
            )
            if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                reaped.append(storage.get_trial(trial._trial_id))
        except UpdateFinishedTrialError:
            continue
    return reaped


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build_objective(entry: ModelEntry, panel: Panel, config: StudyConfig) -> Objective:
    """The objective of ``config``'s study; checks the panel is long enough first."""
    split = split_panel(panel, config.horizon, config.cv_windows)
    task = task_info(
        panel, config.horizon, seed=config.seed, device=config.device, n_jobs=config.n_jobs
    )
    return Objective(entry, panel, split, config, task)


def run_study(
    entry: ModelEntry,
    panel: Panel,
    config: StudyConfig,
    *,
    n_trials: int | None,
    timeout: float | None = None,
    callbacks: Iterable[Callable[..., None]] = (),
    study=None,
    objective: Objective | None = None,
    until_total: int | None = None,
):
    """Add ``n_trials`` trials to the study (created or resumed), or with ``until_total`` run
    trials until the study holds that many (counting other processes' running ones)."""
    import optuna

    objective = objective or build_objective(entry, panel, config)
    study = study if study is not None else create_study(config, panel)[0]
    callbacks = list(callbacks)
    if until_total is not None:
        if len(study.get_trials(deepcopy=False)) >= until_total:
            return study
        callbacks.append(optuna.study.MaxTrialsCallback(until_total, states=None))
    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=timeout,
        n_jobs=1,  # parallel trials run in worker processes (cli/workers.py), not threads
        catch=(Exception,),
        callbacks=callbacks,
        gc_after_trial=False,
    )
    return study


def _min_train(space: SearchSpace) -> None:
    """Training steps a series needs before its first validation window, whatever the space:
    None, the split's own default (windows are padded, so ``window_size`` sets no minimum)."""
    return None


@dataclass
class RefitResult:
    """The best configuration refit on train + valid and scored once on the test window."""

    params: dict[str, Any]
    test_metrics: dict[str, float]
    train_metrics: dict[str, float]
    result: FitResult
    task: TaskInfo

    @property
    def naive_fallback(self) -> int:
        """Test series forecast by the seasonal naive (too short to give a training sample)."""
        return self.result.naive_fallback


def best_params(study) -> dict[str, Any]:
    """The full configuration of the best trial, with what early stopping chose."""
    best = study.best_trial
    params = dict(best.user_attrs.get("config") or best.params)
    params.update(best.user_attrs.get("refit_params") or {})
    return params


def refit_best(entry: ModelEntry, panel: Panel, config: StudyConfig, study) -> RefitResult:
    """Fit the best trial's configuration on train + valid and score it once on test."""
    from .errors import MlfError as _Err

    if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        raise _Err(f"no trial of study '{config.study_name}' completed, so nothing to refit")
    params = best_params(study)
    split = split_panel(panel, config.horizon, config.cv_windows)
    task = task_info(panel, config.horizon, seed=config.seed, device=config.device, n_jobs=1)
    result = fit_and_score(entry, params, task, panel, split.test_start, holdout=False)
    return RefitResult(
        params=params,
        test_metrics=result.metrics,
        train_metrics=result.train_metrics,
        result=result,
        task=task,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
