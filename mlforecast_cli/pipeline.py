"""One model's study end to end: create or resume it, reap dead workers' trials, search
(with ``--n-jobs`` worker processes), refit the best, test it, save and log the model, plot.

The CLI calls :func:`run_model` once per model and prints what it returns; nothing here
prints. Progress is a Rich board passed in; warnings come back in the outcome.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MlfError, described, first_line
from .metrics import metric_label
from .outages import lost_reason, tracking_lost

if TYPE_CHECKING:
    from .config import OptimizeConfig
    from .intervals import ConformalScores, StudyForecasts
    from .panel import Panel
    from .progress import ModelProgress, ProgressBoard
    from .reference import ReferenceScores
    from .registry import ModelEntry
    from .runner import Objective, RefitResult
    from .study import FailureReason, StudyConfig
    from .tracking import MlflowTracker


@dataclass
class ModelOutcome:
    """What one model's study gave, for the leaderboard and --json."""

    model: str
    study_name: str
    counts: dict[str, int] = field(default_factory=dict)
    best_value: float | None = None
    best_params: dict[str, Any] | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    parent_run_id: str | None = None
    seconds: float = 0.0
    error: str | None = None
    naive_fallback: int | None = None
    """Test series the seasonal naive forecast (too short to give a training sample)."""
    warnings: list[str] = field(default_factory=list)
    """Problems that did not fail the study (a worker, the plots, some child runs)."""
    failures: list[FailureReason] = field(default_factory=list)
    """The study's failed trials by reason, most frequent first."""
    reference: ReferenceScores | None = None
    """The seasonal naive's metrics on the same split (the leaderboard's reference row)."""
    kept_model: Path | None = None
    """Where the refit model was saved when the tracking store was lost before it was logged."""


def run_model(
    entry: ModelEntry,
    plan: StudyConfig,
    config: OptimizeConfig,
    panel: Panel,
    board: ProgressBoard | None = None,
) -> ModelOutcome:
    """Run ``plan``'s study of ``entry`` on ``panel`` end to end; the parent MLflow run is
    closed FINISHED, FAILED, or KILLED on Ctrl-C / SIGTERM (re-raised for the caller).

    A study storage or tracking store lost on the way raises
    :class:`~mlforecast_cli.errors.ServiceLost` once what can be done locally is done (the
    search goes on without tracking; the refit model is kept on disk if it was not logged)."""
    from .liveness import reap_dead_trials
    from .runner import build_objective, planned_trials
    from .study import create_study
    from .tracking import MlflowTracker

    started = time.perf_counter()
    tracker = MlflowTracker(
        experiment=config.experiment,
        tracking_uri=config.tracking_uri,
        metric=plan.metric,
        sink=config.child_runs,
        workers=plan.n_jobs - 1,
    )
    try:
        objective = build_objective(entry, panel, plan)
        study, created = create_study(plan, panel)
        reaped = reap_dead_trials(study)
        trials = planned_trials(plan.space, study, config.trials)
        tracker.start(
            study,
            created=created,
            parent_params=parent_params(entry, plan, config, panel),
            parent_tags={"mlf.model": entry.name, "mlf.command": config.command},
            space_yaml=plan.space.to_yaml(),
            pending=reaped,
        )
        outcome = ModelOutcome(entry.name, plan.study_name, parent_run_id=tracker.parent_run_id)
        if tracker.moved_from:
            outcome.warnings.append(tracker.moved_from)
        progress = None
        if board is not None:
            progress = board.add(
                entry.name, trials, metric_label(plan.metric), study, metric=plan.metric
            )
        outcome.warnings += search(
            entry, plan, config, panel, study, objective, tracker, progress, trials
        )
        status = finish(entry, plan, config, panel, study, tracker, outcome, objective)
        close_tracking(tracker, status)
    except KeyboardInterrupt:
        tracker.close("KILLED" if tracker.parent_run_id else None)
        raise
    finally:
        if not tracker.closed:  # an error: no half-open writer or run
            with contextlib.suppress(Exception):
                tracker.close("FAILED" if tracker.parent_run_id else None)
    if tracker.lost:
        raise tracking_lost(tracker.tracking_uri, tracker.lost, outcome.kept_model)
    if tracker.errors:
        outcome.warnings.append(
            f"{len(tracker.errors)} child run(s) not written to MLflow; first: {tracker.errors[0]}"
        )
    outcome.seconds = time.perf_counter() - started
    return outcome


