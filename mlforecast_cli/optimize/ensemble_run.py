"""An experiment's ensemble: members from its studies, weights on validation, one test score,
and its own MLflow parent run with a pyfunc model (``mlf ensemble``).

The members are the best study (by validation) of each model among the experiment's studies
that share the newest study's data, horizon, validation windows and metric. Their stored
forecasts (:mod:`.held_out`) are all the selection and the scoring need: the weights are
chosen on the ensemble windows (the validation windows and older ones) when every member kept
the same; the ensemble's validation score is cross-fitted (each validation window scored by
weights chosen on the other windows, :func:`cross_fitted`), so it can be ranked with the
members' own; the intervals come from the validation windows, the test is scored once. The
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
from ..tracking.study_runs import StudyRecord
from ..trials.reference import TEST_PREFIX, VAL_PREFIX

__all__ = ["ENSEMBLE", "EnsembleOptions", "EnsembleOutcome", "Member", "build_ensemble"]

ENSEMBLE = "ensemble"
"""The model name of an ensemble's study run (``mlf predict ensemble``)."""


@dataclass(frozen=True)
class EnsembleOptions:
    """How to build an ensemble: of which models (default: every model of the experiment),
    for which metric (default: the newest study's), weighed how."""

    models: tuple[str, ...] = ()
    metric: str | None = None
    method: str = "greedy"
    rounds: int = DEFAULT_ROUNDS
    top: int = 3


@dataclass
class Member:
    """One member: the best study of a model, its held-out forecasts and its weight."""

    record: StudyRecord
    validation: HeldOut
    test: HeldOut
    windows: HeldOut
    """Forecasts on the ensemble windows (the validation table when it kept no more)."""
    weight: float = 0.0

    @property
    def model(self) -> str:
        return self.record.model

    @property
    def study(self) -> str:
        return self.record.study


