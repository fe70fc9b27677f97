"""`mlf predict`: forecast past the end of the data with the refit model of a study."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import MlfError, UsageError, first_line
from .data_options import EXPERIMENTS, DataOpt, DatasetOpt
from .options import METRICS_TEXT, TrackingUriOpt
from .output import print_json, print_table, say

if TYPE_CHECKING:
    import pandas as pd

    from ..saved_model import SavedModel

WRITERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
"""Output file suffixes and the format each one means."""


def predict(
    model: Annotated[
        str | None,
        typer.Argument(
            help="Model whose best study (by validation) forecasts; default: the "
            "top of 'mlf leaderboard'."
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
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", metavar="NAME", help="MLflow experiment to look in."),
    ] = None,
    tracking_uri: TrackingUriOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Forecast HORIZON steps past the end of each series with a study's refit model."""
    from ..forecast import FILL_CHOICES

    if study_name and run_id:
        raise UsageError("--study-name and --run-id exclude each other: pass only one of them")
    if fill_features not in FILL_CHOICES:
        raise UsageError(
            f"--fill-features {fill_features!r} is not one of {', '.join(FILL_CHOICES)}"
        )
    if dataset and data:
        raise UsageError("--dataset and --data exclude each other: pass only one of them")
    writer = _check_output(output) if output is not None else None
    if data is not None and not data.is_file():
        raise UsageError(f"data file not found: {data}; check --data")
    if experiment is None:
        experiment = (
            data.stem
            if data is not None
            else EXPERIMENTS.get(dataset or "walmart", f"{dataset}_forecasting")
        )

    import mlflow

    uri = tracking_uri or mlflow.get_tracking_uri()
    run = find_study_run(
        uri, experiment, model=model, study_name=study_name, run_id=run_id, metric=metric
    )
    saved = _load(run, uri)
    frame, source = _data(run, saved, dataset, data)

    from ..forecast import FORECAST, forecast_frame

    result = forecast_frame(
        saved, frame, horizon=horizon, fill_features=fill_features, source=source
    )
    if output is not None:
        _write(result, output, writer)
    n_series = result.drop(columns=[saved.columns["time"], FORECAST]).drop_duplicates().shape[0]
    steps = len(result) // max(n_series, 1)
    if json_output:
        print_json(
            {
                "model": saved.model_name,
                "study_name": saved.study_name,
                "run_id": run.info.run_id,
                "model_uri": _model_uri(run),
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
    for row in rows:
        row[FORECAST] = f"{row[FORECAST]:,.2f}"
    say(
        f"Forecast of model '{saved.model_name}' (study {saved.study_name}): {n_series} series "
        f"× {steps} steps"
    )
    print_table(rows, list(shown.columns))


# --------------------------------------------------------------------------- finding the run


def find_study_run(
    tracking_uri: str,
    experiment: str,
    *,
    model: str | None = None,
    study_name: str | None = None,
    run_id: str | None = None,
    metric: str | None = None,
):
    """The parent run of the study whose model to use (an ``mlflow.entities.Run``).

    ``run_id``: that run; ``study_name``: that study's run in ``experiment``; ``model``: its
    study with the best validation metric; nothing: the top of the leaderboard.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if run_id:
        try:
            run = client.get_run(run_id)
        except MlflowException:
            raise UsageError(
                f"no MLflow run with id {run_id!r} in {tracking_uri}; copy the run id from "
                "'mlf leaderboard' (or pass --tracking-uri)"
            ) from None
        if run.data.tags.get("mlf.role") != "study":
            raise UsageError(
                f"run {run_id} is not the run of an mlf study (it has no tag mlf.role=study); "
                "pass the run id shown by 'mlf leaderboard'"
            )
        if model and run.data.params.get("model") != model:
            raise UsageError(
                f"run {run_id} is a study of model '{run.data.params.get('model')}', not "
                f"'{model}'; drop MODEL or --run-id"
            )
        return run
    from ..tracking import experiment_id

    runs = client.search_runs(
        [experiment_id(client, experiment, tracking_uri)],
        filter_string="tags.`mlf.role` = 'study'",
        max_results=5000,
        order_by=["attributes.start_time DESC"],
    )
    if study_name:
        match = [r for r in runs if r.data.tags.get("mlf.study") == study_name]
        if model:
            match = [r for r in match if r.data.params.get("model") == model]
        if not match:
            names = sorted({r.data.tags.get("mlf.study", "?") for r in runs})
            raise UsageError(
                f"no study named '{study_name}'{f' of model {model!r}' if model else ''} in "
                f"experiment '{experiment}' (studies: {_few(names)}); check --study-name or "
                "--experiment"
            )
        return match[0]
    with_model = [r for r in runs if _model_uri(r)]
    if model:
        mine = [r for r in with_model if r.data.params.get("model") == model]
        if not mine:
            models = sorted({r.data.params.get("model", "?") for r in with_model})
            raise UsageError(
                f"no study of model '{model}' with a refit model in experiment '{experiment}' "
                f"(models there: {_few(models)}); run 'mlf optimize {model}' first, or pass "
                "--experiment"
            )
        return _best_by_validation(mine, metric)
    if not with_model:
        raise UsageError(
            f"no study with a refit model in experiment '{experiment}'; run 'mlf optimize' "
            "first, or pass --experiment"
        )
    from .leaderboard import leaderboard_rows

    metric = metric or _common_metric(with_model)
    rows = [r for r in leaderboard_rows(experiment, metric, tracking_uri) if r.get("run_id")]
    ids = {r.info.run_id: r for r in with_model}
    for row in rows:
        if row["run_id"] in ids:
            return ids[row["run_id"]]
    return _best_by_validation(with_model, metric)


def _best_by_validation(runs: list, metric: str | None):
    from ..runner import metric_label

    metric = metric or _common_metric(runs)
    scored = []
    for r in runs:
        if r.data.params.get("metric", metric) != metric:
            continue
        value = r.data.metrics.get(f"best_val_{metric_label(metric)}")
        if value is not None:
            scored.append((value, -r.info.start_time, r))
    if not scored:
        raise UsageError(
            f"no study with a validation {metric_label(metric)} among "
            f"{', '.join(sorted({r.data.tags.get('mlf.study', '?') for r in runs}))}; "
            "pass --metric or --study-name"
        )
    return min(scored, key=lambda item: item[:2])[2]


def _common_metric(runs: list) -> str:
    """The metric of the most recent study (runs are newest first)."""
    for r in runs:
        if r.data.params.get("metric"):
            return r.data.params["metric"]
    return "mape"


def _few(names: list[str], limit: int = 8) -> str:
    if not names:
        return "none"
    return ", ".join(names[:limit]) + (
        f" and {len(names) - limit} more" if len(names) > limit else ""
    )


def _model_uri(run) -> str | None:
    from ..pyfunc import MODEL_URI_TAG

    return run.data.tags.get(MODEL_URI_TAG)


def _load(run, tracking_uri: str) -> SavedModel:
    from ..pyfunc import MODEL_NAME, load_saved_model

    uri = _model_uri(run) or f"runs:/{run.info.run_id}/{MODEL_NAME}"
    study = run.data.tags.get("mlf.study", run.info.run_name)
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
            f"study '{study}' (run {run.info.run_id}) has no usable refit model ({first}); "
            "its refit may have failed: run 'mlf optimize' again or choose another study"
        ) from exc


# --------------------------------------------------------------------------- data and output


def _data(run, saved: SavedModel, dataset: str | None, data: Path | None):
    """The table to forecast from: --data, --dataset, else the built-in data of the study
    (with the known future of its features from the dataset's card)."""
    from ..data import read_table
    from ..datasets import dataset_table, get_dataset, list_datasets

    if data is not None:
        return read_table(data), str(data)
    name = dataset or run.data.params.get("data")
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
    from ..files import check_output

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
    from ..files import atomic_write

    if writer == "csv":
        atomic_write(output, lambda tmp: frame.to_csv(tmp, index=False))
    else:
        atomic_write(output, lambda tmp: frame.to_parquet(tmp, index=False))


def _with_known_features(result: pd.DataFrame, frame: pd.DataFrame, saved: SavedModel):
    """``result`` with the feature values the data gives at each forecast step (such as
    Walmart's IsHoliday weeks), for the table; blank where --fill-features filled them."""
    import pandas as pd

    from ..forecast import FORECAST

    features = [c for c in saved.columns.get("features") or () if c in frame.columns]
    if not features:
        return result
    keys = [*(saved.columns.get("ids") or ()), saved.columns["time"]]
    known = frame.loc[:, [*keys, *features]].copy()
    known[keys[-1]] = pd.to_datetime(known[keys[-1]])
    known = known.drop_duplicates(keys, keep="last")
    shown = result.merge(known, on=keys, how="left")
    return shown[[*keys, *features, FORECAST]]


def _records(frame: pd.DataFrame, saved: SavedModel) -> list[dict[str, Any]]:
    import pandas as pd

    time_col = saved.columns["time"]
    out = frame.copy()
    stamps = pd.DatetimeIndex(out[time_col])
    whole_days = bool((stamps == stamps.normalize()).all())
    out[time_col] = stamps.strftime("%Y-%m-%d" if whole_days else "%Y-%m-%dT%H:%M:%S")
    records = out.to_dict(orient="records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in records]