def parent_params(
    entry: ModelEntry, plan: StudyConfig, config: OptimizeConfig, panel: Panel
) -> dict[str, Any]:
    """The parameters of a study's parent MLflow run."""
    from . import __version__
    from .storage import redact

    return {
        "model": entry.name,
        "study_name": plan.study_name,
        "data": config.data_name,
        "data_fingerprint": panel.fingerprint(),
        "horizon": plan.horizon,
        "metric": plan.metric,
        "cv_windows": plan.cv_windows,
        "seed": plan.seed,
        "plugin": entry.plugin.name,
        "plugin_distribution": entry.plugin.dist,
        "plugin_version": entry.plugin.version,
        "mlf_version": __version__,
        "storage": redact(plan.storage or "default"),
    }


def search(
    entry: ModelEntry,
    plan: StudyConfig,
    config: OptimizeConfig,
    panel: Panel,
    study,
    objective: Objective,
    tracker: MlflowTracker,
    progress: ModelProgress | None,
    trials: int,
) -> list[str]:
    """Add ``trials`` trials to the study, with ``n_jobs - 1`` worker processes beside
    this one; returns the workers' errors. On Ctrl-C the workers are stopped and the trials
    that were running are logged KILLED before it is re-raised."""
    from . import workers
    from .runner import run_study

    # --n-jobs: every process pulls trials until the study holds `until` of them, so a process
    # that starts late (imports, data) does not leave a fixed share for the end.
    until = None
    if plan.n_jobs > 1:
        until = len(study.get_trials(deepcopy=False)) + trials
    jobs = [
        workers.WorkerJob(
            registry=workers.registry_settings(),
            study=replace(plan, seed=plan.seed + k),
            panel=panel,
            until_total=until,
            timeout=config.timeout,
            tracking_uri=tracker.tracking_uri,
            child_runs=config.child_runs,
        )
        for k in range(1, plan.n_jobs if until is not None else 1)
    ]
    procs = workers.start(jobs, [tracker.worker_pipe() for _ in jobs])
    tracker.release_worker_pipes()
    callbacks: list[Any] = [tracker] if progress is None else [tracker, progress]
    try:
        if progress is not None and procs:
            progress.poll()
        run_study(
            entry,
            panel,
            plan,
            n_trials=trials if until is None else None,
            until_total=until,
            timeout=config.timeout,
            callbacks=callbacks,
            study=study,
            objective=objective,
        )
        errors = workers.wait(procs)
    except KeyboardInterrupt:
        workers.stop(procs)
        workers.wait(procs)
        tracker.log_unfinished(objective.started, status="KILLED")
        raise
    except Exception:  # the storage lost: the workers cannot go on either
        workers.stop(procs)
        workers.wait(procs)
        raise
    if progress is not None:
        progress.finish()
    tracker.flush()
    return errors


