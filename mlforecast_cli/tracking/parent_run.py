"""MLflow tracking as an Optuna callback: one parent run per study, one child run per trial.

The parent run id lives in the study's user attributes, so every worker process logs under
the same parent. Child runs are written by a writer process (:mod:`.child_runs`) once their
trial has ended, so tracking costs a trial almost nothing and a killed worker leaves no child
run RUNNING.
"""

from __future__ import annotations

import json
import math
import random
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MlfError, UsageError, first_line
from ..search.metrics import DEFAULT_METRIC, mlflow_key
from ..services.liveness import WORKER_ATTR, pid_alive, wait_for_user_attr
from ..services.mlflow_store import (
    connect,
    get_or_create_experiment,
    quiet_mlflow_logs,
    retried_on_race,
    use_wal_for_sqlite,
)
from ..services.outages import lost_reason
from ..trials.reference import TEST_PREFIX, VAL_PREFIX, ReferenceScores
from .child_runs import (
    PARENT_TAG,
    ChildRunSink,
    ChildRunWriter,
    InlineChildRuns,
    create_child,
    param_text,
    write_trial,
)

PARENT_ATTR = "mlflow_parent_run_id"
LOG_MODEL_ATTEMPTS = 3
"""Tries to log the model when the store refuses it for another process's write."""
MODELS_SCHEME = "models:/"
TESTED_MODEL_ARTIFACT = "tested_model"
"""Artifact folder of the parent run holding the refit scored on the test window (a saved
model folder) when the logged model was fitted on the whole history."""


@dataclass(frozen=True)
class ParentRun:
    """What a new parent run is created with: its parameters, tags and search space."""

    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    space_yaml: str | None = None


@dataclass(frozen=True)
class StudySummary:
    """A study's results for its parent run (:meth:`MlflowTracker.log_summary`)."""

    best_params: Mapping[str, Any] | None = None
    best_value: float | None = None
    test_metrics: Mapping[str, float] = field(default_factory=dict)
    """The train + valid refit's, scored once on the test window."""
    train_metrics: Mapping[str, float] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    naive_fallback: int | None = None
    """Test series the seasonal naive forecast: the metric ``naive_fallback_series``."""
    reference: ReferenceScores | None = None
    """The seasonal naive on the same split: metrics ``reference_val_*``, ``reference_test_*``."""
    trained_on: str | None = None
    """What the logged model was fitted on (the tag ``mlf.trained_on``)."""
    seconds: Mapping[str, float] = field(default_factory=dict)
    """Costs of the study's steps, logged as the metrics ``<name>_seconds``
    (``refit``, ``final_refit``)."""


def count_key(state: str) -> str:
    """The parent run's MLflow metric holding how many trials ended in ``state``."""
    return f"n_trials_{state}"


