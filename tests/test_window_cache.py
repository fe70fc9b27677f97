"""What a trial costs on a large panel: the windows a study cuts, kept across its trials
(data.windows.WindowCache) and equal to a fresh cut, least recently used cuts dropped beyond
a byte budget, fits scored to the digit from cached windows, and the metric weights read
without a loop over the series."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mlforecast_cli.data.split import split_panel
from mlforecast_cli.data.windows import Draw, WindowCache, make_windows, train_windows
from mlforecast_cli.datasets import load_dataset

HORIZON = 13


@pytest.fixture(scope="module")
def walmart():
    panel = load_dataset("walmart")
    return panel, split_panel(panel, HORIZON, 2, min_train=31)


def assert_same_windows(a, b):
    for field in dataclasses.fields(a):
        left, right = getattr(a, field.name), getattr(b, field.name)
        if left is None or right is None:
            assert left is None and right is None, field.name
        else:
            np.testing.assert_array_equal(left, right, err_msg=field.name, strict=True)


def test_a_cut_is_kept_per_argument_and_equals_a_fresh_one(walmart):
    panel, split = walmart
    end, other = (fold.train_end for fold in split.folds)
    cache = WindowCache(panel)
    first = cache.train(end, 8, HORIZON, "series", Draw(100, 1))
    assert cache.train(end.copy(), 8, HORIZON, "series", Draw(100, 1)) is first
    assert_same_windows(
        first, train_windows(panel, end, 8, HORIZON, scaler="series", draw=Draw(100, 1))
    )
    scored = cache.eval(end, 8, HORIZON, "series")
    assert_same_windows(scored, make_windows(panel, end, 8, HORIZON, mode="eval", scaler="series"))
    assert (cache.hits, cache.misses) == (1, 2)
    variants = [
        cache.train(other, 8, HORIZON, "series", Draw(100, 1)),
        cache.train(end, 9, HORIZON, "series", Draw(100, 1)),
        cache.train(end, 8, HORIZON - 1, "series", Draw(100, 1)),
        cache.train(end, 8, HORIZON, "window", Draw(100, 1)),
        cache.train(end, 8, HORIZON, "series", Draw(100, 2)),
        cache.train(end, 8, HORIZON, "series", Draw(50, 1)),
        cache.train(end, 8, HORIZON, "series"),
    ]
    assert all(v is not first for v in variants) and cache.misses == 2 + len(variants)


def test_least_recently_used_cuts_go_beyond_the_byte_budget(walmart):
    panel, split = walmart
    end = split.folds[0].train_end
    size = WindowCache(panel).eval(end, 8, HORIZON, "window")
    one = sum(a.nbytes for a in vars(size).values() if isinstance(a, np.ndarray))
    cache = WindowCache(panel, max_bytes=int(2.5 * one))
    a, b = cache.eval(end, 8, HORIZON, "window"), cache.eval(end, 8, HORIZON, "series")
    assert cache.eval(end, 8, HORIZON, "window") is a  # now b is the least recently used
    cache.eval(end, 8, HORIZON, "none")
    assert cache.nbytes <= 2.5 * one
    assert cache.eval(end, 8, HORIZON, "window") is a
    assert cache.eval(end, 8, HORIZON, "series") is not b  # dropped, cut again
    nothing = WindowCache(panel, max_bytes=0)  # keeps only the newest cut
    c = nothing.eval(end, 8, HORIZON, "window")
    assert nothing.eval(end, 8, HORIZON, "window") is c
    nothing.eval(end, 8, HORIZON, "series")
    assert nothing.eval(end, 8, HORIZON, "window") is not c


def test_a_fit_on_cached_windows_scores_to_the_digit(walmart):
    pytest.importorskip("torch")
    from mlforecast_cli.models.registry import Registry
    from mlforecast_cli.trials.fit import FitOptions, fit_and_score, task_info

    panel, split = walmart
    entry = Registry().get("nhits")
    params = {"epochs": 2, "batch_size": 32, "window_size": 20, "mlp_units": 8}
    params |= {"n_pool_kernel_size": "4-2-1", "n_freq_downsample": "6-2-1", "scaler": "series"}
    task = task_info(panel, HORIZON, seed=7, device="cpu", n_jobs=1)
    end = split.folds[0].train_end
    cache = WindowCache(panel)

    def fit(windows):
        return fit_and_score(entry, params, task, panel, end, FitOptions(windows=windows))

    fresh, cut, kept = fit(None), fit(cache), fit(cache)
    assert (cache.misses, cache.hits) == (2, 2)  # training and scored windows
    assert kept.windows is cut.windows
    for result in (cut, kept):
        np.testing.assert_array_equal(result.predictions, fresh.predictions, strict=True)
        assert result.metrics == fresh.metrics and result.train_metrics == fresh.train_metrics


def test_a_study_cuts_each_fold_once_per_window_size_and_scaler(walmart, tmp_path):
    """The objective's trials share its cache: with window_size and scaler fixed, only the
    first trial cuts."""
    from mlforecast_cli.models.registry import Registry
    from mlforecast_cli.trials.optuna_study import StudyConfig
    from tests.studies import objective_for, run_trials

    panel, _ = walmart
    entry = Registry().get("lightgbm")
    space = entry.load_space().override(
        ["window_size=10", "n_estimators=5", "num_leaves=4", "early_stopping_rounds=2"]
    )
    config = StudyConfig.of("lightgbm", "cached", space, horizon=HORIZON, cv_windows=2)
    objective = objective_for(entry, panel, config)
    study = run_trials(entry, panel, config, n_trials=3, objective=objective)
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 3
    # per fold the training and scored windows (the train metrics are on the training ones)
    assert objective.windows.misses == 4 and objective.windows.hits == 8


def test_metric_weights_are_each_horizon_step_own_and_one_past_the_end(walmart):
    """trials.scoring.row_weights, vectorised: a window's step weighs what the data says."""
    from mlforecast_cli.trials.scoring import row_weights

    panel, split = walmart
    for end in (split.folds[0].train_end, panel.lengths - 5, panel.lengths):
        for windows in (
            make_windows(panel, end, 8, HORIZON, mode="eval"),
            train_windows(panel, np.maximum(end, HORIZON + 1), 8, HORIZON),
        ):
            got = row_weights(panel, windows)
            for row, (s, first) in enumerate(zip(windows.series, windows.step_offset, strict=True)):
                for j in range(HORIZON):
                    inside = first + j < len(panel.weights[s])
                    assert got[row, j] == (panel.weights[s][first + j] if inside else 1.0)
    assert (
        row_weights(panel, make_windows(panel, panel.lengths, 8, HORIZON, mode="eval")) == 1
    ).all()
