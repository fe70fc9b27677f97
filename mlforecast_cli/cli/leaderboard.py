"""`mlf leaderboard`: the best study of each model in an MLflow experiment, ranked."""

from __future__ import annotations

from ..search.metrics import DEFAULT_METRIC
from ..trials.reference import REFERENCE_HEADER
from .options import ExperimentOpt, JsonTableOpt, RankMetricOpt, TrackingUriOpt, WideOpt
from .output import print_json, print_table, say, with_ratio_text


def leaderboard(
    experiment: ExperimentOpt = None,
    metric: RankMetricOpt = DEFAULT_METRIC,
    tracking_uri: TrackingUriOpt = None,
    json_output: JsonTableOpt = False,
    wide: WideOpt = False,
) -> None:
    """Rank an experiment's models by validation: each one's best study, with its test score."""
    import mlflow

    from ..search.metrics import check_metric, metric_label
    from ..tracking.leaderboard import experiment_rows, ranking_note
    from ..tracking.study_runs import resolve_experiment

    check_metric(metric)
    uri = tracking_uri or mlflow.get_tracking_uri()
    experiment, found = resolve_experiment(uri, experiment)
    rows = experiment_rows(experiment, metric, uri, reference=True)
    if json_output:
        print_json({"experiment": experiment, "metric": metric, "models": rows})
        return
    if found:
        say(found)
    label = metric_label(metric)
    print_table(
        [with_ratio_text(row) for row in rows],
        ["rank", "model", "val", "test", "vs_reference", "trials", "study", "run_id"],
        headers={
            "val": f"best val {label}",
            "test": f"test {label}",
            "vs_reference": REFERENCE_HEADER,
        },
        title=f"Leaderboard: {experiment}",
        wrap=("model",),
        optional=("study", "run_id"),
        wide=wide,
    )
    say(ranking_note(metric))
