"""The refit model of a study as an MLflow ``pyfunc`` model.

The model takes the long table the study was trained on — id columns, time, target, known
features; rows after the last target value of a series (target empty) give the features of
the future steps — and returns the forecast: id columns, time, ``forecast``. It wraps the
core's windowing and scaling and the plugin's model (:class:`SavedModel`) and calls
:func:`~mlforecast_cli.forecasting.forecast.forecast_frame`, as `mlf predict` does.
Predict parameters:
``horizon`` (at most the trained horizon), ``fill_features`` (error, season or zero) and
``level`` (a list of interval levels in percent: ``lo-80``/``hi-80``... columns).

Loading it needs ``mlforecast-cli`` and the model's plugin installed (``--env-manager local``
for ``mlflow models predict``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import numpy as np
import pandas as pd  # MLflow reads the type hints of predict at runtime

from ..services.mlflow_store import quiet_mlflow

if TYPE_CHECKING:
    from ..data.panel import Panel
    from .saved_model import SavedModel

ARTIFACT = "mlf_model"
"""Key (and folder) of the :class:`SavedModel` inside the MLflow model's artifacts."""
MODEL_NAME = "model"
"""Name of the logged model, so ``runs:/<parent run id>/model`` finds it."""
MODEL_URI_TAG = "mlf.model_uri"
"""Tag on the study's parent run holding the logged model's URI (``models:/<id>``)."""


def level_param():
    """The ``level`` predict parameter: interval levels in percent, none by default."""
    from mlflow.types.schema import ParamSpec

    return ParamSpec("level", "double", [], (-1,))


class MlfForecastModel(mlflow.pyfunc.PythonModel):
    """A refit mlf model: long-format history in, forecast frame out."""

    def load_context(self, context) -> None:
        from .saved_model import SavedModel

        self.saved = SavedModel.load(context.artifacts[ARTIFACT])

    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from .forecast import forecast_frame

        params = params or {}
        horizon = params.get("horizon")
        level = params.get("level")
        return forecast_frame(
            self.saved,
            model_input,
            horizon=None if horizon is None else int(horizon),
            fill_features=str(params.get("fill_features") or "error"),
            source="the model input",
            levels=[] if level is None else list(np.atleast_1d(level)),
        )


def input_example(saved: SavedModel, panel: Panel, max_series: int = 3) -> pd.DataFrame:
    """A small valid input: the last steps of a few series, enough for one forecast."""
    from ..data.panel import load_panel
    from ..data.windows import seasonal_lags

    frame = panel.to_frame()
    c = panel.columns
    keep = max(saved.window_size, int(seasonal_lags(saved.horizon, panel.season_length).max()))
    keep = max(keep, 2) if saved.input != "series" else int(panel.lengths.max())
    parts = []
    lengths = panel.lengths
    starts = lengths.cumsum() - lengths
    for s in range(min(max_series, panel.n_series)):
        end = int(starts[s] + lengths[s])
        parts.append(frame.iloc[max(int(starts[s]), end - keep) : end])
    example = pd.concat(parts, ignore_index=True)
    if c.weight is not None and c.weight not in c.features:
        example = example.drop(columns=[c.weight])
    load_panel(example, c, freq=panel.freq, source="the input example")  # valid, or fail now
    return example


def signature_for(saved: SavedModel, example: pd.DataFrame):
    """The model signature: the example's columns in, (ids, time, forecast) out, params.

    The time column and boolean features accept any type: CSV and JSON inputs carry dates
    as text, and a boolean column with a missing value arrives as objects; the model parses
    both itself.
    """
    from mlflow.models import infer_signature
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, Schema

    from .forecast import forecast_frame

    output = forecast_frame(saved, example, fill_features="zero", source="the input example")
    signature = infer_signature(
        example, output, params={"horizon": int(saved.horizon), "fill_features": "error"}
    )
    signature.params = ParamSchema([*signature.params.params, level_param()])
    loose = {saved.columns["time"]}
    loose |= {c for c in example.columns if pd.api.types.is_bool_dtype(example[c])}
    signature.inputs = Schema(
        [
            ColSpec(AnyType(), col.name) if col.name in loose else col
            for col in signature.inputs.inputs
        ]
    )
    return signature


