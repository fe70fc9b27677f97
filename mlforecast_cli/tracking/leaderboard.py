"""Leaderboard rows, computed once for every view: `mlf optimize`'s table and --json,
`mlf leaderboard` and `mlf report`. Rows are ranked by the validation metric (the CV mean),
the one `mlf predict` chooses by (:func:`.study_runs.by_validation`); the test metric is shown
beside it and never ranks.

A row is a plain dict; the commands only format it. The reference model's label and the
``✓ ✂ ✗`` trial counts are written here and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..search.metrics import check_metric, metric_label
from ..trials.optuna_study import TRIAL_STATES

if TYPE_CHECKING:
    from .study_runs import StudyRecord

REFERENCE = "seasonal_naive"
"""The model every leaderboard marks as the baseline to beat."""
REFERENCE_NOTE = " (reference)"
TRIALS_LEGEND = "✓ complete, ✂ pruned, ✗ failed"


def ranking_note(metric: str) -> str:
    """The line under every leaderboard that says how it is ranked."""
    label = metric_label(metric)
    return f"ranked by validation {label}, the CV mean; the test window never ranks"


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
    :class:`~mlforecast_cli.optimize.study_run.ModelOutcome`), ranked by validation ``metric``
    (the test metric beside it never ranks), with each
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
    return sorted(rows, key=by_validation)


def by_validation(row: Mapping[str, Any]) -> tuple:
    """The order of a leaderboard: validation metric first; the test metric never ranks."""
    return (row["val"] is None, row["val"] or 0.0, row["model"])


def experiment_rows(
    experiment: str, metric: str, tracking_uri: str | None, *, reference: bool = False
) -> list[dict]:
    """One row per model of an MLflow experiment (:func:`leaderboard_rows` of its studies)."""
    check_metric(metric)
    import mlflow

    from .study_runs import read_study_runs

    uri = tracking_uri or mlflow.get_tracking_uri()
    return leaderboard_rows(read_study_runs(uri, experiment), metric, reference=reference)


def leaderboard_rows(
    records: Sequence[StudyRecord], metric: str, *, reference: bool = False
) -> list[dict]:
    """One row per model: its study with the best validation ``metric``, ranked by it, with
    its test metric beside it and its ratio to the reference.

    ``reference``: when no study of the reference model is there, add its row (no run id)
    from the metrics the top study recorded for it on its split."""
    from .study_runs import by_validation as best_studies

    label = metric_label(metric)
    best = best_studies(records, metric)
    rows = [
        {
            "model": r.model,
            "val": r.val,
            "test": r.test(metric),
            "vs_reference": vs_reference(r.test(metric), r.reference_test.get(label)),
            "trials": trials_text(r.counts) if r.counts is not None else "",  # an ensemble
            "study": r.study,
            "run_id": r.run_id,
            "test_metrics": dict(r.test_metrics),
        }
        for r in best
    ]
    if reference and best and not any(is_reference(r.model) for r in best):
        top = best[0]  # the reference on the top study's split
        test_ref = top.reference_test.get(label)
        if test_ref is not None:
            row = reference_row(top.reference_val.get(label), test_ref)
            rows.append({**row, "run_id": None, "test_metrics": {}})
            rows.sort(key=by_validation)
    naive = next((row for row in rows if is_reference(row["model"]) and row["run_id"]), None)
    for row in rows:
        if row["vs_reference"] is None and naive is not None:  # an older study: no reference kept
            row["vs_reference"] = vs_reference(row["test"], naive["test"])
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    return rows
