"""A run's time limit (``--time-limit``) shared among its models and the ensemble.

Optuna's ``timeout`` is per ``optimize`` call and only stops between trials; the run's limit
also has to cover each model's refit, held-out forecasts and logging after its search, and the
ensemble at the end. So each model gets an equal share of what is left when it starts (a model
that ends early leaves more to the next), and its search stops before a trial that would not
leave time for that model's finish, estimated from its own trials' durations.

A model that validates better than every model before it may finish past its share: its
forecasts on the older ensemble windows, without which the ensemble leaves it out, may use
time of the models after it, each of which keeps at least half of an equal share
(:attr:`TimeShare.lead_deadline`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

ENSEMBLE_SHARE = 0.04
"""Part of the limit kept for the ensemble at the end (at least :data:`ENSEMBLE_MIN` s)."""
ENSEMBLE_MIN = 5.0
UNCAPPED_TRIALS = 100_000
"""Trials per model under a time limit when no count is given: the time ends each search."""
FINISH_FIXED = 5.0
"""Seconds of a model's finish that do not grow with its fits: the MLflow model, the plots."""


@dataclass(frozen=True)
class TimeShare:
    """One model's share of the run's time: when its study should end, and the seconds its
    finish spends beyond its fits (MLflow, the reference, saving, plots), as estimated."""

    deadline: float
    """``time.monotonic()`` by which the whole study, finish included, should end."""
    fixed: float = FINISH_FIXED
    lead_deadline: float | None = None
    """By when the finish may end instead if the model validates better than every model
    before it: the run's time left after the ensemble's and half an equal share for each model
    after it."""
    best_before: float | None = None
    """The best validation value of the run's models before this one (None: none yet)."""

    def finish_deadline(self, value: float | None) -> float:
        """By when the finish of a model whose best validation value is ``value`` (lower is
        better; None: not comparable) should end."""
        leads = value is not None and math.isfinite(value)
        leads = leads and (self.best_before is None or value < self.best_before)
        if leads and self.lead_deadline is not None:
            return max(self.deadline, self.lead_deadline)
        return self.deadline


@dataclass
class RunBudget:
    """The run's time limit in seconds, counted from when it was made."""

    limit: float
    ensemble: bool = True
    """Whether to keep time for the ensemble at the end."""
    started: float = field(default_factory=time.monotonic)
    fixed: list[float] = field(default_factory=list)
    """Each finished model's finish seconds beyond its fits (:meth:`record`)."""
    best: float | None = None
    """The best validation value of the models finished so far (:meth:`record`)."""

    def left(self) -> float:
        """Seconds left of the whole limit."""
        return self.limit - (time.monotonic() - self.started)

    def spent(self) -> bool:
        """Whether no time is left for another model (the ensemble's time kept)."""
        return self.left() <= self.ensemble_reserve()

    def ensemble_reserve(self) -> float:
        """Seconds kept for the ensemble (none without it)."""
        return max(ENSEMBLE_MIN, ENSEMBLE_SHARE * self.limit) if self.ensemble else 0.0

    def share(self, models_left: int) -> TimeShare:
        """The next model's share when ``models_left`` models (it included) are still to run:
        an equal part of what is left once the ensemble's time is kept."""
        now, free = time.monotonic(), max(0.0, self.left() - self.ensemble_reserve())
        seconds = free / max(1, models_left)
        fixed = max(self.fixed) if self.fixed else FINISH_FIXED
        lead = now + free - (max(1, models_left) - 1) * seconds / 2
        return TimeShare(now + seconds, fixed, lead_deadline=lead, best_before=self.best)

    def record(self, fixed: float | None, value: float | None = None) -> None:
        """What a finished model's finish spent beyond its fits, for the next models', and its
        best validation value (lower is better; None: not comparable)."""
        if fixed is not None:
            self.fixed.append(max(0.0, fixed))
        if value is not None and math.isfinite(value):
            self.best = value if self.best is None else min(self.best, value)


class StopInTime:
    """An Optuna callback that stops the study before a trial that would end past the
    share's deadline once the model's finish (``fits_after`` more fits like a complete
    trial, plus the share's fixed seconds) is counted; at least one trial always runs."""

    def __init__(self, share: TimeShare, fits_after: int) -> None:
        self.share = share
        self.fits_after = fits_after

    def finish_fits(self, study) -> float:
        """Seconds the finish's fits should take, from the complete trials' durations."""
        complete = durations(study, complete_only=True)
        return self.fits_after * (sum(complete) / len(complete) if complete else 0.0)

    def __call__(self, study, trial) -> None:
        spent = durations(study, complete_only=False)
        next_trial = sum(spent) / len(spent) if spent else 0.0
        finish = self.finish_fits(study) + self.share.fixed
        if time.monotonic() + next_trial + finish > self.share.deadline:
            study.stop()


def durations(study, *, complete_only: bool) -> list[float]:
    """Seconds each finished trial of ``study`` took (complete ones only, or every one that
    ended: complete, pruned, failed)."""
    states = ("COMPLETE",) if complete_only else ("COMPLETE", "PRUNED", "FAIL")
    return [
        t.duration.total_seconds()
        for t in study.get_trials(deepcopy=False)
        if t.state.name in states and t.duration is not None
    ]


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``90``, ``90s``, ``30m``, ``2h``, ``1h30m``; ValueError otherwise."""
    import re

    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", value)
    if not value or parts is None:
        raise ValueError(text)
    hours, minutes, seconds = (float(p) if p else 0.0 for p in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def duration_text(seconds: float) -> str:
    """``1h 5m``, ``10m``, ``45s``: a duration as a user writes it."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return " ".join(p for p in parts if p) or "0s"