def finish(
    entry: ModelEntry,
    plan: StudyConfig,
    config: OptimizeConfig,
    panel: Panel,
    study,
    tracker: MlflowTracker,
    outcome: ModelOutcome,
    objective: Objective | None = None,
) -> str:
    """Refit the best trial, test, save and log the model, its held-out forecasts and the
    plots; the parent run's final status (FINISHED, or FAILED with ``outcome.error`` set)."""
    from .reference import reference_scores
    from .runner import refit_best
    from .study import failure_reasons, state_counts

    outcome.counts = state_counts(study)
    outcome.failures = failure_reasons(study)
    try:
        outcome.reference = reference_scores(panel, plan.horizon, plan.cv_windows)
    except Exception as exc:  # the reference row is a comparison, never a reason to fail
        outcome.warnings.append(f"could not score the reference: {described(exc)}")
    if outcome.counts.get("complete", 0) == 0:
        errors = [t.user_attrs.get("error") for t in study.trials if t.user_attrs.get("error")]
        outcome.error = "no trial completed" + (f"; last error: {errors[-1]}" if errors else "")
        tracker.log_summary(
            best_params=None, best_value=None, counts=outcome.counts, reference=outcome.reference
        )
        return "FAILED"
    status = "FINISHED"
    # the plain metric of the best trial, not its selection score (runner.Objective)
    best_metrics = study.best_trial.user_attrs.get("val_metrics") or {}
    outcome.best_value = best_metrics.get(plan.metric, study.best_value)
    try:
        refit = refit_best(entry, panel, plan, study)
    except MlfError as exc:
        outcome.error = f"refit of the best trial failed: {exc}"
        status = "FAILED"
        refit = None
    outcome.best_params = refit.params if refit else None
    forecasts = None
    if refit is not None:  # issue 15: validation/test forecasts, conformal intervals
        forecasts = held_out_forecasts(entry, plan, panel, study, objective, refit, outcome)
    with tempfile.TemporaryDirectory(prefix="mlf-model-") as tmp:
        model_dir = None
        if refit is not None:
            outcome.test_metrics = refit.test_metrics
            outcome.naive_fallback = refit.naive_fallback
            conformal = forecasts.conformal if forecasts is not None else None
            model_dir = save_model(entry, plan, panel, refit, Path(tmp) / "model", conformal)
        try:
            status = log_results(
                entry, plan, config, panel, study, tracker, outcome, refit, model_dir, forecasts
            )
        except Exception as exc:
            reason = lost_reason(exc)
            if reason is None:
                raise
            tracker.mark_lost(reason)
            if model_dir is not None:
                outcome.kept_model = keep_model(model_dir, plan.study_name)
    return status


def log_results(
    entry: ModelEntry,
    plan: StudyConfig,
    config: OptimizeConfig,
    panel: Panel,
    study,
    tracker: MlflowTracker,
    outcome: ModelOutcome,
    refit: RefitResult | None,
    model_dir: Path | None,
    forecasts: StudyForecasts | None,
) -> str:
    """Log the summary, the held-out forecasts, the model and the plots on the parent run; the
    run's final status. A lost tracking store is raised (the caller keeps the model on disk)."""
    status = "FAILED" if outcome.error else "FINISHED"
    tracker.log_summary(
        best_params=outcome.best_params or dict(study.best_params),
        best_value=outcome.best_value,
        test_metrics=outcome.test_metrics,
        train_metrics=refit.train_metrics if refit else None,
        counts=outcome.counts,
        naive_fallback=outcome.naive_fallback,
        reference=outcome.reference,
    )
    if forecasts is not None:
        outcome.warnings += log_held_out(tracker, forecasts)
    if model_dir is not None:
        try:
            tracker.log_model(model_dir, panel=panel, requirements=requirements(entry))
        except Exception as exc:
            if lost_reason(exc) is not None:
                raise
            outcome.error = f"logging the model in MLflow failed: {first_line(exc, typed=True)}"
            status = "FAILED"
    if config.draw_plots or config.plots_dir is not None:
        outcome.warnings += log_plots(
            study, tracker, plan, entry.name, panel, refit, config, forecasts
        )
    return status


def close_tracking(tracker: MlflowTracker, status: str) -> None:
    """End the parent run with ``status``; a store lost by now is recorded, not raised."""
    try:
        tracker.close(status)
    except Exception as exc:
        reason = lost_reason(exc)
        if reason is None:
            raise
        tracker.mark_lost(reason)


def keep_model(model_dir: Path, study_name: str) -> Path:
    """Copy a saved model folder that could not be logged to ``<project dir>/models/<study>``
    (replacing an older one), so a lost tracking store does not lose the refit."""
    from .storage import project_dir

    target = project_dir() / "models" / study_name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(model_dir, target)
    return target


def held_out_forecasts(
    entry: ModelEntry,
    plan: StudyConfig,
    panel: Panel,
    study,
    objective: Objective | None,
    refit: RefitResult,
    outcome: ModelOutcome,
) -> StudyForecasts | None:
    """The study's validation and test forecasts and conformal intervals, whose coverage and
    MSIS join the test metrics; None (and a warning) if they cannot be computed."""
    from .held_out import ensemble_windows
    from .intervals import study_forecasts

    try:
        forecasts = study_forecasts(entry, panel, plan, study, objective, refit)
    except Exception as exc:  # the study stands without them
        first = first_line(exc, typed=not isinstance(exc, MlfError))
        outcome.warnings.append(f"no validation forecasts, so no intervals: {first}")
        return None
    refit.test_metrics.update(forecasts.test_metrics)
    try:
        windows = ensemble_windows(entry, panel, plan, study, forecasts.validation)
    except Exception as exc:  # an ensemble then weighs this study on its validation windows
        first = first_line(exc, typed=not isinstance(exc, MlfError))
        outcome.warnings.append(
            f"no forecasts on {plan.ensemble_windows} windows for ensembles, only on the "
            f"validation windows: {first}"
        )
        windows = forecasts.validation
    return replace(forecasts, ensemble=windows)


