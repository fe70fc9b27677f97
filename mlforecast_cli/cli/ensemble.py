"""`mlf ensemble`: combine the best study of each model of an experiment, weights chosen on
validation, scored once on test, logged as a study of model ``ensemble``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ..ensembles import DEFAULT_ROUNDS
from .cluster import ClusterOpt, check_cluster, on_cluster
from .options import METRICS_TEXT, ExperimentOpt, TrackingUriOpt
from .output import print_json, print_table, say, warning_line

if TYPE_CHECKING:
    from ..optimize.ensemble_run import EnsembleOutcome


def ensemble(
    models: Annotated[
        list[str] | None,
        typer.Argument(help="Models to combine (default: every model of the experiment)."),
    ] = None,
    experiment: ExperimentOpt = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            metavar="HOW",
            help="greedy (forward selection with replacement) or mean (of the top K).",
        ),
    ] = "greedy",
    rounds: Annotated[
        int, typer.Option("--rounds", min=1, metavar="N", help="Rounds of greedy selection.")
    ] = DEFAULT_ROUNDS,
    top: Annotated[
        int, typer.Option("--top", min=1, metavar="K", help="Members of --method mean.")
    ] = 3,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            metavar="NAME",
            help=f"Metric whose studies to combine: {METRICS_TEXT} (default: the newest's).",
        ),
    ] = None,
    tracking_uri: TrackingUriOpt = None,
    cluster: ClusterOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Combine the best study of each model into one ensemble and log it as model 'ensemble'."""
    from ..ensembles.ensemble import METHODS
    from ..errors import UsageError
    from ..search.metrics import check_metric

    if method not in METHODS:
        raise UsageError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    if metric is not None:
        check_metric(metric)
    address = check_cluster(cluster)
    import mlflow

    from ..optimize.ensemble_run import EnsembleOptions, build_ensemble
    from ..tracking.study_runs import resolve_experiment

    uri = tracking_uri or mlflow.get_tracking_uri()
    experiment, found = resolve_experiment(uri, experiment)
    options = EnsembleOptions(tuple(models or ()), metric, method, rounds, top)
    with on_cluster(address, models or ()):
        outcome = build_ensemble(uri, experiment, options)
    show_outcome(outcome, experiment, method, found, json_output=json_output)


def show_outcome(
    outcome: EnsembleOutcome, experiment: str, method: str, found: str, *, json_output: bool
) -> None:
    """Print what ``mlf ensemble`` built: one JSON document, or the table and its lines."""
    from ..search.metrics import metric_label

    if json_output:
        print_json(
            {
                "experiment": experiment,
                "study_name": outcome.study_name,
                "run_id": outcome.run_id,
                "model_uri": outcome.model_uri,
                "method": method,
                "metric": outcome.metric,
                "val": outcome.val,
                "in_sample_val": outcome.in_sample_val,
                "weight_windows": outcome.windows,
                "test_metrics": outcome.test_metrics,
                "members": outcome.rows()[:-1],
                "warnings": outcome.warnings,
            }
        )
        return
    if found:
        say(found)
    for warning in outcome.warnings:
        warning_line(warning)
    label = metric_label(outcome.metric)
    print_table(
        outcome.rows(),
        ["model", "weight", "val", "test", "study"],
        headers={"val": f"val {label}", "test": f"test {label}"},
        title=f"Ensemble ({method}, weights on {outcome.windows} windows) of {experiment}",
        shrink=("study",),
    )
    say(
        f"the ensemble's val {label}: each validation window scored by weights chosen on the "
        f"other kept windows (on the windows they were chosen on: {outcome.in_sample_val:.4g})"
    )
    say(
        f"logged as study {outcome.study_name} (run {outcome.run_id}); forecast with "
        "'mlf predict ensemble'"
    )
