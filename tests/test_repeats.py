"""A finite space's repeated configurations: answered from the study without a fit, the next
trial an untried neighbour, and the search ended once every configuration is tried."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from mlforecast_cli import Forecaster
from mlforecast_cli.search.space import Param, parse_space
from tests.plugin_factories import spec_plugin

FINITE = """
params:
  shrink: {type: float, low: 0.0, high: 0.2, step: 0.1}
  window_size: {type: int, low: 4, high: 6, step: 2}
optimizer:
  sampler: {type: TPESampler, n_startup_trials: 2, seed: 3}
"""
"""Six configurations."""

FITS: list[tuple[float, int]] = []


class Counted(Forecaster):
    """The shrunk mean of the window; every fit is counted in :data:`FITS`."""

    def fit(self, train, valid=None, report=None):
        FITS.append((self.params["shrink"], self.params["window_size"]))
        return self

    def predict(self, windows):
        mean = windows.x.mean(axis=1, keepdims=True)
        return np.repeat(mean * (1 - self.params["shrink"]), windows.horizon, axis=1)


def test_param_values_list_a_finite_range():
    assert Param("a", "categorical", choices=("x", 1)).values() == ("x", 1)
    assert Param("b", "int", low=2, high=9, step=3).values() == (2, 5, 8)
    assert Param("c", "float", low=0.1, high=0.3, step=0.1).values() == (0.1, 0.2, 0.3)
    assert Param("d", "float", low=0.0, high=1.0).values() is None
    space = parse_space(yaml.safe_load(FINITE), "finite.yaml")
    assert space.size == 6


def test_repeats_are_answered_from_the_study_and_the_search_ends_when_all_are_tried(
    registry, tmp_path
):
    from mlforecast_cli.datasets import load_dataset
    from mlforecast_cli.trials.optuna_study import StudyConfig
    from tests.studies import run_trials

    FITS.clear()
    registry.add_plugin(spec_plugin("counted", Counted, FINITE, tmp_path), name="counted_plugin")
    entry = registry.get("counted")
    config = StudyConfig.of("counted", "repeats", entry.load_space(), horizon=13)
    panel = load_dataset("walmart")
    study = run_trials(entry, panel, config, n_trials=2)
    first = study.trials[0].params
    study.enqueue_trial(first)  # what TPE proposes once its model settles
    study = run_trials(entry, panel, config, n_trials=60)

    trials = study.trials
    assert trials[2].params == first and trials[2].user_attrs["repeat_of"] == 0
    changed = [k for k in first if trials[3].params[k] != first[k]]
    assert len(changed) == 1 and "repeat_of" not in trials[3].user_attrs  # a neighbour next
    assert all(t.state.name == "COMPLETE" for t in trials)
    configs = {(t.params["shrink"], t.params["window_size"]) for t in trials}
    assert len(configs) == 6  # every configuration tried, then the study stopped
    assert sorted(FITS) == sorted(configs)  # each fitted once
    repeats = [t for t in trials if "repeat_of" in t.user_attrs]
    assert len(trials) == 6 + len(repeats) <= 12  # a repeat is followed by an untried one
    for t in repeats:
        earlier = trials[t.user_attrs["repeat_of"]]
        assert earlier.params == t.params and earlier.value == t.value
        assert t.user_attrs["val_metrics"] == earlier.user_attrs["val_metrics"]
        assert t.user_attrs["training_time_s"] == 0.0


def test_a_continuous_space_repeats_nothing(registry, tmp_path):
    from mlforecast_cli.datasets import load_dataset
    from mlforecast_cli.trials.optuna_study import StudyConfig
    from tests.studies import run_trials

    continuous = FINITE.replace(", step: 0.1", "")
    FITS.clear()
    registry.add_plugin(
        spec_plugin("counted", Counted, continuous, tmp_path), name="counted_plugin"
    )
    entry = registry.get("counted")
    config = StudyConfig.of("counted", "continuous", entry.load_space(), horizon=13)
    study = run_trials(entry, load_dataset("walmart"), config, n_trials=8)
    assert len(study.trials) == len(FITS) == 8
    assert not any("repeat_of" in t.user_attrs for t in study.trials)


@pytest.mark.parametrize("tried", [0, 5])
def test_an_untried_neighbour_changes_one_param_when_it_can(tried):
    import random

    from mlforecast_cli.trials.repeats import config_key, untried

    space = parse_space(yaml.safe_load(FINITE), "finite.yaml")
    start = {"shrink": 0.1, "window_size": 4}
    done = {config_key(start)}
    if tried:  # every neighbour tried: a random untried configuration
        done |= {config_key({"shrink": s, "window_size": 4}) for s in (0.0, 0.2)}
        done |= {config_key({"shrink": 0.1, "window_size": 6})}
    found = untried(space, start, done, random.Random(0))
    assert config_key(found) not in done
    changed = [k for k in start if found[k] != start[k]]
    assert len(changed) == (1 if not tried else 2)


def test_a_repeat_in_the_last_trial_of_a_search_leaves_nothing_waiting(registry, tmp_path):
    from mlforecast_cli.datasets import load_dataset
    from mlforecast_cli.trials.optuna_study import StudyConfig
    from tests.studies import run_trials

    registry.add_plugin(spec_plugin("counted", Counted, FINITE, tmp_path), name="counted_plugin")
    entry = registry.get("counted")
    config = StudyConfig.of("counted", "last", entry.load_space(), horizon=13)
    panel = load_dataset("walmart")
    study = run_trials(entry, panel, config, n_trials=2)
    study.enqueue_trial(study.trials[0].params)
    study = run_trials(entry, panel, config, n_trials=1)  # `--trials 1` adds one trial
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.trials[2].user_attrs["repeat_of"] == 0


@pytest.mark.parametrize("ending", ["stopped", "timeout"])
def test_a_repeat_when_the_search_ends_by_time_or_a_stop_leaves_nothing_waiting(
    registry, tmp_path, ending
):
    """The untried neighbour of a repeat is enqueued only if another trial will start: not
    after ``Study.stop()`` (``--time-limit``'s share, every trial done) or past ``timeout``."""
    import time

    from mlforecast_cli.datasets import load_dataset
    from mlforecast_cli.trials.objective import run_study
    from mlforecast_cli.trials.optuna_study import StudyConfig, create_study
    from tests.studies import objective_for, run_trials

    registry.add_plugin(spec_plugin("counted", Counted, FINITE, tmp_path), name="counted_plugin")
    entry = registry.get("counted")
    config = StudyConfig.of("counted", ending, entry.load_space(), horizon=13)
    panel = load_dataset("walmart")
    study = run_trials(entry, panel, config, n_trials=2)
    study.enqueue_trial(study.trials[0].params)

    def at_the_repeat(study, trial) -> None:  # runs before the enqueueing callback
        if "repeat_of" in trial.user_attrs:
            study.stop() if ending == "stopped" else time.sleep(0.5)

    study, _ = create_study(config, panel)
    run_study(
        objective_for(entry, panel, config),
        study,
        n_trials=None,
        timeout=0.4 if ending == "timeout" else None,
        callbacks=[at_the_repeat],
    )
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.trials[2].user_attrs["repeat_of"] == 0