def requirements(extra: Sequence[str] = ()) -> list[str]:
    """Pinned pip requirements of the model: mlf, mlflow, numpy, pandas and the installed
    distributions named in ``extra`` (others are left out)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("mlforecast-cli", "mlflow", "numpy", "pandas", "cloudpickle", *extra):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:  # an import name that is not a distribution's
            continue
    return list(dict.fromkeys(out))


@contextlib.contextmanager
def _pinned_here() -> Iterator[None]:
    """MLflow's check of a model's requirements against this environment skipped for a
    moment, where logging the model runs it (when it writes the requirements, and when it
    loads the model back to try the input example): it scans every installed distribution
    (half a second on a quiet machine), and :func:`requirements` pinned them from this very
    environment, so it could only agree. A later MLflow without these names pays the check."""
    import mlflow.pyfunc
    from mlflow.utils import environment

    name = "warn_dependency_requirement_mismatches"
    holders = [m for m in (environment, mlflow.pyfunc) if hasattr(m, name)]
    saved = [getattr(m, name) for m in holders]
    for module in holders:
        setattr(module, name, lambda requirements: None)
    try:
        yield
    finally:
        for module, check in zip(holders, saved, strict=True):
            setattr(module, name, check)


@contextlib.contextmanager
def _logging_to(uri: str | None, experiment_id: str | None) -> Iterator[None]:
    """MLflow's fluent API pointed at ``uri`` and ``experiment_id`` for a moment (the
    experiment saves MLflow from probing for Databricks notebooks to find one); the global
    tracking URI and the environment are restored exactly afterwards."""
    import os

    import mlflow
    from mlflow.tracking._tracking_service import utils

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")}
    switch = uri is not None and uri != mlflow.get_tracking_uri()
    before = getattr(utils, "_tracking_uri", None)
    if switch:
        mlflow.set_tracking_uri(uri)
    if experiment_id is not None:
        os.environ["MLFLOW_EXPERIMENT_ID"] = str(experiment_id)
    try:
        yield
    finally:
        if switch:
            mlflow.set_tracking_uri(before)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class RunTarget:
    """The MLflow run a model is logged to, and where it lives."""

    run_id: str
    tracking_uri: str | None = None
    experiment_id: str | None = None
    """Saves MLflow probing for the run's experiment (Databricks notebooks) to find it."""


def log_model(
    model_dir: str | Path,
    target: RunTarget,
    *,
    panel: Panel | None = None,
    pip_requirements: Sequence[str] = (),
    signature=None,
) -> str:
    """Log the saved model folder as an MLflow pyfunc model of ``target``'s run; returns its
    URI.

    The model is a logged model named ``model`` whose source run is ``target.run_id`` (so
    ``runs:/<run_id>/model`` and the returned ``models:/<model_id>`` both load it). With
    the training ``panel`` it gets an input example (its last steps) and a signature; else
    ``signature`` if given (an ensemble takes its members').
    """
    from mlflow.models import Model

    from .saved_model import SavedModel

    saved = SavedModel.load(model_dir)
    example = input_example(saved, panel) if panel is not None else None
    with _logging_to(target.tracking_uri, target.experiment_id), quiet_mlflow(), _pinned_here():
        if example is not None:
            signature = signature_for(saved, example)
        info = Model.log(
            artifact_path=None,
            name=MODEL_NAME,
            flavor=mlflow.pyfunc,
            run_id=target.run_id,
            python_model=MlfForecastModel(),
            artifacts={ARTIFACT: str(model_dir)},
            signature=signature,
            input_example=example,
            pip_requirements=requirements(pip_requirements),
            tags={"mlf.model": saved.model_name, "mlf.study": saved.study_name},
        )
    return info.model_uri


def load_saved_model(model_uri: str, tracking_uri: str | None = None) -> SavedModel:
    """The :class:`SavedModel` inside a logged mlf pyfunc model (downloaded, not imported
    through pyfunc, so nothing is checked against the current environment)."""
    import tempfile

    import mlflow.artifacts

    from .saved_model import SavedModel

    # MLflow resolves a models:/ URI with the global tracking URI, whatever is passed
    with tempfile.TemporaryDirectory(prefix="mlf-load-") as tmp, quiet_mlflow():
        with _logging_to(tracking_uri, None):
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=model_uri, dst_path=tmp, tracking_uri=tracking_uri
            )
        return SavedModel.load(_artifact_folder(Path(local), model_uri))


def logged_signature(model_uri: str, tracking_uri: str | None = None):
    """The signature of the logged model ``model_uri`` (None if it has none)."""
    from mlflow.models import get_model_info

    with quiet_mlflow(), _logging_to(tracking_uri, None):
        return get_model_info(model_uri).signature


def _artifact_folder(local: Path, model_uri: str) -> Path:
    """Where the :class:`SavedModel` lies inside a downloaded MLflow model folder."""
    from mlflow.models import Model

    try:
        flavor = Model.load(str(local / "MLmodel")).flavors.get("python_function", {})
        relative = flavor["artifacts"][ARTIFACT]["path"]
    except Exception:
        raise FileNotFoundError(
            f"{model_uri} is not an mlf model (no {ARTIFACT} artifact)"
        ) from None
    return local / relative


def describe(saved: SavedModel) -> dict[str, Any]:
    """What a user wants to know about a loaded model, for --json."""
    return {
        "model": saved.model_name,
        "study_name": saved.study_name,
        "horizon": saved.horizon,
        "freq": saved.freq,
        "window_size": saved.window_size,
        "scaler": saved.scaler,
        "params": saved.params,
        "trained_on": saved.trained_on,
        "test_metrics": saved.test_metrics,
    }
