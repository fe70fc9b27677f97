"""Typer options that several commands share, defined once."""

from __future__ import annotations

from typing import Annotated

import typer

from .data_options import EXPERIMENTS

DEFAULT_EXPERIMENT = EXPERIMENTS["walmart"]
METRICS_TEXT = "mape, smape, mae, rmse, mase, wape or wmae"
"""``space.METRIC_NAMES`` as help text reads them (written out: importing the space module
would load PyYAML for every ``--help``; a test keeps the two equal)."""

JsonTableOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
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
