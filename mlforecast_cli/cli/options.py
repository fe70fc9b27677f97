"""Typer options that several commands share, defined once."""

from __future__ import annotations

from typing import Annotated

import typer

from .data_options import EXPERIMENTS

DEFAULT_EXPERIMENT = EXPERIMENTS["walmart"]

JsonTableOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI)."),
]
ExperimentOpt = Annotated[str, typer.Option("--experiment", help="MLflow experiment to read.")]
RankMetricOpt = Annotated[str, typer.Option("--metric", help="Metric to rank by.")]