class MlflowTracker:
    """Logs each finished trial as a nested MLflow run; call :meth:`close` at the end.

    Finished trials go to a :class:`~.child_runs.ChildRunSink`: by default a writer process
    (:class:`~.child_runs.ChildRunWriter`, with a pipe for each of
    the ``workers`` processes this command will start: :meth:`worker_pipe`); ``sink="inline"``
    writes in this process. A ``worker`` (a process that shares another one's study) connects
    to nothing itself: it takes the parent run from the study and hands its trials to ``sink``
    (its end of the command's writer, or an inline sink of its own).
    """

    def __init__(
        self,
        *,
        experiment: str,
        tracking_uri: str | None = None,
        metric: str = DEFAULT_METRIC,
        worker: bool = False,
        sink: ChildRunSink | str = "process",
        workers: int = 0,
    ) -> None:
        self.metric = metric
        self.worker = worker
        self.client = None
        self.experiment_id: str | None = None
        if worker:
            if not tracking_uri:
                raise UsageError("a worker needs --tracking-uri")
            self.tracking_uri = tracking_uri
        else:
            import mlflow

            quiet_mlflow_logs()
            self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
            if self.tracking_uri.startswith("sqlite:"):
                use_wal_for_sqlite()
            try:
                self.client = connect(self.tracking_uri)
                self.experiment_id = get_or_create_experiment(self.client, experiment)
            except Exception as exc:
                first = first_line(exc, type(exc).__name__)
                raise UsageError(
                    f"cannot use the MLflow tracking store {self.tracking_uri}: {first}; "
                    "check --tracking-uri / MLFLOW_TRACKING_URI"
                ) from exc
        self.study = None
        self.parent_run_id: str | None = None
        self.moved_from: str | None = None
        """Set by :meth:`start` when the resumed study was tracked in another experiment:
        one line saying so (its new trials go to a new parent run in this experiment)."""
        self._logged: set[int] = set()
        # started now, a writer process imports MLflow while the study is being opened
        if sink == "process":
            sink = ChildRunWriter(workers)
        elif sink == "inline":
            sink = InlineChildRuns()
        elif isinstance(sink, str):
            raise UsageError(f"child runs sink {sink!r} is not one of process, inline")
        self._writer = sink
        self._lost: str | None = None
        self.closed = False

    def start(
        self,
        study,
        *,
        created: bool = True,
        parent: ParentRun | None = None,
        parent_wait_s: float = 60.0,
        pending=(),
    ) -> str:
        """Open (or reopen) the study's parent run and start logging; returns its run id.

        The process that ``created`` the study creates the parent run (with ``parent``'s
        params, tags and space); the others wait for its id to appear in the study (up to
        ``parent_wait_s``), so all share one parent. ``pending`` trials (failed here for a dead
        worker) are logged at once.
        """
        self.study = study
        self._logged = {
            int(t.number) for t in study.get_trials(deepcopy=False) if t.state.is_finished()
        } - {t.number for t in pending}
        if not created and not study.user_attrs.get(PARENT_ATTR):
            wait_for_user_attr(study, PARENT_ATTR, parent_wait_s)
        if self.worker:
            run_id = study.user_attrs.get(PARENT_ATTR)
            if not run_id:
                raise MlfError(
                    f"study '{study.study_name}' has no MLflow parent run after "
                    f"{parent_wait_s:.0f} s: the process that created it did not start tracking"
                )
        else:
            run_id = self._parent(parent or ParentRun())
        self._writer.start(self.tracking_uri, self.experiment_id, run_id, study.study_name)
        self.parent_run_id = run_id  # from here on, finished trials go to the writer
        if not self.worker:
            self.repair_children()
        for trial in pending:
            self(study, trial)
        return self.parent_run_id

    # ---- parent run ----------------------------------------------------------------------
    def _parent(self, spec: ParentRun) -> str:
        from mlflow.entities import Param, RunTag

        run_id = self.study.user_attrs.get(PARENT_ATTR)
        if run_id:
            try:
                run = self.client.get_run(run_id)
            except Exception:
                run = None  # deleted, or another store: start a new parent run
            if run is not None and run.info.experiment_id == self.experiment_id:
                self.client.update_run(run_id, status="RUNNING")
                return run_id
            if run is not None:
                self.moved_from = self._moved_message(run)
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.study.study_name,
            tags={"mlf.role": "study", "mlf.study": self.study.study_name, **spec.tags},
        )
        run_id = run.info.run_id
        self.study.set_user_attr(PARENT_ATTR, run_id)
        self.client.log_batch(
            run_id,
            params=[Param(k, param_text(v)) for k, v in spec.params.items()],
            tags=[RunTag(k, str(v)) for k, v in spec.tags.items()],
        )
        if spec.space_yaml is not None:
            self.client.log_text(run_id, spec.space_yaml, "space.yaml")
        self.client.log_dict(run_id, package_versions(), "environment.json")
        return run_id

    def _moved_message(self, run) -> str:
        try:
            old = self.client.get_experiment(run.info.experiment_id).name
        except Exception:
            old = run.info.experiment_id
        new = self.client.get_experiment(self.experiment_id).name
        return (
            f"study '{self.study.study_name}' was tracked in MLflow experiment '{old}' (parent run "
            f"{run.info.run_id}); its earlier trials stay there and this run's go to a new parent "
            f"run in '{new}': pass --experiment {old} to keep the study in one experiment, or "
            "--study-name to start a new study"
        )

    # ---- child runs ----------------------------------------------------------------------
    def __call__(self, study, trial, status: str | None = None) -> None:
        """The Optuna callback: hand finished ``trial`` to the writer process."""
        if trial.number in self._logged or self.parent_run_id is None:
            return
        self._logged.add(trial.number)
        self._writer.submit(trial, status)

    def log_trial(self, trial, status: str | None = None) -> str:
        """Write one trial as a child run in this process (synchronously); returns its run id."""
        if trial.number in self._logged:
            return ""
        self._logged.add(trial.number)
        run_id = create_child(
            self.client, self.experiment_id, self.parent_run_id, self.study.study_name, trial
        )
        write_trial(self.client, run_id, trial, status)
        return run_id

    def repair_children(self) -> int:
        """Complete what a killed worker left of its trials' child runs: a run left RUNNING
        halfway through logging is finished, a finished trial with no run gets one.

        Only trials whose worker process on this host is gone are touched (a live worker may
        be writing its runs right now). Returns how many trials were repaired.
        """
        children = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_run_id}'",
            max_results=50000,
        )
        runs = {int(r.data.tags.get("mlf.trial_number", -1)): r for r in children}
        host = socket.gethostname()
        repaired = 0
        for trial in self.study.get_trials(deepcopy=False):
            worker = trial.user_attrs.get(WORKER_ATTR) or {}
            if not trial.state.is_finished() or worker.get("host") != host:
                continue
            run = runs.get(trial.number)
            if (run is not None and run.info.status != "RUNNING") or pid_alive(worker.get("pid")):
                continue
            if run is None:
                self._logged.discard(trial.number)
                self.log_trial(trial)
            else:
                write_trial(self.client, run.info.run_id, trial)
            repaired += 1
        return repaired

    def worker_pipe(self) -> int | None:
        """A pipe to this command's writer for one worker process (``--tracking-fd``)."""
        if isinstance(self._writer, ChildRunWriter):
            return self._writer.take_input()
        return None

    def release_worker_pipes(self) -> None:
        """Close the pipes of workers that were not started."""
        if isinstance(self._writer, ChildRunWriter):
            self._writer.release_inputs()

    def flush(self) -> None:
        """Wait until every trial handed to the writer is written."""
        if self.parent_run_id is not None:
            self._writer.flush()

    @property
    def seconds(self) -> float:
        """Time the writer process spent writing child runs."""
        return self._writer.seconds

    @property
    def errors(self) -> list[str]:
        """Child runs that could not be written (tracking never stops a study)."""
        return list(self._writer.errors)

    @property
    def lost(self) -> str | None:
        """Why the tracking store was lost during the study (unreachable, full), or None."""
        return self._lost or self._writer.lost

    def mark_lost(self, reason: str) -> None:
        """Record that this process's own calls lost the store: :meth:`close` leaves the
        parent run as it is (RUNNING; the next command reopens it) instead of retrying."""
        self._lost = reason

    def log_unfinished(self, numbers, status: str = "KILLED") -> None:
        """Log the trials ``numbers`` that ended without reaching the callback (an interrupt)."""
        for trial in self.study.get_trials(deepcopy=False):
            if trial.number in numbers and trial.number not in self._logged:
                self(self.study, trial, status)
        self.flush()

    # ---- the end ---------------------------------------------------------------------------
    def log_summary(self, summary: StudySummary, *, model_uri: str | None = None) -> None:
        """Write the study's results on the parent run (see :class:`StudySummary`); the model
        itself is logged by :meth:`log_model`, and the metrics are linked to the logged
        ``model_uri`` (``models:/<model id>``) when given."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        model_id = None
        if model_uri and model_uri.startswith(MODELS_SCHEME):
            model_id = model_uri[len(MODELS_SCHEME) :]

        def metric(key: str, value: float) -> Metric:
            return Metric(key, float(value), now, 0, model_id=model_id)

        metrics = []
        if summary.best_value is not None and math.isfinite(summary.best_value):
            metrics.append(metric(mlflow_key("best_val", self.metric), summary.best_value))
        for prefix, scores in (
            ("test", summary.test_metrics),
            ("refit_train", summary.train_metrics),
        ):
            metrics.extend(
                metric(mlflow_key(prefix, name), value)
                for name, value in scores.items()
                if math.isfinite(value)
            )
        metrics.extend(metric(count_key(name), value) for name, value in summary.counts.items())
        if summary.reference is not None:
            for prefix, scores in (
                (VAL_PREFIX, summary.reference.val_metrics),
                (TEST_PREFIX, summary.reference.test_metrics),
            ):
                metrics.extend(
                    metric(mlflow_key(prefix, name), value)
                    for name, value in scores.items()
                    if math.isfinite(value)
                )
        if summary.naive_fallback is not None:
            metrics.append(metric("naive_fallback_series", summary.naive_fallback))
        metrics.extend(metric(f"{name}_seconds", v) for name, v in summary.seconds.items())
        tags = []
        if summary.trained_on is not None:
            tags.append(RunTag("mlf.trained_on", summary.trained_on))
        best_params = summary.best_params
        if best_params is not None:
            tags.append(RunTag("mlf.best_params", json.dumps(best_params, default=str)[:5000]))
            tags.extend(RunTag(f"best.{k}", param_text(v)) for k, v in best_params.items())
        retried_on_race(
            lambda: self.client.log_batch(self.parent_run_id, metrics=metrics, tags=tags)
        )
        if best_params is not None:
            self.client.log_dict(self.parent_run_id, dict(best_params), "best_params.json")

    def log_model(self, model_dir: Path, *, panel=None, requirements: Sequence[str] = ()) -> str:
        """Log a saved model folder as the pyfunc model ``model`` of the parent run, tag the run
        with its URI (``mlf.model_uri``) and return it."""
        from ..forecasting.pyfunc import MODEL_URI_TAG, RunTarget, log_model

        target = RunTarget(self.parent_run_id, self.tracking_uri, self.experiment_id)
        for attempt in range(LOG_MODEL_ATTEMPTS):
            try:
                uri = log_model(model_dir, target, panel=panel, pip_requirements=requirements)
                break
            except Exception as exc:
                # every process of a shared study logs its refit on the one parent run: MLflow's
                # SQL store can refuse one of two at the same moment (autoflush, a lock)
                if lost_reason(exc) is not None or attempt == LOG_MODEL_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0.2, 1.0) * (attempt + 1))
        retried_on_race(lambda: self.client.set_tag(self.parent_run_id, MODEL_URI_TAG, uri))
        return uri

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        """Log the files of ``folder`` under ``artifact_path`` on the parent run."""
        self.client.log_artifacts(self.parent_run_id, str(folder), artifact_path)

    def log_plots(self, folder: Path) -> None:
        """Log the plots in ``folder`` (PNG files, plots.json) under ``plots/`` on the parent."""
        if Path(folder).is_dir() and any(Path(folder).iterdir()):
            self.client.log_artifacts(self.parent_run_id, str(folder), "plots")

    def close(self, status: str | None = "FINISHED") -> None:
        """Write what is queued, stop the writer and end the parent run with ``status``
        (once); None leaves the parent run as it is (a worker that shares it)."""
        if self.closed:
            return
        self.closed = True
        self._writer.close()
        if self.client is not None and self.parent_run_id and status is not None and not self._lost:
            self.client.set_terminated(self.parent_run_id, status)


def experiment_id(client, name: str, uri: str) -> str:
    """The id of MLflow experiment ``name``; a one-line UsageError listing the others."""
    found = client.get_experiment_by_name(name)
    if found is None:
        names = [e.name for e in client.search_experiments()]
        raise UsageError(
            f"no MLflow experiment named '{name}' in {uri} (existing: "
            f"{', '.join(names) or 'none'}); run 'mlf optimize' first, or pass --experiment "
            "or --tracking-uri"
        )
    return found.experiment_id


PACKAGES = (
    "mlforecast-cli",
    "numpy",
    "pandas",
    "optuna",
    "mlflow",
    "pluggy",
    "lightgbm",
    "xgboost",
    "catboost",
    "scikit-learn",
    "torch",
    "rich",
    "typer",
)


def package_versions() -> dict[str, str]:
    """Python and the installed versions of the packages a result depends on (none imported)."""
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
