"""An experiment's ensemble: members from its studies, weights on validation, one test score,
and its own MLflow parent run with a pyfunc model (``mlf ensemble``).

The members are the best study (by validation) of each model among the experiment's studies
that share the newest study's data, horizon, validation windows and metric. Their stored
forecasts (:mod:`.held_out`) are all the selection and the scoring need: the weights are
chosen on the ensemble windows (the validation windows and older ones) when every member kept
the same, the intervals come from the validation windows, the test is scored once. The
ensemble's model holds the members' refit models and forecasts their weighted sum.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..ensembles import DEFAULT_ROUNDS
from ..ensembles.held_out import (
    ENSEMBLE_ARTIFACT,
    TEST_ARTIFACT,
    VALIDATION_ARTIFACT,
    HeldOut,
    read_artifact,
)
from ..errors import MlfError, UsageError
from ..search.metrics import mlflow_key
from ..trials.reference import TEST_PREFIX, VAL_PREFIX

__all__ = ["ENSEMBLE", "EnsembleOutcome", "Member", "build_ensemble"]

ENSEMBLE = "ensemble"
"""The model name of an ensemble's study run (``mlf predict ensemble``)."""
SETUP = ("data_fingerprint", "horizon", "cv_windows", "metric")
"""Parameters the members' studies must share."""


@dataclass
class Member:
    """One member: the best study of a model, its held-out forecasts and its weight."""

    model: str
    study: str
    run: Any
    validation: HeldOut
    test: HeldOut
    windows: HeldOut
    """Forecasts on the ensemble windows (the validation table when it kept no more)."""
    weight: float = 0.0
    val: float = float("nan")
    test_value: float | None = None


@dataclass
class EnsembleOutcome:
    """What `mlf ensemble` made: the members and weights, the scores, where it was logged."""

    study_name: str
    metric: str
    method: str
    members: list[Member]
    val: float
    test_metrics: dict[str, float]
    run_id: str = ""
    model_uri: str = ""
    path: tuple[float, ...] = ()
    warnings: list[str] = field(default_factory=list)
    windows: int = 1
    """How many rolling windows the weights were chosen on."""

    def rows(self) -> list[dict[str, Any]]:
        """One row per member and one for the ensemble, for a table or --json."""
        rows = [
            {
                "model": m.model,
                "weight": round(m.weight, 4),
                "val": m.val,
                "test": m.test_value,
                "study": m.study,
                "run_id": m.run.info.run_id,
            }
            for m in sorted(self.members, key=lambda m: (-m.weight, m.val))
        ]
        rows.append(
            {
                "model": ENSEMBLE,
                "weight": 1.0,
                "val": self.val,
                "test": self.test_metrics.get(self.metric),
                "study": self.study_name,
                "run_id": self.run_id,
            }
        )
        return rows


def build_ensemble(
    tracking_uri: str,
    experiment: str,
    models: Sequence[str] = (),
    *,
    metric: str | None = None,
    method: str = "greedy",
    rounds: int = DEFAULT_ROUNDS,
    top: int = 3,
) -> EnsembleOutcome:
    """Choose the members' weights on validation, score the ensemble once on test and log it
    as a study run with its pyfunc model."""
    from mlflow.tracking import MlflowClient

    from ..ensembles.ensemble import combine, select
    from ..ensembles.intervals import conformal_scores, interval_metrics
    from ..tracking.parent_run import experiment_id

    client = MlflowClient(tracking_uri)
    exp_id = experiment_id(client, experiment, tracking_uri)
    members, warnings = find_members(client, exp_id, experiment, models, metric)
    metric = members[0].run.data.params["metric"]
    check_same_rows(members)
    tables = weighing_tables(members, warnings)
    choice = select(tables, metric, method, rounds=rounds, top=top)
    for member, weight in zip(members, choice.weights, strict=True):
        member.weight = float(weight)
    validation = combine([m.validation for m in members], choice.weights)
    test = combine([m.test for m in members], choice.weights)
    conformal = conformal_scores(validation)
    test_metrics = {**test.metrics(), **interval_metrics(conformal, test)}
    params = members[0].run.data.params
    name = f"{ENSEMBLE}-{params.get('data', 'data')}-h{params['horizon']}-{metric}"
    if int(params.get("cv_windows", 1)) > 1:
        name += f"-cv{params['cv_windows']}"
    outcome = EnsembleOutcome(
        study_name=name,
        metric=metric,
        method=method,
        members=members,
        val=validation.metrics()[metric],
        test_metrics=test_metrics,
        path=choice.path,
        warnings=warnings,
        windows=tables[0].windows,
    )
    log_ensemble(client, exp_id, tracking_uri, outcome, validation, test, conformal)
    return outcome


