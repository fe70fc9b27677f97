"""Typer options that several commands share, defined once."""

from __future__ import annotations

from typing import Annotated

import typer

from ..search.metrics import METRIC_NAMES

METRICS_TEXT = ", ".join(METRIC_NAMES[:-1]) + f" or {METRIC_NAMES[-1]}"
"""The metrics' names as help text reads them."""

JsonTableOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
WideOpt = Annotated[
    bool, typer.Option("--wide", help="Show every column of the table, however wide.")
]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri", metavar="URI", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI)."
    ),
]
ExperimentOpt = Annotated[
    str | None,
    typer.Option(
        "--experiment",
        metavar="NAME",
        help="MLflow experiment to read (default: the store's only one, else the one run last).",
    ),
]
RankMetricOpt = Annotated[
    str, typer.Option("--metric", metavar="NAME", help=f"Metric to rank by: {METRICS_TEXT}.")
]
