"""`mlf report`: one self-contained HTML page with an experiment's leaderboard and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from ..search.metrics import DEFAULT_METRIC
from .options import DEFAULT_EXPERIMENT, RankMetricOpt, TrackingUriOpt
from .output import print_json, say


def report(
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="The HTML file to write (.html).")
    ] = Path("report.html"),
    experiment: Annotated[
        str, typer.Option("--experiment", metavar="NAME", help="MLflow experiment to report on.")
    ] = DEFAULT_EXPERIMENT,
    metric: RankMetricOpt = DEFAULT_METRIC,
    tracking_uri: TrackingUriOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print what was written as JSON.")
    ] = False,
) -> None:
    """Write an HTML page with the leaderboard and each model's plots (images inlined)."""
    _check_output(output)
    from ..views.report import collect, render, write

    data = collect(experiment, metric, tracking_uri)
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
    say(
        f"wrote {output}: {len(data.sections)} model(s), {plots} plot(s) of experiment "
        f"'{experiment}'"
    )


def _check_output(output: Path) -> None:
    from ..services.files import check_output

    check_output(
        output, (".html", ".htm"), "a report is an HTML page; end the file name with .html"
    )
