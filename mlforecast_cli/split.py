"""Split a panel by time: train | validation (rolling folds) | test, per series."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DataError
from .panel import Panel

__all__ = ["Fold", "Split", "split_panel"]


@dataclass(frozen=True)
class Fold:
    """One validation fold: per series, validation is ``[train_end, train_end + horizon)``."""

    train_end: np.ndarray
    horizon: int


@dataclass(frozen=True)
class Split:
    """Train | valid (K rolling folds) | test, per series and by time only."""

    horizon: int
    folds: tuple[Fold, ...]
    test_start: np.ndarray

    @property
    def refit_end(self) -> np.ndarray:
        """(n_series,) end of the refit training part (train + valid): where test starts."""
        return self.test_start


def split_panel(panel: Panel, horizon: int, cv_windows: int = 1, min_train: int = 1) -> Split:
    """Split each series: test = last ``horizon`` steps, ``cv_windows`` validation windows of
    ``horizon`` steps before it (oldest first), training = everything before a fold.

    Raises :class:`DataError` when the horizon or fold count is below 1, or when the shortest
    series is shorter than ``min_train + (cv_windows + 1) * horizon``.
    """
    if int(horizon) != horizon or horizon < 1:
        raise DataError(
            f"horizon must be a whole number >= 1, got {horizon!r}; pass e.g. --horizon 13"
        )
    if int(cv_windows) != cv_windows or cv_windows < 1:
        raise DataError(
            f"number of validation windows must be >= 1, got {cv_windows!r}; pass e.g. "
            "--cv-windows 1"
        )
    horizon, cv_windows, min_train = int(horizon), int(cv_windows), max(int(min_train), 1)
    lengths = panel.lengths
    need = min_train + (cv_windows + 1) * horizon
    if lengths.min() < need:
        s = int(np.argmin(lengths))
        raise DataError(
            f"series {panel.id_labels[s]!r} in {panel.source} has {int(lengths[s])} time points, "
            f"but horizon {horizon} with {cv_windows} validation window(s) needs at least {need} "
            f"({min_train} training + {cv_windows + 1} x {horizon}); pass a smaller --horizon or "
            "--cv-windows, or drop short series"
        )
    test_start = lengths - horizon
    folds = tuple(
        Fold(train_end=test_start - (cv_windows - k) * horizon, horizon=horizon)
        for k in range(cv_windows)
    )
    return Split(horizon=horizon, folds=folds, test_start=test_start)
