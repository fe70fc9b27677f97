"""The reference every study records: the seasonal naive's validation and test metrics on the
study's own split, so that any leaderboard shows it and each model's ratio to it, whether or
not the seasonal naive was searched. One forecast per series and window: cheap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from ..data.panel import Panel
    from ..data.split import Split

VAL_PREFIX = "reference_val"
TEST_PREFIX = "reference_test"
"""Prefixes of the reference's metrics on a study's parent run (``reference_test_MAPE``)."""
REFERENCE_HEADER = "vs ref"
"""The column of a model's test metric divided by the reference's (below 1: it beats it)."""


@dataclass(frozen=True)
class ReferenceScores:
    """The seasonal naive's metrics on one split: validation (mean over the CV folds) and test."""

    val_metrics: dict[str, float]
    test_metrics: dict[str, float]


def reference_scores(panel: Panel, split: Split) -> ReferenceScores:
    """The seasonal naive scored as a study of it would be: on each validation fold of
    ``split`` and on its test window."""
    from .scoring import mean_metrics

    horizon = split.horizon
    val = [_scored(panel, fold.train_end, horizon) for fold in split.folds]
    return ReferenceScores(mean_metrics(val), _scored(panel, split.test_start, horizon))


def _scored(panel: Panel, end: np.ndarray, horizon: int) -> dict[str, float]:
    from ..data.windows import make_windows
    from ..models.baseline import seasonal_naive
    from .scoring import score

    windows = make_windows(panel, end, 1, horizon, mode="eval", scaler="none")
    return score(panel, windows, seasonal_naive(windows), end)[1]
