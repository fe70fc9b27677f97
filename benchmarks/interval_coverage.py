"""Interval coverage recomputed from the forecasts an experiment's studies kept.

Each study's parent run holds its validation and test forecasts (``forecasts/*.csv.gz``), so
the conformal intervals of :mod:`mlforecast_cli.intervals` can be rebuilt, and their test
coverage measured, without running a search again: after a change to the method, or to
compare with what a study logged when it ran. The greedy ensemble of the studies (25
rounds, weights on validation) gets a row too. Prints one markdown table per store.

    python benchmarks/interval_coverage.py --tracking-uri sqlite:///runs/mlflow.db
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, table  # noqa: E402


def studies(uri: str) -> tuple[str, dict[str, tuple]]:
    """The metric and ``{model: (validation, test, logged metrics)}`` of every study run with
    kept forecasts (the newest of each model)."""
    from mlflow.tracking import MlflowClient

    from mlforecast_cli.held_out import TEST_ARTIFACT, VALIDATION_ARTIFACT, read_artifact

    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        ids, "tags.`mlf.role` = 'study'", order_by=["attributes.start_time DESC"]
    )
    found: dict[str, tuple] = {}
    for run in runs:
        model = run.data.params.get("model")
        if model in found or model == "ensemble":
            continue
        validation = read_artifact(client, run.info.run_id, VALIDATION_ARTIFACT)
        test = read_artifact(client, run.info.run_id, TEST_ARTIFACT)
        if validation is not None and test is not None:
            found[model] = (validation, test, run.data.metrics)
    metric = runs[0].data.params.get("metric", "mape") if runs else "mape"
    return metric, found


def rows(uri: str) -> list[list[str]]:
    from mlforecast_cli.ensemble import combine, greedy_weights
    from mlforecast_cli.intervals import conformal_scores, interval_metrics

    metric, found = studies(uri)
    if len(found) > 1:
        names = sorted(found)
        choice = greedy_weights([found[m][0] for m in names], metric, 25)
        found["ensemble"] = tuple(
            combine([found[m][k] for m in names], choice.weights) for k in (0, 1)
        ) + ({},)
    out = []
    for model, (validation, test, logged) in sorted(found.items()):
        now = interval_metrics(conformal_scores(validation), test)
        per_step = len(validation) // max(validation.horizon, 1)
        out.append(
            [
                model,
                str(per_step),
                fmt(logged.get("test_coverage_80"), 1),
                fmt(logged.get("test_coverage_95"), 1),
                fmt(logged.get("test_MSIS_95")),
                fmt(now["coverage_80"], 1),
                fmt(now["coverage_95"], 1),
                fmt(now["msis_95"]),
            ]
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", action="append", required=True, help="repeat")
    args = parser.parse_args(argv)
    headers = ["model", "scores / step", "logged 80", "logged 95", "logged MSIS 95"]
    headers += ["cov. 80", "cov. 95", "MSIS 95"]
    for uri in args.tracking_uri:
        print(f"## {uri}\n\n{table(headers, rows(uri), 'lrrrrrrr')}\n")


if __name__ == "__main__":
    main()
