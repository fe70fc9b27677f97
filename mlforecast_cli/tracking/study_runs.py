"""Finding the MLflow parent run of the study whose refit model to use: by run id, by study
name, a model's best study by validation, or the top of the leaderboard."""

from __future__ import annotations

from ..errors import UsageError
from ..search.metrics import DEFAULT_METRIC, metric_label, mlflow_key
from .leaderboard import experiment_rows


def find_study_run(
    tracking_uri: str,
    experiment: str,
    *,
    model: str | None = None,
    study_name: str | None = None,
    run_id: str | None = None,
    metric: str | None = None,
):
    """The parent run of the study whose model to use (an ``mlflow.entities.Run``).

    ``run_id``: that run; ``study_name``: that study's run in ``experiment``; ``model``: its
    study with the best validation metric; nothing: the top of the leaderboard.
    """
    from mlflow.tracking import MlflowClient

    from .parent_run import experiment_id

    client = MlflowClient(tracking_uri)
    if run_id:
        return _by_run_id(client, tracking_uri, run_id, model)
    runs = client.search_runs(
        [experiment_id(client, experiment, tracking_uri)],
        filter_string="tags.`mlf.role` = 'study'",
        max_results=5000,
        order_by=["attributes.start_time DESC"],
    )
    if study_name:
        return _by_study_name(runs, experiment, study_name, model)
    with_model = [r for r in runs if model_uri(r)]
    if model:
        mine = [r for r in with_model if r.data.params.get("model") == model]
        if not mine:
            models = sorted({r.data.params.get("model", "?") for r in with_model})
            raise UsageError(
                f"no study of model '{model}' with a refit model in experiment '{experiment}' "
                f"(models there: {_few(models)}); run 'mlf optimize {model}' first, or pass "
                "--experiment"
            )
        return _best_by_validation(mine, metric)
    if not with_model:
        raise UsageError(
            f"no study with a refit model in experiment '{experiment}'; run 'mlf optimize' "
            "first, or pass --experiment"
        )
    metric = metric or _common_metric(with_model)
    rows = [r for r in experiment_rows(experiment, metric, tracking_uri) if r.get("run_id")]
    ids = {r.info.run_id: r for r in with_model}
    for row in rows:
        if row["run_id"] in ids:
            return ids[row["run_id"]]
    return _best_by_validation(with_model, metric)


def _by_run_id(client, tracking_uri: str, run_id: str, model: str | None):
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
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
    if model and run.data.params.get("model") != model:
        raise UsageError(
            f"run {run_id} is a study of model '{run.data.params.get('model')}', not "
            f"'{model}'; drop MODEL or --run-id"
        )
    return run


def _by_study_name(runs: list, experiment: str, study_name: str, model: str | None):
    match = [r for r in runs if r.data.tags.get("mlf.study") == study_name]
    if model:
        match = [r for r in match if r.data.params.get("model") == model]
    if not match:
        names = sorted({r.data.tags.get("mlf.study", "?") for r in runs})
        raise UsageError(
            f"no study named '{study_name}'{f' of model {model!r}' if model else ''} in "
            f"experiment '{experiment}' (studies: {_few(names)}); check --study-name or "
            "--experiment"
        )
    return match[0]


def _best_by_validation(runs: list, metric: str | None):
    metric = metric or _common_metric(runs)
    scored = []
    for r in runs:
        if r.data.params.get("metric", metric) != metric:
            continue
        value = r.data.metrics.get(mlflow_key("best_val", metric))
        if value is not None:
            scored.append((value, -r.info.start_time, r))
    if not scored:
        raise UsageError(
            f"no study with a validation {metric_label(metric)} among "
            f"{', '.join(sorted({r.data.tags.get('mlf.study', '?') for r in runs}))}; "
            "pass --metric or --study-name"
        )
    return min(scored, key=lambda item: item[:2])[2]


def _common_metric(runs: list) -> str:
    """The metric of the most recent study (runs are newest first)."""
    for r in runs:
        if r.data.params.get("metric"):
            return r.data.params["metric"]
    return DEFAULT_METRIC


def _few(names: list[str], limit: int = 8) -> str:
    if not names:
        return "none"
    return ", ".join(names[:limit]) + (
        f" and {len(names) - limit} more" if len(names) > limit else ""
    )


def model_uri(run) -> str | None:
    """The URI of the model logged on study run ``run`` (None: it has none)."""
    from ..forecasting.pyfunc import MODEL_URI_TAG

    return run.data.tags.get(MODEL_URI_TAG)
