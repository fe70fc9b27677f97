"""`mlf report`: one self-contained HTML page with an experiment's leaderboard and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from ..search.metrics import DEFAULT_METRIC
from .options import ExperimentOpt, RankMetricOpt, TrackingUriOpt
from .output import print_json, say


def report(
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="The HTML file to write (.html).")
    ] = Path("report.html"),
    experiment: ExperimentOpt = None,
    metric: RankMetricOpt = DEFAULT_METRIC,
    tracking_uri: TrackingUriOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print what was written as JSON.")
    ] = False,
) -> None:
    """Write an HTML page with the leaderboard and each model's plots (images inlined)."""
    _check_output(output)
    import mlflow

    from ..search.metrics import check_metric
    from ..tracking.study_runs import resolve_experiment
    from ..views.report import collect, render, write

    check_metric(metric)
    uri = tracking_uri or mlflow.get_tracking_uri()
    experiment, found = resolve_experiment(uri, experiment)
    data = collect(experiment, metric, uri)
    try:
        write(output, render(data))
    except OSError as exc:
        raise UsageError(f"--output {output}: cannot write there ({exc.strerror or exc})") from exc
    plots = sum(len(s.images) for s in data.sections)
    if json_output:
        print_json(
            {
                "output": str(output),
                "experiment": experiment,
                "models": [s.row["model"] for s in data.sections],
                "plots": plots,
            }
        )
        return
    if found:
        say(found)
    say(
        f"wrote {output}: {len(data.sections)} model(s), {plots} plot(s) of experiment "
        f"'{experiment}'"
    )


def _check_output(output: Path) -> None:
    from ..services.files import check_output

    check_output(
        output, (".html", ".htm"), "a report is an HTML page; end the file name with .html"
    )
