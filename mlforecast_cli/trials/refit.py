"""The best configuration refit on train + valid and scored once on the test window; then,
for production, fitted once more on the whole history (:func:`refit_final`, not scored)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..data.panel import Panel
from ..data.split import Split
from ..errors import MlfError
from ..models.contract import TaskInfo
from ..models.registry import ModelEntry
from .fit import fit_and_score, fit_whole_history, task_info
from .optuna_study import StudyConfig
from .scoring import REFIT, FitResult

__all__ = ["FinalFit", "RefitResult", "best_params", "refit_best", "refit_final"]


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


def refit_best(
    entry: ModelEntry, panel: Panel, config: StudyConfig, split: Split, study
) -> RefitResult:
    """Fit the best trial's configuration on train + valid and score it once on test."""
    if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        raise MlfError(f"no trial of study '{config.study_name}' completed, so nothing to refit")
    params = best_params(study)
    task = task_info(panel, config.horizon, seed=config.seed, device=config.device, n_jobs=1)
    result = fit_and_score(entry, params, task, panel, split.test_start, REFIT)
    return RefitResult(
        params=params,
        test_metrics=result.metrics,
        train_metrics=result.train_metrics,
        result=result,
        task=task,
    )


@dataclass(frozen=True)
class FinalFit:
    """The tested configuration fitted on every series' whole history: the model `mlf predict`
    uses. It has no test metrics (no step is left to score); the tested refit's stand for it."""

    model: Any
    seconds: float
    """Wall time of the fit (building the samples included)."""


def refit_final(entry: ModelEntry, panel: Panel, refit: RefitResult) -> FinalFit:
    """Fit the tested refit's configuration (its parameters, early stopping's choices
    included, and task) on the whole history of every series, test window included."""
    start = time.perf_counter()
    model, _ = fit_whole_history(entry, refit.params, refit.task, panel)
    return FinalFit(model=model, seconds=time.perf_counter() - start)
