"""The one reader of an experiment's study runs: typed records that `mlf leaderboard`,
`mlf report`, `mlf predict` and `mlf ensemble` share, the experiment a command means, and the
choice of a study by validation (the test window scores, it never chooses)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..search.metrics import DEFAULT_METRIC, metric_label, mlflow_key
from ..trials.optuna_study import TRIAL_STATES
from ..trials.reference import TEST_PREFIX, VAL_PREFIX

SETUP = ("data_fingerprint", "horizon", "cv_windows", "metric")
"""Parameters that make two studies' scores comparable (same data, horizon, windows, metric)."""
STUDY_FILTER = "tags.`mlf.role` = 'study'"


@dataclass(frozen=True)
class StudyRecord:
    """One study's MLflow parent run, as every command reads it."""

    run_id: str
    model: str
    study: str
    metric: str | None
    val: float | None
    """The best validation value of ``metric``: the CV mean of the best trial (an ensemble's
    on windows its weights did not see); None when none was recorded."""
    test_metrics: Mapping[str, float]
    """Test metrics by label (``MAPE``, ``coverage_80``), scored once after the choice."""
    reference_val: Mapping[str, float]
    reference_test: Mapping[str, float]
    """The seasonal naive's metrics on this study's split, by label."""
    data: str
    data_fingerprint: str
    horizon: int | None
    cv_windows: int
    counts: Mapping[str, int] | None
    """Complete, pruned and failed trials (None: an ensemble, which runs no trials)."""
    start_time: int
    status: str
    model_uri: str | None
    """The refit model logged on the run (None: the refit failed or has not run)."""
    best_params: Mapping[str, Any]
    params: Mapping[str, str]

    def test(self, metric: str | None = None) -> float | None:
        """The test value of ``metric`` (default: the study's own)."""
        return self.test_metrics.get(metric_label(metric or self.metric or DEFAULT_METRIC))

    @property
    def setup(self) -> tuple[str | None, ...]:
        """What two studies must share to be compared or combined (:data:`SETUP`)."""
        return tuple(self.params.get(k) for k in SETUP)


def study_record(run) -> StudyRecord:
    """The record of an MLflow study run (``mlflow.entities.Run``)."""
    import json

    from ..forecasting.pyfunc import MODEL_URI_TAG
    from .parent_run import count_key

    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    metric = params.get("metric")
    counted = any(count_key(k) in metrics for k in TRIAL_STATES)
    try:
        best = json.loads(tags.get("mlf.best_params") or "{}")
    except ValueError:
        best = {}
    horizon = params.get("horizon")
    return StudyRecord(
        run_id=run.info.run_id,
        model=params.get("model", "?"),
        study=tags.get("mlf.study") or params.get("study_name") or run.info.run_name,
        metric=metric,
        val=metrics.get(mlflow_key("best_val", metric)) if metric else None,
        test_metrics=_prefixed(metrics, "test_"),
        reference_val=_prefixed(metrics, f"{VAL_PREFIX}_"),
        reference_test=_prefixed(metrics, f"{TEST_PREFIX}_"),
        data=params.get("data", ""),
        data_fingerprint=params.get("data_fingerprint", ""),
        horizon=int(horizon) if horizon and horizon.isdigit() else None,
        cv_windows=int(params.get("cv_windows") or 1),
        counts={k: int(metrics.get(count_key(k), 0)) for k in TRIAL_STATES} if counted else None,
        start_time=int(run.info.start_time or 0),
        status=run.info.status,
        model_uri=tags.get(MODEL_URI_TAG),
        best_params=best if isinstance(best, dict) else {},
        params=dict(params),
    )


def _prefixed(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}


def read_study_runs(tracking_uri: str, experiment: str) -> list[StudyRecord]:
    """Every study run of ``experiment``, newest first (one MLflow query)."""
    from mlflow.tracking import MlflowClient

    from .parent_run import experiment_id

    client = MlflowClient(tracking_uri)
    runs = client.search_runs(
        [experiment_id(client, experiment, tracking_uri)],
        filter_string=STUDY_FILTER,
        max_results=5000,
        order_by=["attributes.start_time DESC"],
    )
    return [study_record(run) for run in runs]


