"""Interval coverage recomputed from the forecasts an experiment's studies kept.

Each study's parent run holds its validation and test forecasts (``forecasts/*.csv.gz``), so
the conformal intervals of :mod:`mlforecast_cli.ensembles.intervals` can be rebuilt, and their test
coverage measured, without running a search again: after a change to the method, or to
compare with what a study logged when it ran. The greedy ensemble of the studies (25
rounds, weights on validation) gets a row too. Prints one markdown table per store.

With ``--data FILE`` (columns id, date, value, as the M1 and M4 files), it also compares
other scales for the scores than the series' in-sample seasonal-naive MAE: the same over
the last season before the window, the one-step naive MAE (all, or the last season), and
the mean level, and mlf's scale kept as of the first validation window for the test window
too. Each scale's cells are the test coverage at 80 and 95 % and MSIS at 95 % (divided by
mlf's scale in every row, so comparable: lower is better). ``val spread`` is the standard
deviation over series of the log of a series' mean validation score: the smaller, the more
alike the series' scores, which a pooled quantile assumes; it is measured on validation only.

With ``--backtest``, the intervals are also scored without the test window: each study's kept
ensemble windows (``--ensemble-windows``), calibrated on one and scored on the next. Three
columns: mlf's equal-tailed intervals, symmetric ones (``forecast ± the L-quantile of the
absolute residuals``, mlf's before), and symmetric ones with the calibration window's scale
kept for the next window ("fixed"); then the percent of points below and above the 80 %
intervals, equal-tailed and symmetric. The last row of each model, "val → test", is the
validation window scored on the test, for reference: it is not part of the backtest.

    python benchmarks/interval_coverage.py --tracking-uri sqlite:///runs/mlflow.db
    python benchmarks/interval_coverage.py --tracking-uri sqlite:///m1/mlflow.db \
        --data ../shared/datasets/m1_monthly.csv --backtest
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, table  # noqa: E402

LEVELS = (80.0, 95.0)
BACKTEST_COLUMNS = ("equal-tailed (mlf)", "symmetric", "symmetric, fixed scale")


def _newest_studies(client):
    """``(model, run)`` of the newest study run of each model (ensembles left out)."""
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        ids, "tags.`mlf.role` = 'study'", order_by=["attributes.start_time DESC"]
    )
    seen = set()
    for run in runs:
        model = run.data.params.get("model")
        if model not in seen and model != "ensemble":
            seen.add(model)
            yield model, run


def studies(uri: str) -> tuple[str, dict[str, tuple]]:
    """The metric and ``{model: (validation, test, logged metrics)}`` of every study run with
    kept forecasts (the newest of each model)."""
    from mlflow.tracking import MlflowClient

    from mlforecast_cli.ensembles.held_out import TEST_ARTIFACT, VALIDATION_ARTIFACT, read_artifact

    client = MlflowClient(uri)
    found: dict[str, tuple] = {}
    metric = "mape"
    for model, run in _newest_studies(client):
        metric = run.data.params.get("metric", metric)
        validation = read_artifact(client, run.info.run_id, VALIDATION_ARTIFACT)
        test = read_artifact(client, run.info.run_id, TEST_ARTIFACT)
        if validation is not None and test is not None:
            found[model] = (validation, test, run.data.metrics)
    return metric, found


def backtest_rows(uri: str) -> list[list[str]]:
    """Each study's kept ensemble windows, calibrated on one and scored on the next (all before
    the test window), then the validation window scored on the test ("val → test"): the cells
    of :func:`pair_cells` for each pair."""
    import numpy as np
    from mlflow.tracking import MlflowClient

    from mlforecast_cli.ensembles.held_out import ENSEMBLE_ARTIFACT, TEST_ARTIFACT, read_artifact

    client = MlflowClient(uri)
    out = []
    for model, run in sorted(_newest_studies(client), key=lambda pair: pair[0]):
        kept = read_artifact(client, run.info.run_id, ENSEMBLE_ARTIFACT)
        if kept is None:
            continue
        test = read_artifact(client, run.info.run_id, TEST_ARTIFACT)
        windows = sorted(np.unique(kept.window))
        pairs = [
            (f"{a} → {b}", *(kept.take(kept.window == w) for w in (a, b)))
            for a, b in zip(windows, windows[1:], strict=False)
        ]
        if test is not None:
            pairs.append(("val → test", kept.take(kept.window == windows[-1]), test))
        out += [[model, label, *pair_cells(cal, target)] for label, cal, target in pairs]
    return out


def pair_cells(cal, target) -> list[str]:
    """Coverage at 80 / 95 % and MSIS at 95 % on ``target`` of mlf's equal-tailed intervals
    calibrated on ``cal``, of symmetric ones, and of symmetric ones with ``cal``'s scale kept
    ("fixed"); then the percent of points below and above the 80 % intervals, equal-tailed
    and symmetric."""
    import numpy as np

    from mlforecast_cli.ensembles.intervals import conformal_scores
    from mlforecast_cli.search.metrics import evaluate_intervals

    h = target.horizon
    scores = conformal_scores(cal)
    fixed = dict(zip(cal.id, cal.scale, strict=True))
    kept_scale = np.array([fixed.get(i, s) for i, s in zip(target.id, target.scale, strict=True)])
    forecast, actual = target.forecast.reshape(-1, h), target.actual.reshape(-1, h)
    both = symmetric(scores)
    found = [
        scores.bounds(forecast, target.scale[::h], LEVELS),
        both.bounds(forecast, target.scale[::h], LEVELS),
        both.bounds(forecast, kept_scale[::h], LEVELS),
    ]
    cells = []
    for bounds in found:
        got = evaluate_intervals(actual, bounds, target.scale[::h])
        cells.append(f"{got['coverage_80']:.1f} / {got['coverage_95']:.1f} / {got['msis_95']:.2f}")
    for lo, hi in (bounds[80.0] for bounds in found[:2]):
        cells.append(f"{100 * np.mean(actual < lo):.1f} / {100 * np.mean(actual > hi):.1f}")
    return cells


def symmetric(scores):
    """The symmetric intervals of the same residuals: ``forecast ± quantile_L(|residual|)``."""
    import numpy as np

    from mlforecast_cli.ensembles.intervals import ConformalScores

    return ConformalScores(tuple(np.sort(np.abs(s)) for s in scores.scores), signed=False)


def rows(uri: str) -> list[list[str]]:
    from mlforecast_cli.ensembles.ensemble import combine, greedy_weights
    from mlforecast_cli.ensembles.intervals import conformal_scores, interval_metrics

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


SCALES = {
    "seasonal (mlf)": (True, False),
    "seasonal, last season": (True, True),
    "naive": (False, False),
    "naive, last season": (False, True),
    "level": None,
    "seasonal, fixed before the first validation window": "fixed",
}
"""Scale name: (seasonal lag, only the last season's differences); None: the mean |y|;
``"fixed"``: mlf's scale as of the first validation window, for the test window too."""


def scale_of(history, season: int, how) -> float:
    import numpy as np

    from mlforecast_cli.search.metrics import mase_scale

    if how is None:
        return float(np.mean(np.abs(history))) or 1.0
    seasonal, last = how
    lag = season if seasonal else 1
    return float(mase_scale([history[-(season + lag) :] if last else history], lag)[0])


def rescaled(held, panel, how, validation=None):
    """``held`` with each row's scale recomputed on its series' history before its window
    (``how == "fixed"``: each series' scale in ``validation``'s first window)."""
    import dataclasses

    import numpy as np

    if how == "fixed":
        first = validation.window == validation.window.min()
        fixed = dict(zip(validation.id[first], validation.scale[first], strict=True))
        return dataclasses.replace(held, scale=np.array([fixed[i] for i in held.id]))

    index = {label: k for k, label in enumerate(panel.id_labels)}
    scale = np.empty(len(held))
    for w in np.unique(held.window):
        for label in np.unique(held.id[held.window == w]):
            rows = (held.window == w) & (held.id == label)
            s = index[label]
            end = int(np.searchsorted(panel.times[s], held.time[rows].min()))
            scale[rows] = scale_of(panel.y[s][:end], panel.season_length, how)
    return dataclasses.replace(held, scale=scale)


def scale_rows(uri: str, data: Path) -> list[list[str]]:
    import numpy as np

    from mlforecast_cli.data.panel import Columns, load_panel
    from mlforecast_cli.ensembles.intervals import conformal_scores
    from mlforecast_cli.search.metrics import evaluate_intervals

    panel = load_panel(data, Columns(target="value", time="date", ids=("id",)))
    _, found = studies(uri)
    out = []
    for name, how in SCALES.items():
        cells, spread = [], []
        for _, (validation, test, _) in sorted(found.items()):
            val = rescaled(validation, panel, how, validation)
            tst = rescaled(test, panel, how, validation)
            h = tst.horizon
            bounds = conformal_scores(val).bounds(
                tst.forecast.reshape(-1, h), tst.scale.reshape(-1, h)[:, 0], (80.0, 95.0)
            )
            # MSIS divided by mlf's own scale, so that every row's is comparable
            got = evaluate_intervals(test.actual.reshape(-1, h), bounds, test.scale[::h])
            cover = f"{got['coverage_80']:.1f} / {got['coverage_95']:.1f}"
            cells.append(f"{cover} / {got['msis_95']:.2f}")
            score = np.abs(val.actual - val.forecast) / val.scale
            per_series = [score[val.id == i].mean() for i in np.unique(val.id)]
            spread.append(np.std(np.log(np.maximum(per_series, 1e-12))))
        out.append([name, fmt(float(np.mean(spread))), *cells])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", action="append", required=True, help="repeat")
    parser.add_argument("--data", type=Path, help="the studies' file (id, date, value)")
    parser.add_argument(
        "--backtest",
        action="store_true",
        help="also score the interval methods on the ensemble windows",
    )
    args = parser.parse_args(argv)
    headers = ["model", "scores / step", "logged 80", "logged 95", "logged MSIS 95"]
    headers += ["cov. 80", "cov. 95", "MSIS 95"]
    for uri in args.tracking_uri:
        print(f"## {uri}\n\n{table(headers, rows(uri), 'lrrrrrrr')}\n")
        if args.data is not None:
            models = sorted(studies(uri)[1])
            found = scale_rows(uri, args.data)
            heads = ["scale", "val spread", *(f"{m} 80 / 95 / MSIS 95" for m in models)]
            print(f"{table(heads, found, 'lr' + 'r' * len(models))}\n")
        if args.backtest:
            heads = ["model", "windows", *(f"{c} 80 / 95 / MSIS 95" for c in BACKTEST_COLUMNS)]
            heads += [f"{c} 80 % below / above" for c in BACKTEST_COLUMNS[:2]]
            print(f"{table(heads, backtest_rows(uri), 'lrrrrrr')}\n")


if __name__ == "__main__":
    main()
