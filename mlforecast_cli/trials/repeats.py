"""Configurations a study has already tried, in a finite space (every param categorical or
stepped): a repeat is answered from the study, and the search moves on.

TPE repeats configurations of a finite space once its model settles (ets's 108 ran 813
trials in a timed run). A repeat of a COMPLETE trial would fit the same model on the same
data with the same seed again, so :func:`answer_repeat` gives it the earlier trial's score and
user attributes without a fit, and :class:`EnqueueUntried` enqueues an untried configuration
next to it (one param changed) as the next trial when the search goes on, so the study keeps
learning and a search never ends with a WAITING trial. :class:`StopWhenExhausted` ends the
search once every configuration has been tried: a timed run then leaves its time to the
models after it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..search.space import SearchSpace

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["EnqueueUntried", "StopWhenExhausted", "answer_repeat", "config_key"]

COPIED_ATTRS = (
    "val_metrics",
    "train_metrics",
    "refit_params",
    "notes",
    "naive_fallback",
)
"""The user attributes of the earlier trial a repeat carries (its training time is 0)."""

RANDOM_DRAWS = 200
"""Random configurations drawn when no neighbour of a repeat is untried."""


def config_key(params: dict[str, Any]) -> str:
    """One string per configuration of searched params."""
    return json.dumps(params, sort_keys=True, default=str)


def answer_repeat(space: SearchSpace, trial: optuna.Trial) -> float | None:
    """The score of the COMPLETE trial of ``trial``'s study that tried ``trial``'s params
    (None: none did, or the space is not finite). Its user attributes are copied to ``trial``
    with ``repeat_of``."""
    if space.size is None:
        return None
    key = config_key(trial.params)
    earlier = next(
        (
            t
            for t in trial.study.get_trials(deepcopy=False)
            if t.state.name == "COMPLETE" and config_key(t.params) == key
        ),
        None,
    )
    if earlier is None:
        return None
    for name in COPIED_ATTRS:
        if name in earlier.user_attrs:
            trial.set_user_attr(name, earlier.user_attrs[name])
    trial.set_user_attr("training_time_s", 0.0)
    trial.set_user_attr("repeat_of", earlier.number)
    return float(earlier.value)


class EnqueueUntried:
    """An Optuna callback, run after every callback that may stop the study: after a repeat
    (:func:`answer_repeat`), enqueue an untried configuration next to it as the next trial,
    when ``goes_on(study)`` says the search will start another trial."""

    def __init__(
        self, space: SearchSpace, seed: int, goes_on: Callable[[optuna.Study], bool]
    ) -> None:
        self.space = space
        self.seed = seed
        self.goes_on = goes_on

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if "repeat_of" not in trial.user_attrs or not self.goes_on(study):
            return
        tried = {
            config_key(t.params)
            for t in study.get_trials(deepcopy=False)
            if t.state.is_finished() or t.state.name == "WAITING"
        }
        nxt = untried(self.space, trial.params, tried, random.Random(self.seed + trial.number))
        if nxt is not None:
            study.enqueue_trial(nxt, skip_if_exists=True)


def untried(
    space: SearchSpace, params: dict[str, Any], tried: set[str], rng: random.Random
) -> dict[str, Any] | None:
    """An untried configuration: one param of ``params`` changed if any such is, else one
    of :data:`RANDOM_DRAWS` random draws; None when none was found."""
    values = {name: param.values() for name, param in space.params.items()}
    neighbours = [
        {**params, name: value}
        for name, choices in values.items()
        for value in choices
        if value != params.get(name)
    ]
    rng.shuffle(neighbours)
    for candidate in neighbours:
        if config_key(candidate) not in tried:
            return candidate
    for _ in range(RANDOM_DRAWS):
        candidate = {name: rng.choice(choices) for name, choices in values.items()}
        if config_key(candidate) not in tried:
            return candidate
    return None


class StopWhenExhausted:
    """An Optuna callback: stop the study once every configuration of a finite ``space`` has
    a finished trial (nothing new is left to learn)."""

    def __init__(self, space: SearchSpace) -> None:
        self.size = space.size

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.size is None:
            return
        finished = (t for t in study.get_trials(deepcopy=False) if t.state.is_finished())
        if len({config_key(t.params) for t in finished}) >= self.size:
            study.stop()
