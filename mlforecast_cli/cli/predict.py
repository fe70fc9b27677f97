"""`mlf predict`: forecast past the end of the data with the refit model of a study."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import MlfError, UsageError, first_line
from .cluster import ClusterOpt, check_cluster, on_cluster
from .data_options import EXPERIMENTS, DataOpt, DatasetOpt
from .options import METRICS_TEXT, TrackingUriOpt
from .output import print_json, print_table, say

if TYPE_CHECKING:
    import pandas as pd

    from ..forecasting.saved_model import SavedModel
    from ..tracking.study_runs import StudyRecord

WRITERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
"""Output file suffixes and the format each one means."""


def predict(
    model: Annotated[
        str | None,
        typer.Argument(
            help="Model whose best study (by validation) forecasts; default: the study with "
            "the best validation metric, the top of 'mlf leaderboard'."
        ),
    ] = None,
    study_name: Annotated[
        str | None,
        typer.Option("--study-name", metavar="NAME", help="Use this study's refit model."),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option("--run-id", metavar="ID", help="Use the model of this study run (MLflow)."),
    ] = None,
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    horizon: Annotated[
        int | None,
        typer.Option(
            "--horizon", min=1, metavar="STEPS", help="Steps to forecast (default: the model's)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Write the forecast to a .csv or .parquet file."
        ),
    ] = None,
    fill_features: Annotated[
        str,
        typer.Option(
            "--fill-features",
            metavar="HOW",
            help="Future feature values the data lacks: error, season (one season back) or zero.",
        ),
    ] = "error",
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            metavar="NAME",
            help=f"Metric whose studies to choose from: {METRICS_TEXT} (default: any).",
        ),
    ] = None,
    level: Annotated[
        list[float] | None,
        typer.Option(
            "--level",
            metavar="PCT",
            help="Add a conformal prediction interval at this level (lo-PCT, hi-PCT); repeat.",
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", metavar="NAME", help="MLflow experiment to look in."),
    ] = None,
    tracking_uri: TrackingUriOpt = None,
    cluster: ClusterOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Forecast HORIZON steps past the end of each series with a study's refit model."""
    from ..ensembles.intervals import check_levels
    from ..forecasting.forecast import FILL_CHOICES

    levels = check_levels(level or ())
    if study_name and run_id:
        raise UsageError("--study-name and --run-id exclude each other: pass only one of them")
    if fill_features not in FILL_CHOICES:
        raise UsageError(
            f"--fill-features {fill_features!r} is not one of {', '.join(FILL_CHOICES)}"
        )
    if dataset and data:
        raise UsageError("--dataset and --data exclude each other: pass only one of them")
    writer = _check_output(output) if output is not None else None
    address = check_cluster(cluster)
    if data is not None and not data.is_file():
        raise UsageError(f"data file not found: {data}; check --data")
    if experiment is None and data is not None:
        experiment = data.stem
    elif experiment is None and dataset is not None:
        experiment = EXPERIMENTS.get(dataset, f"{dataset}_forecasting")

    import mlflow

    from ..tracking.study_runs import find_study_run, resolve_experiment

    uri = tracking_uri or mlflow.get_tracking_uri()
    found = ""
    if run_id is None:
        experiment, found = resolve_experiment(uri, experiment)
    run = find_study_run(
        uri, experiment or "", model=model, study_name=study_name, run_id=run_id, metric=metric
    )
    if found and not json_output:
        say(found)
    saved = _load(run, uri)
    frame, source = _data(run, saved, dataset, data)

    from ..forecasting.forecast import forecast_frame

    models = [saved.model_name, *(member.model_name for _, member in saved.members)]
    with on_cluster(address, models):
        result = forecast_frame(
            saved, frame, horizon=horizon, fill_features=fill_features, source=source, levels=levels
        )
    if output is not None:
        _write(result, output, writer)
    _show(result, frame, saved, run, experiment, source, output, json_output)