def find_members(
    client, exp_id: str, experiment: str, models: Sequence[str], metric: str | None
) -> tuple[list[Member], list[str]]:
    """The best study of each model (or of ``models``) sharing the newest study's setup."""
    from ..tracking.study_runs import model_uri

    runs = client.search_runs(
        [exp_id],
        filter_string="tags.`mlf.role` = 'study' and attributes.status = 'FINISHED'",
        max_results=5000,
        order_by=["attributes.start_time DESC"],
    )
    runs = [r for r in runs if model_uri(r) and r.data.params.get("model") != ENSEMBLE]
    if metric is not None:
        runs = [r for r in runs if r.data.params.get("metric") == metric]
    if models:
        runs = [r for r in runs if r.data.params.get("model") in models]
    if not runs:
        what = f"of {', '.join(models)} " if models else ""
        raise UsageError(
            f"no finished study {what}with a refit model in experiment '{experiment}'"
            f"{f' for metric {metric}' if metric else ''}; run 'mlf optimize' first, or pass "
            "--experiment or --tracking-uri"
        )
    setup = [runs[0].data.params.get(k) for k in SETUP]
    runs = [r for r in runs if [r.data.params.get(k) for k in SETUP] == setup]
    best: dict[str, Any] = {}
    key = mlflow_key("best_val", setup[3])
    for run in runs:
        model, value = run.data.params["model"], run.data.metrics.get(key, np.inf)
        if model not in best or value < best[model].data.metrics.get(key, np.inf):
            best[model] = run
    missing = [m for m in models if m not in best]
    if missing:
        raise UsageError(
            f"no study of {', '.join(missing)} shares the data, horizon and validation of the "
            f"newest study in '{experiment}' ({runs[0].data.tags.get('mlf.study')}); run "
            f"'mlf optimize {' '.join(missing)}' with the same data and flags"
        )
    members, warnings = [], []
    for model, run in sorted(best.items()):
        validation = read_artifact(client, run.info.run_id, VALIDATION_ARTIFACT)
        test = read_artifact(client, run.info.run_id, TEST_ARTIFACT)
        windows = read_artifact(client, run.info.run_id, ENSEMBLE_ARTIFACT)
        study = run.data.tags.get("mlf.study", run.info.run_name)
        if validation is None or test is None:
            warnings.append(f"study {study} kept no validation forecasts (an older mlf): left out")
            continue
        members.append(
            Member(
                model,
                study,
                run,
                validation,
                test,
                validation if windows is None else windows,
                val=run.data.metrics.get(key, float("nan")),
                test_value=run.data.metrics.get(mlflow_key("test", setup[3])),
            )
        )
    if len(members) < 2:
        raise UsageError(
            "an ensemble needs at least 2 models with kept validation forecasts in "
            f"'{experiment}', found {len(members)} "
            f"({', '.join(m.model for m in members) or 'none'}); run 'mlf optimize' with more "
            "models"
        )
    return members, warnings


def check_same_rows(members: Sequence[Member]) -> None:
    """Refuse members whose held-out tables do not hold the same (window, series, time) rows."""
    first = members[0]
    for other in members[1:]:
        for what in ("validation", "test"):
            if not same_rows(getattr(first, what), getattr(other, what)):
                raise MlfError(
                    f"the {what} forecasts of studies {first.study} and {other.study} do not "
                    "cover the same series and steps; rerun one of them with 'mlf optimize'"
                )


def weighing_tables(members: Sequence[Member], warnings: list[str]) -> list[HeldOut]:
    """The tables to choose the weights on: the members' ensemble windows when they all hold
    the same rows, else (with a warning) their validation windows."""
    tables = [m.windows for m in members]
    if all(same_rows(tables[0], t) for t in tables[1:]):
        return tables
    counts = ", ".join(f"{m.model} {m.windows.windows}" for m in members)
    warnings.append(
        f"the members kept forecasts on different windows ({counts}): the weights are chosen "
        "on the validation windows only; rerun 'mlf optimize' with the same --ensemble-windows"
    )
    return [m.validation for m in members]


def same_rows(a: HeldOut, b: HeldOut) -> bool:
    """Whether two held-out tables hold the same (window, series, time) rows."""
    return len(a) == len(b) and all(
        np.array_equal(x, y) for x, y in zip(a.keys(), b.keys(), strict=True)
    )