@dataclass
class EnsembleOutcome:
    """What `mlf ensemble` made: the members and weights, the scores, where it was logged."""

    study_name: str
    metric: str
    method: str
    members: list[Member]
    val: float | None
    """The validation metric on windows the weights did not see (:func:`cross_fitted`);
    None when the members kept a single window."""
    test_metrics: dict[str, float]
    run_id: str = ""
    model_uri: str = ""
    path: tuple[float, ...] = ()
    warnings: list[str] = field(default_factory=list)
    windows: int = 1
    """How many rolling windows the weights were chosen on."""
    in_sample_val: float = float("nan")
    """The validation metric on the windows the weights were chosen on (optimistic)."""

    def rows(self) -> list[dict[str, Any]]:
        """One row per member and one for the ensemble, for a table or --json."""
        rows = [
            {
                "model": m.model,
                "weight": round(m.weight, 4),
                "val": m.record.val,
                "test": m.record.test(self.metric),
                "study": m.study,
                "run_id": m.record.run_id,
            }
            for m in sorted(self.members, key=lambda m: (-m.weight, m.record.val))
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


@dataclass(frozen=True)
class Combined:
    """The ensemble's own held-out forecasts (its members' weighted) and its intervals."""

    validation: HeldOut
    test: HeldOut
    conformal: Any


def build_ensemble(
    tracking_uri: str, experiment: str, options: EnsembleOptions = EnsembleOptions()
) -> EnsembleOutcome:
    """Choose the members' weights on their kept windows, score the ensemble on validation
    windows its weights did not see and once on test, and log it as a study run with its
    pyfunc model."""
    from mlflow.tracking import MlflowClient

    from ..ensembles.ensemble import combine, select
    from ..ensembles.intervals import conformal_scores, interval_metrics
    from ..tracking.parent_run import experiment_id

    client = MlflowClient(tracking_uri)
    exp_id = experiment_id(client, experiment, tracking_uri)
    members, warnings = find_members(client, tracking_uri, experiment, options)
    first = members[0].record
    metric = first.metric or options.metric
    check_same_rows(members)
    chosen, tables = weighing_tables(members, warnings)
    choice = select(tables, metric, options.method, rounds=options.rounds, top=options.top)
    weights = np.zeros(len(members))
    weights[chosen] = choice.weights
    for member, weight in zip(members, weights, strict=True):
        member.weight = float(weight)
    validation = combine([m.validation for m in members], weights)
    test = combine([m.test for m in members], weights)
    conformal = conformal_scores(validation)
    val = cross_fitted(tables, first.cv_windows, metric, options)
    if val is None:
        warnings.append(
            "the members kept one window only, so the ensemble has no validation score its "
            "weights did not see: it is not ranked; rerun 'mlf optimize' with "
            "--ensemble-windows 2 or more"
        )
    name = f"{ENSEMBLE}-{first.data or 'data'}-h{first.horizon}-{metric}"
    if first.cv_windows > 1:
        name += f"-cv{first.cv_windows}"
    outcome = EnsembleOutcome(
        study_name=name,
        metric=metric,
        method=options.method,
        members=members,
        val=val,
        test_metrics={**test.metrics(), **interval_metrics(conformal, test)},
        path=choice.path,
        warnings=warnings,
        windows=tables[0].windows,
        in_sample_val=choice.value,
    )
    log_ensemble(client, exp_id, tracking_uri, outcome, Combined(validation, test, conformal))
    return outcome


def cross_fitted(
    tables: Sequence[HeldOut], cv_windows: int, metric: str, options: EnsembleOptions
) -> float | None:
    """The ensemble's validation metric on windows its weights did not see: for each of the
    newest ``cv_windows`` windows (the members' validation windows), weights chosen on the
    other kept windows score that window; the mean over them, as a study's CV mean. None when
    the tables hold a single window."""
    from ..ensembles.ensemble import combine, select
    from ..trials.scoring import mean_metrics

    windows = np.unique(tables[0].window)
    if len(windows) < 2:
        return None
    scores = []
    for w in windows[-min(cv_windows, len(windows)) :]:
        seen = [t.take(t.window != w) for t in tables]
        weights = select(seen, metric, options.method, rounds=options.rounds, top=options.top)
        scored = combine([t.take(t.window == w) for t in tables], weights.weights)
        scores.append(scored.metrics())
    return float(mean_metrics(scores)[metric])


def find_members(
    client, tracking_uri: str, experiment: str, options: EnsembleOptions
) -> tuple[list[Member], list[str]]:
    """The best study by validation of each model (or of ``options.models``) among the
    finished studies with a refit model that share the newest one's setup."""
    from ..tracking.study_runs import by_validation, read_study_runs

    models, metric = options.models, options.metric
    records = [
        r
        for r in read_study_runs(tracking_uri, experiment)
        if r.status == "FINISHED" and r.model_uri and r.model != ENSEMBLE
        if (metric is None or r.metric == metric) and (not models or r.model in models)
    ]
    if not records:
        what = f"of {', '.join(models)} " if models else ""
        raise UsageError(
            f"no finished study {what}with a refit model in experiment '{experiment}'"
            f"{f' for metric {metric}' if metric else ''}; run 'mlf optimize' first, or pass "
            "--experiment or --tracking-uri"
        )
    newest = records[0]
    best = by_validation([r for r in records if r.setup == newest.setup], newest.metric)
    missing = [m for m in models if m not in {r.model for r in best}]
    if missing:
        raise UsageError(
            f"no study of {', '.join(missing)} shares the data, horizon and validation of the "
            f"newest study in '{experiment}' ({newest.study}); run "
            f"'mlf optimize {' '.join(missing)}' with the same data and flags"
        )
    members, warnings = [], []
    for record in sorted(best, key=lambda r: r.model):
        validation = read_artifact(client, record.run_id, VALIDATION_ARTIFACT)
        test = read_artifact(client, record.run_id, TEST_ARTIFACT)
        windows = read_artifact(client, record.run_id, ENSEMBLE_ARTIFACT)
        if validation is None or test is None:
            warnings.append(
                f"study {record.study} kept no validation forecasts (an older mlf): left out"
            )
            continue
        members.append(Member(record, validation, test, validation if windows is None else windows))
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


def weighing_tables(
    members: Sequence[Member], warnings: list[str]
) -> tuple[list[int], list[HeldOut]]:
    """Which members the weights are chosen among (their indices; the others weigh 0) and the
    tables to choose them on: every member's ensemble windows when they all hold the same rows;
    else, with a warning, those of the members that kept the most windows when there are at
    least 2 of them, so that the ensemble is still scored on windows its weights did not see
    and ranked with the studies (a member a timed run left with fewer windows is left out);
    else every member's validation windows."""
    tables = [m.windows for m in members]
    if all(same_rows(tables[0], t) for t in tables[1:]):
        return list(range(len(members))), tables
    counts = ", ".join(f"{m.model} {m.windows.windows}" for m in members)
    most = max(m.windows.windows for m in members)
    full = [i for i, m in enumerate(members) if m.windows.windows == most]
    if most > 1 and len(full) >= 2 and all(same_rows(tables[full[0]], tables[i]) for i in full):
        out = ", ".join(m.model for i, m in enumerate(members) if i not in full)
        warnings.append(
            f"the members kept forecasts on different windows ({counts}): the ensemble is "
            f"weighed on the {most} windows of those that kept them all, and leaves out {out}; "
            "rerun 'mlf optimize' with the same --ensemble-windows (and time) to weigh them too"
        )
        return full, [tables[i] for i in full]
    warnings.append(
        f"the members kept forecasts on different windows ({counts}): the weights are chosen "
        "on the validation windows only; rerun 'mlf optimize' with the same --ensemble-windows"
    )
    return list(range(len(members))), [m.validation for m in members]


def same_rows(a: HeldOut, b: HeldOut) -> bool:
    """Whether two held-out tables hold the same (window, series, time) rows."""
    return len(a) == len(b) and all(
        np.array_equal(x, y) for x, y in zip(a.keys(), b.keys(), strict=True)
    )


def log_ensemble(
    client, exp_id: str, tracking_uri: str, outcome: EnsembleOutcome, combined: Combined
) -> None:
    """Log the ensemble as a study run: parameters, weights, scores, forecasts, pyfunc model.
    Its ``best_val`` metric is the cross-fitted validation score (none when it has none)."""
    from mlflow.entities import Metric, Param, RunTag

    from ..ensembles.held_out import log_artifacts
    from ..forecasting.pyfunc import MODEL_URI_TAG, RunTarget, log_model

    first = outcome.members[0].record
    tags = {"mlf.role": "study", "mlf.study": outcome.study_name, "mlf.model": ENSEMBLE}
    run = client.create_run(exp_id, run_name=outcome.study_name, tags=tags)
    run_id = outcome.run_id = run.info.run_id
    try:
        weights = {m.model: m.weight for m in outcome.members if m.weight > 0}
        keys = ("data", "data_fingerprint", "horizon", "cv_windows")
        params = {k: first.params.get(k) for k in keys}
        params |= {"model": ENSEMBLE, "study_name": outcome.study_name, "metric": outcome.metric}
        params |= {"method": outcome.method, "members": json.dumps(weights)}
        params |= {"ensemble_windows": outcome.windows}
        now = int(time.time() * 1000)
        metrics = [
            Metric(mlflow_key("weighing_val", outcome.metric), outcome.in_sample_val, now, 0)
        ]
        if outcome.val is not None:
            metrics.append(Metric(mlflow_key("best_val", outcome.metric), outcome.val, now, 0))
        metrics += [
            Metric(mlflow_key("test", k), v, now, 0) for k, v in outcome.test_metrics.items()
        ]
        metrics += [Metric(f"weight_{k}", v, now, 0) for k, v in weights.items()]
        metrics += [  # the reference's scores on the members' split, for the leaderboard
            Metric(f"{prefix}_{name}", v, now, 0)
            for prefix, scores in (
                (VAL_PREFIX, first.reference_val),
                (TEST_PREFIX, first.reference_test),
            )
            for name, v in scores.items()
        ]
        client.log_batch(
            run_id,
            metrics=metrics,
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.log_dict(run_id, {"weights": weights, "path": list(outcome.path)}, "weights.json")
        tables = {VALIDATION_ARTIFACT: combined.validation, TEST_ARTIFACT: combined.test}
        log_artifacts(client, run_id, tables)
        with tempfile.TemporaryDirectory(prefix="mlf-ensemble-") as tmp:
            folder = save_ensemble(tracking_uri, outcome, combined.conformal, Path(tmp) / "model")
            outcome.model_uri = log_model(
                folder,
                RunTarget(run_id, tracking_uri, exp_id),
                pip_requirements=sorted(
                    {m.record.params.get("plugin_distribution") or "" for m in outcome.members}
                    - {"", "None"}
                ),
                signature=member_signature(outcome.members, tracking_uri),
            )
        client.set_tag(run_id, MODEL_URI_TAG, outcome.model_uri)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def save_ensemble(tracking_uri: str, outcome: EnsembleOutcome, conformal, folder: Path):
    """The ensemble's :class:`SavedModel`: its members' refit models and weights."""
    from .. import __version__
    from ..forecasting.pyfunc import load_saved_model
    from ..forecasting.saved_model import SavedModel

    members = [
        (m.weight, load_saved_model(m.record.model_uri, tracking_uri))
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

    for member in members:
        try:
            signature = logged_signature(member.record.model_uri, tracking_uri)
        except Exception:
            continue
        if signature is None:
            continue
        params = list(signature.params.params) if signature.params else []
        if "level" not in [p.name for p in params]:
            signature.params = ParamSchema([*params, level_param()])
        return signature
    return None