def _show(result, frame, saved: SavedModel, run, experiment: str, source: str, output, json_output):
    """Print the forecast (a table), what was written, or the --json document."""
    from ..forecasting.forecast import FORECAST

    ids = list(saved.columns.get("ids") or ())
    n_series = result[ids].drop_duplicates().shape[0] if ids else 1
    steps = len(result) // max(n_series, 1)
    if json_output:
        print_json(
            {
                "model": saved.model_name,
                "study_name": saved.study_name,
                "trained_on": saved.trained_on,
                "run_id": run.run_id,
                "model_uri": run.model_uri,
                "experiment": experiment,
                "data": source,
                "horizon": steps,
                "series": n_series,
                "output": str(output) if output is not None else None,
                "forecast": _records(result, saved),
            }
        )
        return
    if output is not None:
        say(
            f"wrote {len(result)} rows ({n_series} series × {steps} steps) of model "
            f"'{saved.model_name}' (study {saved.study_name}) to {output}"
        )
        return
    shown = _with_known_features(result, frame, saved)
    rows = _records(shown, saved)
    values = [c for c in result.columns if c == FORECAST or c.startswith(("lo-", "hi-"))]
    for row in rows:
        for name in values:
            row[name] = f"{row[name]:,.2f}"
    say(
        f"Forecast of model '{saved.model_name}' (study {saved.study_name}): {n_series} series "
        f"× {steps} steps"
    )
    print_table(rows, list(shown.columns))


def _load(run: StudyRecord, tracking_uri: str) -> SavedModel:
    from ..forecasting.pyfunc import MODEL_NAME, load_saved_model

    uri = run.model_uri or f"runs:/{run.run_id}/{MODEL_NAME}"
    study = run.study
    try:
        return load_saved_model(uri, tracking_uri)
    except (ModuleNotFoundError, AttributeError, ImportError) as exc:
        raise MlfError(
            f"cannot load the model of study '{study}' ({uri}): {type(exc).__name__}: {exc}; "
            "install the plugin (and version) it was trained with, or run 'mlf optimize' again"
        ) from exc
    except Exception as exc:
        first = first_line(exc, type(exc).__name__)
        raise UsageError(
            f"study '{study}' (run {run.run_id}) has no usable refit model ({first}); "
            "its refit may have failed: run 'mlf optimize' again or choose another study"
        ) from exc


# --------------------------------------------------------------------------- data and output


def _data(run: StudyRecord, saved: SavedModel, dataset: str | None, data: Path | None):
    """The table to forecast from: --data, --dataset, else the built-in data of the study
    (with the known future of its features from the dataset's card)."""
    from ..data.tables import read_table
    from ..datasets import dataset_table, get_dataset, list_datasets

    if data is not None:
        return read_table(data), str(data)
    name = dataset or run.data
    if name not in {card.name for card in list_datasets()}:
        raise UsageError(
            f"model '{saved.model_name}' (study {saved.study_name}) was trained on '{name}', not "
            "a built-in dataset: pass the data file with --data (the same columns, with the "
            "latest history)"
        )
    card = get_dataset(name)
    return dataset_table(name), f"dataset {name} ({card.file})"


def _check_output(output: Path) -> str:
    """The writer for ``output``; refuses an unknown suffix or a place that cannot be written."""
    from ..services.files import check_output

    suffix = check_output(
        output,
        tuple(WRITERS),
        f"unknown file type {output.suffix.lower() or '(no extension)'!r}; end the name with "
        ".csv or .parquet",
    )
    if WRITERS[suffix] == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError(
                f"--output {output}: writing Parquet needs pyarrow (pip install pyarrow); or "
                "write .csv"
            ) from None
    return WRITERS[suffix]


def _write(frame: pd.DataFrame, output: Path, writer: str) -> None:
    """Write ``frame`` as CSV or Parquet, all or nothing."""
    from ..services.files import atomic_write

    if writer == "csv":
        atomic_write(output, lambda tmp: frame.to_csv(tmp, index=False))
    else:
        atomic_write(output, lambda tmp: frame.to_parquet(tmp, index=False))


def _with_known_features(result: pd.DataFrame, frame: pd.DataFrame, saved: SavedModel):
    """``result`` with the feature values the data gives at each forecast step (such as
    Walmart's IsHoliday weeks), for the table; blank where --fill-features filled them."""
    import pandas as pd

    from ..forecasting.forecast import FORECAST

    features = [c for c in saved.columns.get("features") or () if c in frame.columns]
    if not features:
        return result
    keys = [*(saved.columns.get("ids") or ()), saved.columns["time"]]
    known = frame.loc[:, [*keys, *features]].copy()
    known[keys[-1]] = pd.to_datetime(known[keys[-1]])
    known = known.drop_duplicates(keys, keep="last")
    shown = result.merge(known, on=keys, how="left")
    return shown[[*keys, *features, *result.columns[result.columns.get_loc(FORECAST) :]]]


def _records(frame: pd.DataFrame, saved: SavedModel) -> list[dict[str, Any]]:
    from ..data.frequency import format_times

    time_col = saved.columns["time"]
    out = frame.copy()
    out[time_col] = format_times(out[time_col], sep="T")
    records = out.to_dict(orient="records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in records]
