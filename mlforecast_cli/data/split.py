"""Split a panel by time: train | validation (rolling folds) | test, per series."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
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
    lengths: np.ndarray
    """(n_series,) points per series: the whole history, where a final refit ends."""

    @property
    def median_history(self) -> float:
        """The median series' points before its first (oldest) validation window."""
        return float(np.median(self.folds[0].train_end))

    @property
    def most_windows(self) -> int:
        """The most rolling windows the longest series holds before test (at least 1), with
        the least training a window model needs (``horizon + 1`` points)."""
        return max(1, (int(self.lengths.max()) - self.horizon - 1) // self.horizon - 1)

    def earlier_folds(self, windows: int) -> tuple[Fold, ...]:
        """The folds of a split with ``windows`` validation windows that come before this one's
        (oldest first); none when ``windows`` is not more than this split has."""
        extra = windows - len(self.folds)
        h, n = self.horizon, windows + 1
        return tuple(
            Fold(train_end=np.maximum(self.lengths - (n - k) * h, 0), horizon=h)
            for k in range(max(extra, 0))
        )


def split_panel(
    panel: Panel, horizon: int, cv_windows: int = 1, min_train: int | None = None
) -> Split:
    """Split each series: test = last ``horizon`` steps, ``cv_windows`` validation windows of
    ``horizon`` steps before it (oldest first), training = everything before a fold.

    A series too short for a window keeps what it has: its ``train_end`` (or ``test_start``)
    is then 0 where no point precedes that window, and the fit leaves it out of that window's
    score (see :func:`~mlforecast_cli.trials.fit.fit_and_score`). Raises :class:`DataError` when
    the horizon or fold count is below 1, or when no series has ``min_train`` points (default
    ``horizon + 1``: one input step and a horizon of labels, the least one training sample
    needs) before its first validation window.
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
    horizon, cv_windows = int(horizon), int(cv_windows)
    min_train = _least_training(horizon, min_train)
    lengths = panel.lengths
    need = min_train + (cv_windows + 1) * horizon
    if lengths.max() < need:
        s = int(np.argmax(lengths))
        raise DataError(
            f"no series in {panel.source} is long enough: the longest, {panel.id_labels[s]!r}, "
            f"has {int(lengths[s])} time points, but horizon {horizon} with {cv_windows} "
            f"validation window(s) needs at least {need} ({min_train} training + "
            f"{cv_windows + 1} x {horizon}); pass a smaller --horizon or --cv-windows"
        )
    test_start = np.maximum(lengths - horizon, 0)
    folds = tuple(
        Fold(train_end=np.maximum(lengths - (cv_windows + 1 - k) * horizon, 0), horizon=horizon)
        for k in range(cv_windows)
    )
    return Split(horizon=horizon, folds=folds, test_start=test_start, lengths=lengths.copy())


def _least_training(horizon: int, min_train: int | None) -> int:
    """Points a series needs before its first validation window (default ``horizon + 1``)."""
    return max(int(min_train if min_train is not None else horizon + 1), 1)
