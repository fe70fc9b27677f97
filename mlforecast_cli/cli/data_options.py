"""The data options shared by commands (--dataset or --data with its column mapping)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError

if TYPE_CHECKING:
    from ..data.panel import Panel

EXPERIMENTS = {"walmart": "walmart_sales_forecasting"}
"""Default MLflow experiment of a built-in dataset (the original project's name for Walmart)."""

DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset", metavar="NAME", help="Built-in dataset (see 'mlf datasets'); default walmart."
    ),
]
DataOpt = Annotated[
    Path | None,
    typer.Option("--data", metavar="FILE", help="Your own long-format CSV or Parquet file."),
]
TargetOpt = Annotated[
    str | None, typer.Option("--target", metavar="COLUMN", help="Target column of --data.")
]
TimeOpt = Annotated[
    str | None, typer.Option("--time-col", metavar="COLUMN", help="Time column of --data.")
]
IdOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--id-col", metavar="COLUMN", help="Series id column of --data (repeat for several)."
    ),
]
FeatureOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--feature", metavar="COLUMN", help="Known-in-advance feature column (repeatable)."
    ),
]


FreqOpt = Annotated[
    str | None,
    typer.Option(
        "--freq",
        metavar="ALIAS",
        help="Frequency of --data (pandas alias: W-FRI, MS, D, h); inferred.",
    ),
]


@dataclass
class DataChoice:
    """The panel a command works on and the defaults that come with it."""

    panel: Panel
    name: str
    """Dataset name, or the data file's stem."""
    default_horizon: int | None
    experiment: str
    builtin: bool


def load_data(
    dataset: str | None,
    data: Path | None,
    target: str | None,
    time_col: str | None,
    id_cols: list[str] | None,
    features: list[str] | None,
    freq: str | None = None,
) -> DataChoice:
    """Load the panel named by the command-line options, validated."""
    from ..data.panel import Columns, load_panel
    from ..datasets import get_dataset, load_dataset

    if data is None:
        if target or time_col or id_cols:
            raise UsageError(
                "--target/--time-col/--id-col describe a --data file: add --data PATH, "
                "or drop them to use the built-in dataset"
            )
        name = dataset or "walmart"
        card = get_dataset(name)
        panel = load_dataset(name)
        if features is not None:
            columns = Columns(
                target=card.target,
                time=card.time,
                ids=tuple(card.ids),
                features=tuple(features),
                weight=card.weight,
            )
            panel = _reload_builtin(name, columns)
        experiment = EXPERIMENTS.get(name, f"{name}_forecasting")
        return DataChoice(panel, name, card.horizon, experiment, builtin=True)
    if dataset:
        raise UsageError("--dataset and --data exclude each other: pass only one of them")
    if not target or not time_col:
        missing = " and ".join(
            flag for flag, v in (("--target", target), ("--time-col", time_col)) if not v
        )
        raise UsageError(f"--data {data} needs {missing} to name its columns")
    columns = Columns(
        target=target, time=time_col, ids=tuple(id_cols or ()), features=tuple(features or ())
    )
    panel = load_panel(data, columns, freq=freq, source=str(data))
    return DataChoice(panel, data.stem, None, data.stem, builtin=False)


def _reload_builtin(name: str, columns) -> Panel:
    from ..data.panel import load_panel
    from ..datasets import dataset_path

    with dataset_path(name) as path:
        return load_panel(path, columns, source=name)
