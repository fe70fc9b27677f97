"""Choosing an ensemble's weights on the validation forecasts of its members.

Two ways, both on validation only (the test window is scored once, afterwards):
greedy forward selection with replacement (Caruana et al., 2004, "Ensemble selection from
libraries of models"): start empty and, for ``rounds`` rounds, add the member (again, if it
helps most) whose addition gives the best validation metric; the weights are how often each
was added, at the round whose ensemble scored best. And the plain mean of the ``top``
members by their own validation metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from . import DEFAULT_ROUNDS
from .held_out import HeldOut

__all__ = ["METHODS", "Selection", "combine", "greedy_weights", "select", "top_mean_weights"]

METHODS = ("greedy", "mean")
"""``greedy``: Caruana's forward selection with replacement; ``mean``: mean of the top k."""


@dataclass(frozen=True)
class Selection:
    """The chosen weights (one per member, summing to 1) and the validation metric of the
    ensemble after each greedy round (empty for ``mean``)."""

    weights: np.ndarray
    value: float
    path: tuple[float, ...] = ()


def combine(tables: Sequence[HeldOut], weights: np.ndarray) -> HeldOut:
    """The weighted forecast of tables with the same rows (the first table's other columns)."""
    forecast = sum(float(w) * t.forecast for w, t in zip(weights, tables, strict=True) if w > 0)
    return tables[0].with_forecast(forecast)


def greedy_weights(tables: Sequence[HeldOut], metric: str, rounds: int) -> Selection:
    """Caruana's forward selection with replacement over ``rounds`` rounds; the weights are
    those of the round with the best validation metric (the first on ties), so the ensemble
    is never worse on validation than its best member."""
    counts = np.zeros(len(tables))
    total = np.zeros(len(tables[0]))
    path: list[float] = []
    best_counts, best_value = counts.copy(), np.inf
    for r in range(rounds):
        pick, pick_value = 0, np.inf
        for i, table in enumerate(tables):
            candidate = tables[0].with_forecast((total + table.forecast) / (r + 1))
            value = candidate.metrics().get(metric, np.inf)
            if value < pick_value:  # ties: the first
                pick, pick_value = i, value
        counts[pick] += 1
        total += tables[pick].forecast
        path.append(float(pick_value))
        if pick_value < best_value:
            best_counts, best_value = counts.copy(), pick_value
    return Selection(best_counts / best_counts.sum(), float(best_value), tuple(path))


def top_mean_weights(tables: Sequence[HeldOut], metric: str, top: int) -> Selection:
    """Equal weights on the ``top`` members with the best validation metric."""
    own = [t.metrics().get(metric, np.inf) for t in tables]
    chosen = np.argsort(own, kind="stable")[: max(1, min(top, len(tables)))]
    weights = np.zeros(len(tables))
    weights[chosen] = 1.0 / len(chosen)
    return Selection(weights, combine(tables, weights).metrics().get(metric, np.inf))


def select(
    tables: Sequence[HeldOut],
    metric: str,
    method: str = "greedy",
    *,
    rounds: int = DEFAULT_ROUNDS,
    top: int = 3,
) -> Selection:
    """The ensemble's weights by ``method`` (see :data:`METHODS`)."""
    if method not in METHODS:
        raise UsageError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    if rounds < 1 or top < 1:
        raise UsageError(f"--rounds and --top must be >= 1, got {rounds} and {top}")
    if method == "greedy":
        return greedy_weights(tables, metric, rounds)
    return top_mean_weights(tables, metric, top)
