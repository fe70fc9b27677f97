"""Leaderboard rows, computed once for every view: `mlf optimize`'s table and --json,
`mlf leaderboard`, `mlf report` and `mlf predict`'s choice of the best study.

A row is a plain dict; the commands only format it. The reference model's label and the
``✓ ✂ ✗`` trial counts are written here and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..search.metrics import check_metric, mlflow_key
from ..trials.optuna_study import TRIAL_STATES
from ..trials.reference import TEST_PREFIX, VAL_PREFIX

REFERENCE = "seasonal_naive"
"""The model every leaderboard marks as the baseline to beat."""
REFERENCE_NOTE = " (reference)"
TRIALS_LEGEND = "✓ complete, ✂ pruned, ✗ failed"


def is_reference(model: str) -> bool:
    return model == REFERENCE


def model_label(model: str) -> str:
    """``model`` as a table shows it: the reference model is marked."""
    return model + (REFERENCE_NOTE if is_reference(model) else "")


def trials_text(counts: Mapping[str, int], styles: tuple[str, str, str] | None = None) -> str:
    """``12✓ 3✂ 1✗``: complete, pruned and failed trials (each in a Rich style if given)."""
    parts = [f"{int(counts.get(k, 0))}{mark}" for k, mark in zip(TRIAL_STATES, "✓✂✗", strict=True)]
    if styles:
        parts = [f"[{style}]{part}[/]" for style, part in zip(styles, parts, strict=True)]
    return " ".join(parts)


def vs_reference(test: float | None, reference: float | None) -> float | None:
    """A model's test metric divided by the reference's (below 1: it beats the reference)."""
    if test is None or reference is None or not math.isfinite(test) or not reference > 0:
        return None
    return test / reference


def reference_row(val: float | None, test: float | None, **fields: Any) -> dict[str, Any]:
    """The reference's row where it was not searched: its metrics recorded by the studies."""
    row = {"model": REFERENCE, "val": val, "test": test, "trials": "", "study": ""}
    return {**row, **fields, "vs_reference": vs_reference(test, test), "reference": True}


def outcome_rows(outcomes: Iterable[Any], metric: str) -> list[dict[str, Any]]:
    """One row per model of an `mlf optimize` run (its
    :class:`~mlforecast_cli.optimize.study_run.ModelOutcome`), ranked by test ``metric``, with each
    model's ratio to the reference, and the reference's row when it was not searched."""
    outcomes = [o for o in outcomes if o.study_name]
    rows = [
        {
            "model": o.model,
            "val": o.best_value,
            "test": o.test_metrics.get(metric),
            "vs_reference": vs_reference(
                o.test_metrics.get(metric), o.reference and o.reference.test_metrics.get(metric)
            ),
            "trials": trials_text(o.counts),
            "naive": o.naive_fallback,
            "time": f"{o.seconds:.1f}s",
            "study": o.study_name,
        }
        for o in outcomes
    ]
    recorded = next((o.reference for o in outcomes if o.reference is not None), None)
    if recorded is not None and not any(is_reference(o.model) for o in outcomes):
        rows.append(
            reference_row(recorded.val_metrics.get(metric), recorded.test_metrics.get(metric))
        )
    return sorted(rows, key=_by_test)


def _by_test(row: Mapping[str, Any]) -> tuple:
    return (row["test"] is None, row["test"] or 0.0, row["val"] is None, row["val"] or 0.0)


def experiment_rows(
    experiment: str, metric: str, tracking_uri: str | None, *, reference: bool = False
) -> list[dict]:
    """One row per model of an MLflow experiment: its study with the best validation
    ``metric``, ranked by test ``metric`` (then validation), with its ratio to the reference.

    ``reference``: when no study of the reference model is there, add its row (no run id)
    from the metrics the top study recorded for it on its split."""
    check_metric(metric)
    import mlflow
    from mlflow.tracking import MlflowClient

    from .parent_run import count_key, experiment_id

    uri = tracking_uri or mlflow.get_tracking_uri()
    client = MlflowClient(uri)
    found_id = experiment_id(client, experiment, uri)
    runs = client.search_runs(
        [found_id],
        filter_string=f"tags.`mlf.role` = 'study' and params.metric = '{metric}'",
        max_results=5000,
    )
    best: dict[str, dict] = {}
    recorded: dict[str, tuple[float | None, float | None]] = {}
    ref_test = mlflow_key(TEST_PREFIX, metric)
    test_prefix = mlflow_key("test", "")
    for run in runs:
        val = run.data.metrics.get(mlflow_key("best_val", metric))
        if val is None:
            continue
        model = run.data.params.get("model", "?")
        counted = [k for k in TRIAL_STATES if count_key(k) in run.data.metrics]
        counts = {k: int(run.data.metrics.get(count_key(k), 0)) for k in TRIAL_STATES}
        test = run.data.metrics.get(mlflow_key("test", metric))
        row = {
            "model": model,
            "val": val,
            "test": test,
            "vs_reference": vs_reference(test, run.data.metrics.get(ref_test)),
            "trials": trials_text(counts) if counted else "",  # an ensemble runs no trials
            "study": run.data.params.get("study_name", run.info.run_name),
            "run_id": run.info.run_id,
            "test_metrics": {
                k[len(test_prefix) :]: v
                for k, v in run.data.metrics.items()
                if k.startswith(test_prefix)
            },
        }
        if model not in best or val < best[model]["val"]:
            best[model] = row
            recorded[model] = (
                run.data.metrics.get(mlflow_key(VAL_PREFIX, metric)),
                run.data.metrics.get(ref_test),
            )
    ranked = sorted(best.values(), key=_by_test)
    if reference and ranked and REFERENCE not in best:
        val_ref, test_ref = recorded[ranked[0]["model"]]  # on the top study's split
        if test_ref is not None:
            ranked.append(reference_row(val_ref, test_ref, run_id=None, test_metrics={}))
            ranked.sort(key=_by_test)
    naive = best.get(REFERENCE)
    for row in ranked:
        if row["vs_reference"] is None and naive is not None:  # an older study: no reference kept
            row["vs_reference"] = vs_reference(row["test"], naive["test"])
    for i, row in enumerate(ranked, 1):
        row["rank"] = i
    return ranked
