"""MLflow tracking as an Optuna callback: one parent run per study, one child run per trial.

A child run is written once its trial has ended, in three calls (create, one batch, terminate)
on a background thread, so tracking costs a fast trial almost nothing and a killed worker
leaves no child run RUNNING. The parent run id lives in the study's user attributes, so
every worker process (and ``--n-jobs`` thread) logs under the same parent.
"""

from __future__ import annotations

import json
import math
import queue
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import UsageError, first_line

PARENT_ATTR = "mlflow_parent_run_id"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
MAX_PARAM_LENGTH = 6000
BATCH = 900
STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED", "RUNNING": "KILLED"}


def metric_key(prefix: str, name: str) -> str:
    from .runner import metric_label

    return f"{prefix}_{metric_label(name)}"


def _ms(moment) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


class MlflowTracker:
    """Logs each finished trial as a nested MLflow run; call :meth:`close` at the end."""

    def __init__(
        self, *, experiment: str, tracking_uri: str | None = None, metric: str = "mape"
    ) -> None:
        import logging

        import mlflow
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.metric = metric
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        if self.tracking_uri.startswith("sqlite:"):
            use_wal_for_sqlite()
        try:
            self.client = MlflowClient(self.tracking_uri)
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = (
                found.experiment_id if found else self.client.create_experiment(experiment)
            )
        except Exception as exc:
            first = first_line(exc, type(exc).__name__)
            raise UsageError(
                f"cannot use the MLflow tracking store {self.tracking_uri}: {first}; "
                "check --tracking-uri / MLFLOW_TRACKING_URI"
            ) from exc
        self.study = None
        self.parent_run_id: str | None = None
        self._logged: set[int] = set()
        self._queue: queue.Queue = queue.Queue()
        self._errors: list[str] = []
        self._thread: threading.Thread | None = None
        self.closed = False
        self.seconds = 0.0
        """Time the background thread spent writing child runs."""

    def start(
        self,
        study,
        *,
        created: bool = True,
        parent_params: Mapping[str, Any] | None = None,
        parent_tags: Mapping[str, str] | None = None,
        space_yaml: str | None = None,
        parent_wait_s: float = 60.0,
        pending=(),
    ) -> str:
        """Open (or reopen) the study's parent run and start logging; returns its run id.

        The worker that ``created`` the study creates the parent run; the others wait for its
        id to appear in the study (up to ``parent_wait_s``), so all share one parent.
        ``pending`` trials (failed here for a dead worker) are logged at once.
        """
        self.study = study
        self._logged = {
            int(t.number) for t in study.get_trials(deepcopy=False) if t.state.is_finished()
        } - {t.number for t in pending}
        if not created and not study.user_attrs.get(PARENT_ATTR):
            from .runner import wait_for_user_attr

            wait_for_user_attr(study, PARENT_ATTR, parent_wait_s)
        self.parent_run_id = self._parent(parent_params or {}, parent_tags or {}, space_yaml)
        self.repair_children()
        self._thread = threading.Thread(target=self._drain, name="mlf-tracking", daemon=True)
        self._thread.start()
        for trial in pending:
            self(study, trial)
        return self.parent_run_id

    # ---- parent run ----------------------------------------------------------------------
    def _parent(self, params: Mapping[str, Any], tags: Mapping[str, str], space_yaml) -> str:
        from mlflow.entities import Param, RunTag

        run_id = self.study.user_attrs.get(PARENT_ATTR)
        if run_id:
            try:
                run = self.client.get_run(run_id)
                if run.info.experiment_id == self.experiment_id:
                    self.client.update_run(run_id, status="RUNNING")
                    return run_id
            except Exception:
                pass
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.study.study_name,
            tags={"mlf.role": "study", "mlf.study": self.study.study_name, **tags},
        )
        run_id = run.info.run_id
        self.study.set_user_attr(PARENT_ATTR, run_id)
        self.client.log_batch(
            run_id,
            params=[Param(k, _param_text(v)) for k, v in params.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )
        if space_yaml is not None:
            self.client.log_text(run_id, space_yaml, "space.yaml")
        self.client.log_dict(run_id, package_versions(), "environment.json")
        return run_id

    # ---- child runs ----------------------------------------------------------------------
    def __call__(self, study, trial) -> None:
        self._queue.put(trial)

    def _drain(self) -> None:
        while True:
            trial = self._queue.get()
            if trial is None:
                self._queue.task_done()
                return
            start = time.perf_counter()
            try:
                self.log_trial(trial)
            except Exception as exc:  # tracking must never kill the study
                self._errors.append(f"trial {trial.number}: {type(exc).__name__}: {exc}")
            finally:
                self.seconds += time.perf_counter() - start
                self._queue.task_done()

    def log_trial(self, trial, status: str | None = None) -> str:
        """Write one trial as a child run (synchronously); returns its run id."""

        if trial.number in self._logged:
            return ""
        self._logged.add(trial.number)
        state = trial.state.name
        end = _ms(trial.datetime_complete) or int(time.time() * 1000)
        run = self.client.create_run(
            self.experiment_id,
            start_time=_ms(trial.datetime_start) or end,
            tags={
                PARENT_TAG: self.parent_run_id,
                RUN_NAME_TAG: f"trial-{trial.number}",
                "mlf.role": "trial",
                "mlf.study": self.study.study_name,
                "mlf.trial_number": str(trial.number),
                "mlf.trial_state": state,
            },
        )
        self._write_trial(run.info.run_id, trial, status)
        return run.info.run_id

    def _write_trial(self, run_id: str, trial, status: str | None = None) -> None:
        """Log a finished trial's params, metrics and error into ``run_id``, then end it."""
        from mlflow.entities import Metric, Param, RunTag

        state = trial.state.name
        end = _ms(trial.datetime_complete) or int(time.time() * 1000)
        attrs = trial.user_attrs
        metrics = [
            Metric("intermediate_value", float(v), end, int(step))
            for step, v in sorted(trial.intermediate_values.items())
            if math.isfinite(v)
        ]
        for prefix, key in (("val", "val_metrics"), ("train", "train_metrics")):
            for name, value in (attrs.get(key) or {}).items():
                if value is not None and math.isfinite(value):
                    metrics.append(Metric(metric_key(prefix, name), float(value), end, 0))
        if trial.value is not None and math.isfinite(trial.value):
            metrics.append(Metric("objective", float(trial.value), end, 0))
        if "training_time_s" in attrs:
            metrics.append(Metric("training_time_s", float(attrs["training_time_s"]), end, 0))
        config = attrs.get("config") or trial.params
        params = [Param(k, _param_text(v)) for k, v in config.items()]
        tags = []
        if attrs.get("error"):
            tags.append(RunTag("mlf.error", str(attrs["error"])[:5000]))
        for i in range(0, max(len(metrics), len(params), 1), BATCH):
            self.client.log_batch(
                run_id,
                metrics=metrics[i : i + BATCH],
                params=params[i : i + BATCH],
                tags=tags if i == 0 else [],
            )
        self.client.set_terminated(run_id, status or STATUS.get(state, "FAILED"), end)

    def repair_children(self) -> int:
        """Complete what a killed worker left of its trials' child runs: a run left RUNNING
        halfway through logging is finished, a finished trial with no run gets one.

        Only trials whose worker process on this host is gone are touched (a live worker may
        be writing its runs right now). Returns how many trials were repaired.
        """
        from .runner import WORKER_ATTR, _pid_alive

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
            if (run is not None and run.info.status != "RUNNING") or _pid_alive(worker.get("pid")):
                continue
            if run is None:
                self._logged.discard(trial.number)
                self.log_trial(trial)
            else:
                self._write_trial(run.info.run_id, trial)
            repaired += 1
        return repaired

    def flush(self) -> None:
        """Wait until every queued trial is written."""
        self._queue.join()

    @property
    def errors(self) -> list[str]:
        return list(self._errors)

    # ---- the end ---------------------------------------------------------------------------
    def log_unfinished(self, numbers, status: str = "KILLED") -> None:
        """Log the trials ``numbers`` that ended without reaching the callback (an interrupt)."""
        self.flush()
        for trial in self.study.get_trials(deepcopy=False):
            if trial.number not in numbers or trial.number in self._logged:
                continue
            try:
                self.log_trial(trial, status=status)
            except Exception as exc:
                self._errors.append(f"trial {trial.number}: {exc}")

    def log_summary(
        self,
        *,
        best_params: Mapping[str, Any] | None,
        best_value: float | None,
        test_metrics: Mapping[str, float] | None = None,
        train_metrics: Mapping[str, float] | None = None,
        model_dir: Path | None = None,
        counts: Mapping[str, int] | None = None,
        model_panel=None,
        model_requirements: Sequence[str] = (),
    ) -> None:
        """Write the best result (after refit also test metrics and the model) on the parent.

        ``model_dir`` (a saved :class:`~mlforecast_cli.saved_model.SavedModel`) is logged as an
        MLflow pyfunc model (see :meth:`log_model`); ``model_panel`` gives its input example.
        """
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = []
        tags = []
        if best_value is not None and math.isfinite(best_value):
            metrics.append(Metric(metric_key("best_val", self.metric), best_value, now, 0))
        for name, value in (test_metrics or {}).items():
            if math.isfinite(value):
                metrics.append(Metric(metric_key("test", name), value, now, 0))
        for name, value in (train_metrics or {}).items():
            if math.isfinite(value):
                metrics.append(Metric(metric_key("refit_train", name), value, now, 0))
        for name, value in (counts or {}).items():
            metrics.append(Metric(f"n_trials_{name}", float(value), now, 0))
        if best_params is not None:
            tags.append(RunTag("mlf.best_params", json.dumps(best_params, default=str)[:5000]))
            tags.extend(RunTag(f"best.{k}", _param_text(v)) for k, v in best_params.items())
        self.client.log_batch(self.parent_run_id, metrics=metrics, tags=tags)
        if best_params is not None:
            self.client.log_dict(self.parent_run_id, dict(best_params), "best_params.json")
        if model_dir is not None:
            self.log_model(model_dir, panel=model_panel, requirements=model_requirements)

    def log_model(self, model_dir: Path, *, panel=None, requirements: Sequence[str] = ()) -> str:
        """Log a saved model folder as the pyfunc model ``model`` of the parent run, tag the run
        with its URI (``mlf.model_uri``) and return it."""
        from .pyfunc import MODEL_URI_TAG, log_model

        uri = log_model(
            model_dir,
            run_id=self.parent_run_id,
            tracking_uri=self.tracking_uri,
            experiment_id=self.experiment_id,
            panel=panel,
            pip_requirements=requirements,
        )
        self.client.set_tag(self.parent_run_id, MODEL_URI_TAG, uri)
        return uri

    def log_plots(self, folder: Path) -> None:
        """Log the plots in ``folder`` (PNG files, plots.json) under ``plots/`` on the parent."""
        if Path(folder).is_dir() and any(Path(folder).iterdir()):
            self.client.log_artifacts(self.parent_run_id, str(folder), "plots")

    def close(self, status: str | None = "FINISHED") -> None:
        """Flush the queue, stop the thread and end the parent run with ``status`` (once);
        None leaves the parent run as it is (a worker that shares it)."""
        if self.closed:
            return
        self.closed = True
        if self._thread is not None:
            self.flush()
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        if self.parent_run_id and status is not None:
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


_WAL_INSTALLED = False


def use_wal_for_sqlite() -> None:
    """Open SQLite databases in WAL mode with ``synchronous=NORMAL``.

    In its default mode SQLite syncs the disk several times per commit (about 100 ms per
    child run here); WAL commits without a sync and still never corrupts the file, and a
    killed process loses nothing. Applies to every SQLite connection SQLAlchemy opens.
    """
    global _WAL_INSTALLED
    if _WAL_INSTALLED:
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    _WAL_INSTALLED = True


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_PARAM_LENGTH]
