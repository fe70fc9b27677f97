"""Forecasts of held-out steps (the validation windows, the test window) as one flat table.

Each study keeps its best trial's validation forecasts and its refit's test forecasts, so an
ensemble (:mod:`.ensemble`) and the conformal intervals (:mod:`.intervals`) need no refit of
the search. A row is one (window, series, step): id, time, window, step, actual, forecast,
and what the metrics need besides (``scale``: the series' in-sample seasonal-naive MAE before
the window; ``weight``: the step's metric weight).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.panel import Panel
from ..search.metrics import evaluate, mase_scale
from ..trials.scoring import FitResult, mean_metrics, row_weights

if TYPE_CHECKING:
    import pandas as pd

    from ..trials.objective import Objective

__all__ = [
    "ENSEMBLE_ARTIFACT",
    "TEST_ARTIFACT",
    "VALIDATION_ARTIFACT",
    "HeldOut",
    "best_validation",
    "ensemble_windows",
    "from_fits",
    "series_scale",
]

VALIDATION_ARTIFACT = "forecasts/validation.csv.gz"
"""Artifact path, on a study's parent run, of its best trial's validation forecasts."""
TEST_ARTIFACT = "forecasts/test.csv.gz"
"""Artifact path, on a study's parent run, of its refit model's test forecasts."""
ENSEMBLE_ARTIFACT = "forecasts/ensemble_windows.csv.gz"
"""Artifact path, on a study's parent run, of its best configuration's forecasts on the
ensemble windows (:func:`ensemble_windows`), when they are more than its validation windows."""
FAST_GZIP = {"method": "gzip", "compresslevel": 1, "mtime": 0}
"""The tables' compression: gzip's fastest level (level 9 took most of their logging time)."""


@dataclass(frozen=True)
class HeldOut:
    """Forecasts of held-out steps in the data's units, one row per (window, series, step),
    sorted by window, series id, time."""

    id: np.ndarray
    time: np.ndarray
    window: np.ndarray
    step: np.ndarray
    actual: np.ndarray
    forecast: np.ndarray
    scale: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.actual)

    @property
    def horizon(self) -> int:
        return int(self.step.max()) + 1 if len(self) else 0

    def with_forecast(self, forecast: np.ndarray) -> HeldOut:
        """The same rows with another forecast (an ensemble's)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["forecast"] = np.asarray(forecast, dtype=np.float64)
        return HeldOut(**values)

    def metrics(self) -> dict[str, float]:
        """Every point metric of the forecast, as a study scores it: the mean over windows."""
        per_window = []
        for w in np.unique(self.window):
            rows = self.window == w
            h = int(self.step[rows].max()) + 1
            per_window.append(
                evaluate(
                    self.actual[rows].reshape(-1, h),
                    self.forecast[rows].reshape(-1, h),
                    scale=self.scale[rows].reshape(-1, h)[:, 0],
                    weights=self.weight[rows].reshape(-1, h),
                )
            )
        return mean_metrics(per_window)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> HeldOut:
        """The table read back (:meth:`to_frame`); rows are put in the canonical order."""
        import pandas as pd

        frame = frame.assign(
            id=frame["id"].astype(str), time=pd.to_datetime(frame["time"])
        ).sort_values(["window", "id", "time"], kind="stable")
        return cls(
            id=frame["id"].to_numpy(dtype=object),
            time=frame["time"].to_numpy(dtype="datetime64[ns]"),
            **{
                name: frame[name].to_numpy(dtype=np.int64 if name in ("window", "step") else float)
                for name in ("window", "step", "actual", "forecast", "scale", "weight")
            },
        )

    def take(self, rows: np.ndarray) -> HeldOut:
        """The rows ``rows`` selects (a boolean mask or indices, in their order)."""
        return HeldOut(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def then(self, newer: HeldOut) -> HeldOut:
        """This table followed by ``newer``'s rows, whose windows are numbered after these."""
        shift = int(self.window.max()) + 1 if len(self) else 0
        parts = {f.name: (getattr(self, f.name), getattr(newer, f.name)) for f in fields(self)}
        parts["window"] = (self.window, newer.window + shift)
        return HeldOut(**{name: np.concatenate(pair) for name, pair in parts.items()})

    @property
    def windows(self) -> int:
        """How many windows the table holds."""
        return len(np.unique(self.window))

    def keys(self) -> Any:
        """What identifies the rows: two tables of the same study setup have equal keys."""
        return (self.window, self.id, self.time)


def series_scale(panel: Panel, end: np.ndarray) -> np.ndarray:
    """(n_series,) in-sample seasonal-naive MAE of each series before ``end`` (MASE's scale)."""
    history = [panel.y[s][: int(end[s])] for s in range(panel.n_series)]
    return mase_scale(history, panel.season_length)


def from_fits(panel: Panel, fits: Sequence[tuple[FitResult, np.ndarray]]) -> HeldOut:
    """The held-out table of scored fits ``(result, end)``, one window each (oldest first)."""
    parts: dict[str, list[np.ndarray]] = {f.name: [] for f in fields(HeldOut)}
    for k, (result, end) in enumerate(fits):
        windows = result.windows
        n, h = result.predictions.shape
        steps = np.arange(h)
        sid = np.repeat(windows.series, h)
        position = (windows.step_offset[:, None] + steps).reshape(-1)
        labels = np.asarray(panel.id_labels, dtype=object)
        weights = row_weights(panel, windows)
        parts["id"].append(labels[sid])
        parts["time"].append(
            np.array(
                [panel.times[s][p] for s, p in zip(sid, position, strict=True)],
                dtype="datetime64[ns]",
            )
        )
        parts["window"].append(np.full(n * h, k, dtype=np.int64))
        parts["step"].append(np.tile(steps, n))
        parts["actual"].append(np.asarray(result.actuals, dtype=float).reshape(-1))
        parts["forecast"].append(np.asarray(result.predictions, dtype=float).reshape(-1))
        parts["scale"].append(series_scale(panel, end)[sid])
        parts["weight"].append(np.ones(n * h) if weights is None else weights.reshape(-1))
    table = HeldOut(**{k: np.concatenate(v) for k, v in parts.items()})
    return table.take(np.lexsort((table.time, table.id.astype(str), table.window)))


def best_validation(objective: Objective, study) -> HeldOut:
    """The validation forecasts of the study's best trial: kept by ``objective`` when this
    process ran it, else fitted again with its configuration on every fold (a resumed study,
    or a best trial that ran in a worker process)."""
    from ..trials.objective import best_folds

    kept = best_folds(objective, study.best_trial.number)
    if kept is not None:
        return from_fits(objective.panel, kept)
    ends = [f.train_end for f in objective.split.folds]
    return from_fits(objective.panel, fit_best(objective, study, ends))


def ensemble_windows(objective: Objective, study, validation: HeldOut) -> HeldOut:
    """The best configuration's forecasts on ``ensemble_windows`` rolling windows, oldest
    first: windows before the search's, fitted once more, then ``validation`` (the search's
    own). `mlf ensemble` weighs its members on them: one window of a small panel is too little
    evidence, and the search chose each member's configuration on it. A panel too short for
    every window gets as many as its longest series allows."""
    split = objective.split
    folds = split.earlier_folds(min(objective.config.ensemble_windows, split.most_windows))
    if not folds:
        return validation
    fits = fit_best(objective, study, [f.train_end for f in folds])
    return from_fits(objective.panel, fits).then(validation)


def fit_best(
    objective: Objective, study, ends: Sequence[np.ndarray]
) -> list[tuple[FitResult, np.ndarray]]:
    """The study's best configuration fitted and scored on the window after each of ``ends``."""
    from ..trials.fit import FitOptions, fit_and_score, task_info

    best = study.best_trial
    params = dict(best.user_attrs.get("config") or best.params)
    entry, panel, config = objective.entry, objective.panel, objective.config
    task = task_info(panel, config.horizon, seed=config.seed, device=config.device, n_jobs=1)
    options = FitOptions(train_metrics=False)
    return [(fit_and_score(entry, params, task, panel, end, options), end) for end in ends]


def read_artifact(client, run_id: str, path: str) -> HeldOut | None:
    """A held-out table logged on ``run_id`` (None when the run has none)."""
    import tempfile

    import pandas as pd

    from ..services.mlflow_store import quiet_mlflow

    with tempfile.TemporaryDirectory(prefix="mlf-held-out-") as tmp, quiet_mlflow():
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except Exception:
            return None
        return HeldOut.from_frame(pd.read_csv(local))


def log_artifacts(client, run_id: str, tables: Mapping[str, HeldOut]) -> None:
    """Log each table at its artifact path (``{path: table}``) on ``run_id``."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="mlf-held-out-") as tmp:
        for path, table in tables.items():
            local = Path(tmp) / path
            local.parent.mkdir(parents=True, exist_ok=True)
            table.to_frame().to_csv(local, index=False, compression=FAST_GZIP)
            client.log_artifact(run_id, str(local), str(Path(path).parent))
