"""One model's study end to end, as one object (:class:`StudyRun`): create or resume the
Optuna study, reap dead workers' trials, search (with ``--n-jobs`` worker processes), refit the
best, test it, save and log the model, plot.

The CLI plans each model's study (:func:`~.plan.plan_study`: its config and the split, computed
once) and calls :meth:`StudyRun.execute`; nothing here prints. Progress is a Rich board passed
in; warnings come back in the outcome.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MlfError, described, first_line
from ..services.outages import lost_reason, tracking_lost
from .budget import UNCAPPED_TRIALS, StopInTime, TimeShare

if TYPE_CHECKING:
    from ..data.panel import Panel
    from ..data.split import Split
    from ..ensembles.intervals import ConformalScores, StudyForecasts
    from ..models.registry import ModelEntry
    from ..tracking.parent_run import MlflowTracker
    from ..trials.objective import Objective
    from ..trials.optuna_study import FailureReason, StudyConfig
    from ..trials.reference import ReferenceScores
    from ..trials.refit import FinalFit, RefitResult
    from ..views.plot_job import PlotJob
    from ..views.progress import ProgressBoard
    from .plan import OptimizeConfig


WORKER_SHARE = 0.7
"""Part of a timed search's time a ``--n-jobs`` worker may use: it has no view of the
finish, so it stops early enough to leave time for it."""


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
    trained_on: str | None = None
    """What the saved model was fitted on (``SavedModel.trained_on``); None without a model."""
    refit_seconds: float | None = None
    """What the refit on train + valid cost (samples, fit, test forecast and its scores)."""
    final_refit_seconds: float | None = None
    """What fitting the tested configuration on the whole history cost (None: not done)."""


@dataclass
class StudyRun:
    """One model's study: it owns the model entry, the study config, the split (computed once,
    when the study was planned), the run's settings and the panel; while it runs, the Optuna
    study, the objective, the tracker and the outcome."""

    entry: ModelEntry
    config: StudyConfig
    split: Split
    run: OptimizeConfig
    panel: Panel
    board: ProgressBoard | None = None
    time_share: TimeShare | None = None
    """The model's share of ``--time-limit`` (:mod:`.budget`); None: no limit."""
    fixed_seconds: float | None = field(default=None, init=False)
    """Seconds the study's finish spent beyond its fits (MLflow, saving, plots), measured
    when it ran with a time share."""
    study: Any = field(default=None, init=False)
    objective: Objective | None = field(default=None, init=False)
    tracker: MlflowTracker | None = field(default=None, init=False)
    outcome: ModelOutcome | None = field(default=None, init=False)

    @classmethod
    def plan(
        cls,
        entry: ModelEntry,
        run: OptimizeConfig,
        panel: Panel,
        *,
        several: bool = False,
    ) -> StudyRun:
        """Plan ``entry``'s study of ``panel`` for ``run`` (checked before anything is
        written: see :func:`~.plan.plan_study`)."""
        from .plan import plan_study

        config, split = plan_study(entry, run, panel, several=several)
        return cls(entry, config, split, run, panel)

    def execute(self, board: ProgressBoard | None = None) -> ModelOutcome:
        """Run the study end to end; the parent MLflow run is closed FINISHED, FAILED, or
        KILLED on Ctrl-C / SIGTERM (re-raised for the caller).

        A study storage or tracking store lost on the way raises
        :class:`~mlforecast_cli.errors.ServiceLost` once what can be done locally is done (the
        search goes on without tracking; the refit model is kept on disk if it was not
        logged)."""
        from ..tracking.parent_run import MlflowTracker
        from .plan import child_runs_for

        if board is not None:
            self.board = board
        started = time.perf_counter()
        self.tracker = tracker = MlflowTracker(
            experiment=self.run.experiment,
            tracking_uri=self.run.tracking_uri,
            metric=self.config.metric,
            sink=child_runs_for(self.run, self.config),
            workers=self.config.n_jobs - 1,
        )
        try:
            self.outcome = outcome = self._start()
            outcome.warnings += self.search()
            searched = time.perf_counter()
            close_tracking(tracker, self.finish())
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
                f"{len(tracker.errors)} child run(s) not written to MLflow; first: "
                f"{tracker.errors[0]}"
            )
        outcome.seconds = time.perf_counter() - started
        if self.time_share is not None:  # what the finish took beyond its fits
            fits = StopInTime(self.time_share, self.finish_fits())
            after_search = time.perf_counter() - searched
            self.fixed_seconds = after_search - fits.finish_fits(self.study)
        return outcome

    def _start(self) -> ModelOutcome:
        """Create or resume the study, reap dead trials, start the parent run."""
        from ..services.liveness import reap_dead_trials
        from ..tracking.parent_run import ParentRun
        from ..trials.objective import build_objective
        from ..trials.optuna_study import create_study
        from .workers import check_cluster_storage

        self.objective = build_objective(self.entry, self.panel, self.config, self.split)
        self.study, created = create_study(self.config, self.panel)
        check_cluster_storage(self.config)
        reaped = reap_dead_trials(self.study)
        self.tracker.start(
            self.study,
            created=created,
            parent=ParentRun(
                params=self.parent_params(),
                tags={"mlf.model": self.entry.name, "mlf.command": self.run.command},
                space_yaml=self.config.space.to_yaml(),
            ),
            pending=reaped,
        )
        outcome = ModelOutcome(
            self.entry.name, self.config.study_name, parent_run_id=self.tracker.parent_run_id
        )
        if self.tracker.moved_from:
            outcome.warnings.append(self.tracker.moved_from)
        return outcome

    def parent_params(self) -> dict[str, Any]:
        """The parameters of the study's parent MLflow run."""
        from .. import __version__
        from ..services.storage import redact

        entry, config = self.entry, self.config
        return {
            "model": entry.name,
            "study_name": config.study_name,
            "data": self.run.data_name,
            "data_fingerprint": self.panel.fingerprint(),
            "horizon": config.horizon,
            "metric": config.metric,
            "cv_windows": config.cv_windows,
            "ape_cap": config.ape_cap,
            "seed": config.seed,
            "plugin": entry.plugin.name,
            "plugin_distribution": entry.plugin.dist,
            "plugin_version": entry.plugin.version,
            "mlf_version": __version__,
            "storage": redact(config.storage or "default"),
        }

    def search(self) -> list[str]:
        """Add the run's trials to the study, with ``n_jobs - 1`` worker processes beside this
        one; returns the workers' errors. On Ctrl-C the workers are stopped and the trials
        that were running are logged KILLED before it is re-raised."""
        from ..search.metrics import metric_label
        from ..trials.objective import planned_trials, run_study
        from . import workers
        from .plan import child_runs_for

        config, study, tracker = self.config, self.study, self.tracker
        trials = planned_trials(config.space, study, self.run.trials)
        progress = None
        if self.board is not None:
            shown = None if trials >= UNCAPPED_TRIALS else trials  # the time ends the search
            progress = self.board.add(
                self.entry.name, shown, metric_label(config.metric), study, metric=config.metric
            )
        # --n-jobs: every process pulls trials until the study holds `until` of them, so a
        # process that starts late (imports, data) does not leave a fixed share for the end.
        until = None
        if config.n_jobs > 1:  # an enqueued first trial waiting to run is one of `trials`
            from optuna.trial import TrialState

            started = [s for s in TrialState if s != TrialState.WAITING]
            until = len(study.get_trials(deepcopy=False, states=started)) + trials
        timeout, stop_in_time = self.search_timeout()
        jobs = [
            workers.WorkerJob(
                registry=workers.registry_settings(),
                study=config.with_seed(config.seed + k),
                split=self.split,
                panel=self.panel,
                until_total=until,
                timeout=timeout if stop_in_time is None else WORKER_SHARE * timeout,
                tracking_uri=tracker.tracking_uri,
                child_runs=child_runs_for(self.run, config),
            )
            for k in range(1, config.n_jobs if until is not None else 1)
        ]
        procs = workers.start(jobs, [tracker.worker_pipe() for _ in jobs])
        tracker.release_worker_pipes()
        callbacks: list[Any] = [tracker] if progress is None else [tracker, progress]
        if stop_in_time is not None:
            callbacks.append(stop_in_time)
        try:
            if progress is not None and procs:
                progress.poll()
            run_study(
                self.objective,
                study,
                n_trials=trials if until is None else None,
                until_total=until,
                timeout=timeout,
                callbacks=callbacks,
            )
            errors = workers.wait(procs)
        except KeyboardInterrupt:
            workers.stop(procs)
            workers.wait(procs)
            tracker.log_unfinished(self.objective.started, status="KILLED")
            raise
        except Exception:  # the storage lost: the workers cannot go on either
            workers.stop(procs)
            workers.wait(procs)
            raise
        if progress is not None:
            progress.finish()
        tracker.flush()
        return errors

    def search_timeout(self) -> tuple[float | None, StopInTime | None]:
        """The search's Optuna ``timeout`` (``--timeout``, and within :attr:`time_share`) and
        the callback that stops it in time for the model's finish (None without a share)."""
        share = self.time_share
        if share is None:
            return self.run.timeout, None
        stop = StopInTime(share, fits_after=self.finish_fits())
        left = max(1.0, share.deadline - time.monotonic() - share.fixed)
        return (left if self.run.timeout is None else min(self.run.timeout, left)), stop

    def out_of_time(self) -> bool:
        """Whether fitting the older ensemble windows would end past the model's share of
        ``--time-limit`` (each as long as its complete trials, on average), or past its
        ``lead_deadline`` when it validates better than every model before it."""
        share = self.time_share
        if share is None:
            return False
        stop = StopInTime(share, self.finish_fits() - 1)
        deadline = share.finish_deadline(self.comparable_best())
        return time.monotonic() + stop.finish_fits(self.study) > deadline

    def comparable_best(self) -> float | None:
        """The study's best validation value where lower is better, else None."""
        if self.study is None:  # not started
            return None
        try:
            minimised = self.study.direction.name == "MINIMIZE"
            return float(self.study.best_value) if minimised else None
        except ValueError:  # no complete trial
            return None

    def finish_fits(self) -> int:
        """Fits of the finish: the best configuration on the ensemble windows older than the
        validation windows, then its refit."""
        return len(self.split.earlier_folds(self.config.ensemble_windows)) + 1

    def finish(self) -> str:
        """Refit the best trial, test it, fit it on the whole history (``run.final_refit``),
        save and log the model, its held-out forecasts and the plots; the parent run's final
        status (FINISHED, or FAILED with ``outcome.error``)."""
        from ..tracking.parent_run import StudySummary
        from ..trials.optuna_study import failure_reasons, state_counts
        from ..trials.reference import reference_scores
        from ..trials.refit import refit_best

        study, outcome, tracker = self.study, self.outcome, self.tracker
        outcome.counts = state_counts(study)
        outcome.failures = failure_reasons(study)
        try:
            outcome.reference = reference_scores(self.panel, self.split)
        except Exception as exc:  # the reference row is a comparison, never a reason to fail
            outcome.warnings.append(f"could not score the reference: {described(exc)}")
        if outcome.counts.get("complete", 0) == 0:
            errors = [t.user_attrs.get("error") for t in study.trials if t.user_attrs.get("error")]
            last = f"; last error: {errors[-1]}" if errors else ""
            outcome.error = "no trial completed" + last
            tracker.log_summary(StudySummary(counts=outcome.counts, reference=outcome.reference))
            return "FAILED"
        # the plain metric of the best trial, not its selection score (trials.objective)
        best_metrics = study.best_trial.user_attrs.get("val_metrics") or {}
        outcome.best_value = best_metrics.get(self.config.metric, study.best_value)
        started = time.perf_counter()
        try:
            refit = refit_best(self.entry, self.panel, self.config, self.split, study)
        except MlfError as exc:
            outcome.error = f"refit of the best trial failed: {exc}"
            refit = None
        outcome.best_params = refit.params if refit else None
        outcome.refit_seconds = time.perf_counter() - started if refit else None
        forecasts = self.held_out_forecasts(refit) if refit is not None else None
        with tempfile.TemporaryDirectory(prefix="mlf-model-") as tmp:
            models = None
            if refit is not None:
                outcome.test_metrics = refit.test_metrics
                outcome.naive_fallback = refit.naive_fallback
                conformal = forecasts.conformal if forecasts is not None else None
                models = self.save_models(refit, Path(tmp), conformal)
            try:
                return self.log_results(refit, models, forecasts)
            except Exception as exc:
                reason = lost_reason(exc)
                if reason is None:
                    raise
                tracker.mark_lost(reason)
                if models is not None:
                    outcome.kept_model = keep_model(models.production, self.config.study_name)
        return "FAILED" if outcome.error else "FINISHED"

    def save_models(
        self, refit: RefitResult, folder: Path, conformal: ConformalScores | None
    ) -> SavedModels:
        """Save the tested refit and, with ``run.final_refit``, the same configuration fitted
        on the whole history (the production model) in ``folder``. A final fit that fails
        leaves the tested refit as the production model, with a warning."""
        from ..forecasting.saved_model import TRAIN_VALID, WHOLE_HISTORY
        from ..trials.refit import refit_final

        outcome = self.outcome
        tested = self.save_model(refit, folder / "tested", conformal)
        outcome.trained_on = TRAIN_VALID
        if not self.run.final_refit:
            return SavedModels(production=tested, tested=None)
        try:
            final = refit_final(self.entry, self.panel, refit)
        except MlfError as exc:
            outcome.warnings.append(
                f"the fit on the whole history failed, so the saved model is the one refit on "
                f"train + valid: {exc}"
            )
            return SavedModels(production=tested, tested=None)
        outcome.final_refit_seconds = final.seconds
        outcome.trained_on = WHOLE_HISTORY
        production = self.save_model(refit, folder / "model", conformal, final=final)
        return SavedModels(production=production, tested=tested)

    def log_results(
        self,
        refit: RefitResult | None,
        models: SavedModels | None,
        forecasts: StudyForecasts | None,
    ) -> str:
        """Log the summary, the held-out forecasts, the models and the plots on the parent
        run; the run's final status. A lost tracking store is raised (the caller keeps the
        model on disk)."""
        outcome = self.outcome
        status = "FAILED" if outcome.error else "FINISHED"
        with tempfile.TemporaryDirectory(prefix="mlf-plots-") as tmp:
            plots = None
            if self.run.draw_plots or self.run.plots_dir is not None:
                plots = self.start_plots(refit, forecasts, Path(tmp) / "plots")
            try:
                status = self.log_outcome(refit, models, forecasts, status)
            except BaseException:  # a store lost, an interrupt: no drawing left behind
                if plots is not None:
                    plots.cancel()
                raise
            if plots is not None:
                outcome.warnings += self.log_plots(plots)
        return status

    def log_outcome(
        self,
        refit: RefitResult | None,
        models: SavedModels | None,
        forecasts: StudyForecasts | None,
        status: str,
    ) -> str:
        """Log the models, the summary and the held-out forecasts; the run's status.

        The model goes first: MLflow links the run's metrics to a model logged after them
        with one query per metric, while the summary logged after the model names it."""
        from ..tracking.parent_run import TESTED_MODEL_ARTIFACT, StudySummary

        outcome, tracker = self.outcome, self.tracker
        model_uri = None
        if models is not None:
            try:
                if models.tested is not None:
                    tracker.log_folder(models.tested, TESTED_MODEL_ARTIFACT)
                model_uri = tracker.log_model(
                    models.production, panel=self.panel, requirements=requirements(self.entry)
                )
            except Exception as exc:
                if lost_reason(exc) is not None:
                    raise
                outcome.error = f"logging the model in MLflow failed: {first_line(exc, typed=True)}"
                status = "FAILED"
        seconds = {
            name: value
            for name, value in (
                ("refit", outcome.refit_seconds),
                ("final_refit", outcome.final_refit_seconds),
            )
            if value is not None
        }
        summary = StudySummary(
            best_params=outcome.best_params or dict(self.study.best_params),
            best_value=outcome.best_value,
            test_metrics=outcome.test_metrics,
            train_metrics=refit.train_metrics if refit else {},
            counts=outcome.counts,
            naive_fallback=outcome.naive_fallback,
            reference=outcome.reference,
            trained_on=outcome.trained_on,
            seconds=seconds,
        )
        tracker.log_summary(summary, model_uri=model_uri)
        if forecasts is not None:
            outcome.warnings += log_held_out(tracker, forecasts)
        return status

    def held_out_forecasts(self, refit: RefitResult) -> StudyForecasts | None:
        """The study's validation and test forecasts and conformal intervals, whose coverage
        and MSIS join the test metrics; None (and a warning) if they cannot be computed."""
        from ..ensembles.held_out import ensemble_windows
        from ..ensembles.intervals import study_forecasts

        outcome = self.outcome
        try:
            forecasts = study_forecasts(self.objective, self.study, refit)
        except Exception as exc:  # the study stands without them
            first = first_line(exc, typed=not isinstance(exc, MlfError))
            outcome.warnings.append(f"no validation forecasts, so no intervals: {first}")
            return None
        refit.test_metrics.update(forecasts.test_metrics)
        if self.out_of_time():
            outcome.warnings.append(
                f"--time-limit: no time left for forecasts on {self.config.ensemble_windows} "
                "windows for ensembles, only on the validation windows"
            )
            return replace(forecasts, ensemble=forecasts.validation)
        try:
            windows = ensemble_windows(self.objective, self.study, forecasts.validation)
        except Exception as exc:  # an ensemble then weighs this study on its validation windows
            first = first_line(exc, typed=not isinstance(exc, MlfError))
            outcome.warnings.append(
                f"no forecasts on {self.config.ensemble_windows} windows for ensembles, only "
                f"on the validation windows: {first}"
            )
            windows = forecasts.validation
        return replace(forecasts, ensemble=windows)

    def save_model(
        self,
        refit: RefitResult,
        folder: Path,
        conformal: ConformalScores | None = None,
        final: FinalFit | None = None,
    ) -> Path:
        """Save the refit model with what `mlf predict` needs to use it again; with ``final``
        (the same configuration fitted on the whole history) that model instead, with the
        refit's test metrics and intervals."""
        from .. import __version__
        from ..forecasting.saved_model import TRAIN_VALID, WHOLE_HISTORY, SavedModel
        from ..trials.fit import DEFAULT_SCALER, DEFAULT_WINDOW_SIZE

        entry, panel = self.entry, self.panel
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
            forecaster=final.model if final is not None else refit.result.model,
            input=entry.spec.input,
            study_name=self.config.study_name,
            data_fingerprint=panel.fingerprint(),
            test_metrics=refit.test_metrics,
            mlf_version=__version__,
            conformal=conformal,
            trained_on=WHOLE_HISTORY if final is not None else TRAIN_VALID,
        )
        return saved.save(folder)

    def start_plots(
        self, refit: RefitResult | None, forecasts: StudyForecasts | None, folder: Path
    ) -> PlotJob:
        """Start drawing the study's plots into ``folder`` (a process of their own)."""
        from ..views.plot_job import PlotJob
        from ..views.plots import RefitForecast

        forecast = None
        if refit is not None:
            bounds = forecasts.test_bounds if forecasts is not None else None
            forecast = RefitForecast(self.panel, refit.result, bounds, model=self.entry.name)
        return PlotJob(self.study, folder, forecast=forecast, metric=self.config.metric)

    def log_plots(self, job: PlotJob) -> list[str]:
        """Wait for the plots, log them on the parent run and copy them to
        ``run.plots_dir``; returns warnings (a plot never fails the study)."""
        warnings = []
        drawn = job.result()
        try:
            self.tracker.log_plots(job.folder)
        except Exception as exc:
            warnings.append(f"could not log the plots in MLflow: {exc}")
        if self.run.plots_dir is not None and drawn.files:
            target = Path(self.run.plots_dir) / self.config.study_name
            try:
                target.mkdir(parents=True, exist_ok=True)
                for path in drawn.files.values():
                    shutil.copy2(path, target / path.name)
            except OSError as exc:
                warnings.append(f"could not write the plots to {target}: {exc}")
        return warnings


@dataclass(frozen=True)
class SavedModels:
    """The saved model folders of a study: the one `mlf predict` uses (``production``, the
    pyfunc model ``model``) and, when that one was fitted on the whole history, the tested
    refit (logged as the artifact folder ``tested_model/``)."""

    production: Path
    tested: Path | None


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
    from ..services.storage import project_dir

    target = project_dir() / "models" / study_name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(model_dir, target)
    return target


def log_held_out(tracker: MlflowTracker, forecasts: StudyForecasts) -> list[str]:
    """Log the validation, ensemble-window and test forecasts on the parent run, and how many
    ensemble windows it kept (``ensemble_windows``); returns warnings."""
    from ..ensembles.held_out import (
        ENSEMBLE_ARTIFACT,
        TEST_ARTIFACT,
        VALIDATION_ARTIFACT,
        log_artifacts,
    )

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


def requirements(entry: ModelEntry) -> list[str]:
    """Distributions the logged model needs besides mlf's own: the plugin's and its libraries."""
    return (
        [entry.plugin.dist, *entry.spec.requires] if entry.plugin.dist else [*entry.spec.requires]
    )