def resolve_experiment(tracking_uri: str, experiment: str | None) -> tuple[str, str]:
    """The experiment a command means, and a line saying how it was found ("" when named).

    None: the only experiment of the store that holds studies, or, of several, the one whose
    study ran last (the one the user just ran); the line names the others."""
    if experiment is not None:
        return experiment, ""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    newest: list[tuple[int, str]] = []
    for found in client.search_experiments():
        runs = client.search_runs(
            [found.experiment_id],
            filter_string=STUDY_FILTER,
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        if runs:
            newest.append((int(runs[0].info.start_time or 0), found.name))
    if not newest:
        from ..services.storage import redact

        raise UsageError(
            f"no mlf study in any experiment of {redact(tracking_uri)}; run 'mlf optimize' "
            "first, or pass --tracking-uri"
        )
    newest.sort(reverse=True)
    name = newest[0][1]
    if len(newest) == 1:
        return name, f"experiment '{name}' (the only one with studies in this store)"
    others = _few([n for _, n in newest[1:]])
    return name, (
        f"experiment '{name}' (its study ran last; also here: {others}; pass --experiment "
        "for another)"
    )


# --------------------------------------------------------------------------- the choice


def by_validation(records: Iterable[StudyRecord], metric: str) -> list[StudyRecord]:
    """Each model's study with the best validation ``metric``, best first (ties: the newer
    study, then the model's name). The test metric takes no part in the order."""
    best: dict[str, StudyRecord] = {}
    for record in records:
        if record.metric != metric or record.val is None:
            continue
        held = best.get(record.model)
        if held is None or (record.val, -record.start_time) < (held.val, -held.start_time):
            best[record.model] = record
    return sorted(best.values(), key=lambda r: (r.val, -r.start_time, r.model))


def find_study_run(
    tracking_uri: str,
    experiment: str,
    *,
    model: str | None = None,
    study_name: str | None = None,
    run_id: str | None = None,
    metric: str | None = None,
) -> StudyRecord:
    """The study whose refit model to use.

    ``run_id``: that run; ``study_name``: that study's run in ``experiment``; ``model``: its
    study with the best validation metric; nothing: the study with the best validation metric
    of every model (the top of the leaderboard)."""
    if run_id:
        return _by_run_id(tracking_uri, run_id, model)
    records = read_study_runs(tracking_uri, experiment)
    if study_name:
        return _by_study_name(records, experiment, study_name, model)
    with_model = [r for r in records if r.model_uri]
    if model:
        with_model = [r for r in with_model if r.model == model]
        if not with_model:
            models = sorted({r.model for r in records if r.model_uri})
            raise UsageError(
                f"no study of model '{model}' with a refit model in experiment '{experiment}' "
                f"(models there: {_few(models)}); run 'mlf optimize {model}' first, or pass "
                "--experiment"
            )
    elif not with_model:
        raise UsageError(
            f"no study with a refit model in experiment '{experiment}'; run 'mlf optimize' "
            "first, or pass --experiment"
        )
    metric = metric or common_metric(with_model)
    ranked = by_validation(with_model, metric)
    if not ranked:
        raise UsageError(
            f"no study with a validation {metric_label(metric)} among "
            f"{_few(sorted({r.study for r in with_model}))}; pass --metric or --study-name"
        )
    return ranked[0]


def _by_run_id(tracking_uri: str, run_id: str, model: str | None) -> StudyRecord:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        run = MlflowClient(tracking_uri).get_run(run_id)
    except MlflowException:
        raise UsageError(
            f"no MLflow run with id {run_id!r} in {tracking_uri}; copy the run id from "
            "'mlf leaderboard' (or pass --tracking-uri)"
        ) from None
    if run.data.tags.get("mlf.role") != "study":
        raise UsageError(
            f"run {run_id} is not the run of an mlf study (it has no tag mlf.role=study); "
            "pass the run id shown by 'mlf leaderboard'"
        )
    record = study_record(run)
    if model and record.model != model:
        raise UsageError(
            f"run {run_id} is a study of model '{record.model}', not '{model}'; drop MODEL or "
            "--run-id"
        )
    return record


def _by_study_name(
    records: Sequence[StudyRecord], experiment: str, study_name: str, model: str | None
) -> StudyRecord:
    match = [r for r in records if r.study == study_name and (not model or r.model == model)]
    if not match:
        names = sorted({r.study for r in records})
        raise UsageError(
            f"no study named '{study_name}'{f' of model {model!r}' if model else ''} in "
            f"experiment '{experiment}' (studies: {_few(names)}); check --study-name or "
            "--experiment"
        )
    return match[0]


def common_metric(records: Sequence[StudyRecord]) -> str:
    """The metric of the most recent study (records are newest first)."""
    return next((r.metric for r in records if r.metric), DEFAULT_METRIC)


def _few(names: list[str], limit: int = 8) -> str:
    if not names:
        return "none"
    return ", ".join(names[:limit]) + (
        f" and {len(names) - limit} more" if len(names) > limit else ""
    )
