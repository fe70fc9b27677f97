"""`mlf leaderboard`: the best study of each model in an MLflow experiment, ranked."""

from __future__ import annotations

from ..errors import UsageError
from .options import DEFAULT_EXPERIMENT, ExperimentOpt, JsonTableOpt, RankMetricOpt, TrackingUriOpt
from .output import print_json, print_table


def leaderboard(
    experiment: ExperimentOpt = DEFAULT_EXPERIMENT,
    metric: RankMetricOpt = "mape",
    tracking_uri: TrackingUriOpt = None,
    json_output: JsonTableOpt = False,
) -> None:
    """Rank an experiment's models: each one's best study by validation, with its test score."""
    rows = leaderboard_rows(experiment, metric, tracking_uri)
    if json_output:
        print_json({"experiment": experiment, "metric": metric, "models": rows})
        return
    from ..runner import metric_label

    label = metric_label(metric)
    for row in rows:
        if row["model"] == "seasonal_naive":
            row["model"] += " (reference)"
    print_table(
        rows,
        ["rank", "model", "val", "test", "trials", "study", "run_id"],
        headers={"val": f"best val {label}", "test": f"test {label}"},
        title=f"Leaderboard: {experiment}",
        shrink=("study", "run_id"),
    )


def leaderboard_rows(experiment: str, metric: str, tracking_uri: str | None) -> list[dict]:
    """One row per model: its study with the best validation ``metric``, ranked by test."""
    from ..space import METRIC_NAMES

    if metric not in METRIC_NAMES:
        raise UsageError(f"--metric {metric!r} is not one of {', '.join(METRIC_NAMES)}")
    import mlflow
    from mlflow.tracking import MlflowClient

    from ..runner import metric_label

    uri = tracking_uri or mlflow.get_tracking_uri()
    client = MlflowClient(uri)
    from ..tracking import experiment_id

    found_id = experiment_id(client, experiment, uri)
    label = metric_label(metric)
    runs = client.search_runs(
        [found_id],
        filter_string=f"tags.`mlf.role` = 'study' and params.metric = '{metric}'",
        max_results=5000,
    )
    best: dict[str, dict] = {}
    for run in runs:
        val = run.data.metrics.get(f"best_val_{label}")
        if val is None:
            continue
        model = run.data.params.get("model", "?")
        counts = {
            k: int(run.data.metrics.get(f"n_trials_{k}", 0)) for k in ("complete", "pruned", "fail")
        }
        row = {
            "model": model,
            "val": val,
            "test": run.data.metrics.get(f"test_{label}"),
            "trials": f"{counts['complete']}✓ {counts['pruned']}✂ {counts['fail']}✗",
            "study": run.data.params.get("study_name", run.info.run_name),
            "run_id": run.info.run_id,
            "test_metrics": {
                k[len("test_") :]: v for k, v in run.data.metrics.items() if k.startswith("test_")
            },
        }
        if model not in best or val < best[model]["val"]:
            best[model] = row
    ranked = sorted(best.values(), key=lambda r: (r["test"] is None, r["test"] or 0.0, r["val"]))
    for i, row in enumerate(ranked, 1):
        row["rank"] = i
    return ranked