def log_held_out(tracker: MlflowTracker, forecasts: StudyForecasts) -> list[str]:
    """Log the validation, ensemble-window and test forecasts on the parent run, and how many
    ensemble windows it kept (``ensemble_windows``); returns warnings."""
    from .held_out import ENSEMBLE_ARTIFACT, TEST_ARTIFACT, VALIDATION_ARTIFACT, log_artifacts

    tables = {VALIDATION_ARTIFACT: forecasts.validation, TEST_ARTIFACT: forecasts.test}
    kept = forecasts.ensemble if forecasts.ensemble is not None else forecasts.validation
    if kept.windows > forecasts.validation.windows:
        tables[ENSEMBLE_ARTIFACT] = kept
    try:
        log_artifacts(tracker.client, tracker.parent_run_id, tables)
        tracker.client.log_param(tracker.parent_run_id, "ensemble_windows", kept.windows)
    except Exception as exc:
        return [f"could not log the held-out forecasts in MLflow: {first_line(exc, typed=True)}"]
    return []


def save_model(
    entry: ModelEntry,
    plan: StudyConfig,
    panel: Panel,
    refit: RefitResult,
    folder: Path,
    conformal: ConformalScores | None = None,
) -> Path:
    """Save the refit model with what `mlf predict` needs to use it again."""
    from . import __version__
    from .runner import DEFAULT_SCALER, DEFAULT_WINDOW_SIZE
    from .saved_model import SavedModel

    saved = SavedModel(
        model_name=entry.name,
        plugin=entry.plugin.name,
        plugin_version=entry.plugin.version,
        params=refit.params,
        task=refit.task,
        columns=asdict(panel.columns),
        freq=panel.freq,
        series_ids=panel.id_labels,
        window_size=int(refit.params.get("window_size", DEFAULT_WINDOW_SIZE)),
        scaler=str(refit.params.get("scaler", DEFAULT_SCALER)),
        forecaster=refit.result.model,
        input=entry.spec.input,
        study_name=plan.study_name,
        data_fingerprint=panel.fingerprint(),
        test_metrics=refit.test_metrics,
        mlf_version=__version__,
        conformal=conformal,
    )
    return saved.save(folder)


def requirements(entry: ModelEntry) -> list[str]:
    """Distributions the logged model needs besides mlf's own: the plugin's and its libraries."""
    return (
        [entry.plugin.dist, *entry.spec.requires] if entry.plugin.dist else [*entry.spec.requires]
    )


def log_plots(
    study,
    tracker: MlflowTracker,
    plan: StudyConfig,
    model: str,
    panel: Panel,
    refit: RefitResult | None,
    config: OptimizeConfig,
    forecasts: StudyForecasts | None = None,
) -> list[str]:
    """Draw the study's plots, log them on the parent run and copy them to
    ``config.plots_dir``; returns warnings (a plot never fails the study)."""
    from .plots import study_plots

    warnings = []
    with tempfile.TemporaryDirectory(prefix="mlf-plots-") as tmp:
        folder = Path(tmp) / "plots"
        drawn = study_plots(
            study,
            folder,
            panel=panel,
            result=refit.result if refit is not None else None,
            model=model,
            metric=plan.metric,
            bounds=forecasts.test_bounds if forecasts is not None else None,
        )
        try:
            tracker.log_plots(folder)
        except Exception as exc:
            warnings.append(f"could not log the plots in MLflow: {exc}")
        if config.plots_dir is not None and drawn.files:
            target = Path(config.plots_dir) / plan.study_name
            try:
                target.mkdir(parents=True, exist_ok=True)
                for path in drawn.files.values():
                    shutil.copy2(path, target / path.name)
            except OSError as exc:
                warnings.append(f"could not write the plots to {target}: {exc}")
    return warnings