def log_ensemble(client, exp_id, tracking_uri, outcome, validation, test, conformal) -> None:
    """Log the ensemble as a study run: parameters, weights, scores, forecasts, pyfunc model."""
    from mlflow.entities import Metric, Param, RunTag

    from ..ensembles.held_out import log_artifacts
    from ..forecasting.pyfunc import MODEL_URI_TAG, RunTarget, log_model

    first = outcome.members[0].run.data.params
    tags = {"mlf.role": "study", "mlf.study": outcome.study_name, "mlf.model": ENSEMBLE}
    run = client.create_run(exp_id, run_name=outcome.study_name, tags=tags)
    run_id = outcome.run_id = run.info.run_id
    try:
        weights = {m.model: m.weight for m in outcome.members if m.weight > 0}
        params = {k: first.get(k) for k in ("data", "data_fingerprint", "horizon", "cv_windows")}
        params |= {"model": ENSEMBLE, "study_name": outcome.study_name, "metric": outcome.metric}
        params |= {"method": outcome.method, "members": json.dumps(weights)}
        params |= {"ensemble_windows": outcome.windows}
        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_key("best_val", outcome.metric), outcome.val, now, 0)]
        metrics += [
            Metric(mlflow_key("test", k), v, now, 0) for k, v in outcome.test_metrics.items()
        ]
        metrics += [Metric(f"weight_{k}", v, now, 0) for k, v in weights.items()]
        metrics += [  # the reference's scores on the members' split, for the leaderboard
            Metric(k, v, now, 0)
            for k, v in outcome.members[0].run.data.metrics.items()
            if k.startswith((f"{VAL_PREFIX}_", f"{TEST_PREFIX}_"))
        ]
        client.log_batch(
            run_id,
            metrics=metrics,
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.log_dict(run_id, {"weights": weights, "path": list(outcome.path)}, "weights.json")
        log_artifacts(client, run_id, {VALIDATION_ARTIFACT: validation, TEST_ARTIFACT: test})
        with tempfile.TemporaryDirectory(prefix="mlf-ensemble-") as tmp:
            folder = save_ensemble(client, tracking_uri, outcome, conformal, Path(tmp) / "model")
            outcome.model_uri = log_model(
                folder,
                RunTarget(run_id, tracking_uri, exp_id),
                pip_requirements=sorted(
                    {m.run.data.params.get("plugin_distribution") or "" for m in outcome.members}
                    - {"", "None"}
                ),
                signature=member_signature(outcome.members, tracking_uri),
            )
        client.set_tag(run_id, MODEL_URI_TAG, outcome.model_uri)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def save_ensemble(client, tracking_uri: str, outcome: EnsembleOutcome, conformal, folder: Path):
    """The ensemble's :class:`SavedModel`: its members' refit models and weights."""
    from .. import __version__
    from ..forecasting.pyfunc import load_saved_model
    from ..forecasting.saved_model import SavedModel
    from ..tracking.study_runs import model_uri

    members = [
        (m.weight, load_saved_model(model_uri(m.run), tracking_uri))
        for m in outcome.members
        if m.weight > 0
    ]
    first = members[0][1]
    saved = SavedModel(
        model_name=ENSEMBLE,
        plugin="mlforecast-cli",
        plugin_version=__version__,
        params={"method": outcome.method, "weights": {m.model_name: w for w, m in members}},
        task=first.task,
        columns=first.columns,
        freq=first.freq,
        series_ids=first.series_ids,
        window_size=0,
        scaler="none",
        forecaster=None,
        study_name=outcome.study_name,
        data_fingerprint=first.data_fingerprint,
        test_metrics=outcome.test_metrics,
        mlf_version=__version__,
        input=ENSEMBLE,
        conformal=conformal,
        members=members,
    )
    return saved.save(folder)


def member_signature(members: Sequence[Member], tracking_uri: str):
    """The signature of a member's logged model (same inputs and outputs), with the
    ``level`` parameter (a member logged by an older mlf lacks it)."""
    from mlflow.types.schema import ParamSchema

    from ..forecasting.pyfunc import level_param, logged_signature
    from ..tracking.study_runs import model_uri

    for member in members:
        try:
            signature = logged_signature(model_uri(member.run), tracking_uri)
        except Exception:
            continue
        if signature is None:
            continue
        params = list(signature.params.params) if signature.params else []
        if "level" not in [p.name for p in params]:
            signature.params = ParamSchema([*params, level_param()])
        return signature
    return None
