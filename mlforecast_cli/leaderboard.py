"""Leaderboard rows, computed once for every view: `mlf optimize`'s table and --json,
`mlf leaderboard`, `mlf report` and `mlf predict`'s choice of the best study.

A row is a plain dict; the commands only format it. The reference model's label and the
``✓ ✂ ✗`` trial counts are written here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .metrics import check_metric, mlflow_key
from .study import TRIAL_STATES

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


def outcome_rows(outcomes: Iterable[Any], metric: str) -> list[dict[str, Any]]:
    """One row per model of an `mlf optimize` run (its
    :class:`~mlforecast_cli.pipeline.ModelOutcome`), ranked by test ``metric``."""
    ranked = sorted(
        outcomes, key=lambda o: (o.test_metrics.get(metric) is None, o.test_metrics.get(metric, 0))
    )
    return [
        {
            "model": o.model,
            "val": o.best_value,
            "test": o.test_metrics.get(metric),
            "trials": trials_text(o.counts),
            "naive": o.naive_fallback,
            "time": f"{o.seconds:.1f}s",
            "study": o.study_name,
        }
        for o in ranked
    ]


def experiment_rows(experiment: str, metric: str, tracking_uri: str | None) -> list[dict]:
    """One row per model of an MLflow experiment: its study with the best validation
    ``metric``, ranked by test ``metric`` (then validation)."""
    check_metric(metric)
    import mlflow
    from mlflow.tracking import MlflowClient

    from .tracking import count_key, experiment_id

    uri = tracking_uri or mlflow.get_tracking_uri()
    client = MlflowClient(uri)
    found_id = experiment_id(client, experiment, uri)
    runs = client.search_runs(
        [found_id],
        filter_string=f"tags.`mlf.role` = 'study' and params.metric = '{metric}'",
        max_results=5000,
    )
    best: dict[str, dict] = {}
    test_prefix = mlflow_key("test", "")
    for run in runs:
        val = run.data.metrics.get(mlflow_key("best_val", metric))
        if val is None:
            continue
        model = run.data.params.get("model", "?")
        counts = {k: int(run.data.metrics.get(count_key(k), 0)) for k in TRIAL_STATES}
        row = {
            "model": model,
            "val": val,
            "test": run.data.metrics.get(mlflow_key("test", metric)),
            "trials": trials_text(counts),
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
    ranked = sorted(best.values(), key=lambda r: (r["test"] is None, r["test"] or 0.0, r["val"]))
    for i, row in enumerate(ranked, 1):
        row["rank"] = i
    return ranked
