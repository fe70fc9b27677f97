"""Conformal intervals, interval metrics, held-out tables and ensemble selection, on numbers
whose answer is known (no MLflow, no study)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlforecast_cli.ensembles.ensemble import combine, greedy_weights, select, top_mean_weights
from mlforecast_cli.ensembles.held_out import HeldOut
from mlforecast_cli.ensembles.intervals import (
    ConformalScores,
    check_levels,
    conformal_quantile,
    conformal_scores,
    min_scores,
)
from mlforecast_cli.errors import UsageError
from mlforecast_cli.search.metrics import coverage, evaluate_intervals, metric_label, msis


def table(actual: np.ndarray, forecast: np.ndarray, scale: float = 1.0, windows: int = 1):
    """A held-out table of (n, h) actuals and forecasts split evenly into ``windows``."""
    n, h = actual.shape
    per = n // windows
    return HeldOut(
        id=np.repeat(np.array([f"s{i % per}" for i in range(n)], dtype=object), h),
        time=np.tile(np.arange(h), n).astype("datetime64[D]").astype("datetime64[ns]"),
        window=np.repeat(np.arange(n) // per, h),
        step=np.tile(np.arange(h), n),
        actual=actual.reshape(-1).astype(float),
        forecast=forecast.reshape(-1).astype(float),
        scale=np.full(n * h, scale),
        weight=np.ones(n * h),
    )


def test_the_quantile_is_the_split_conformal_rank():
    scores = (np.arange(1.0, 100.0), np.arange(2.0, 200.0, 2.0))
    # m = 99 scores: rank ceil(100 * 0.8) = 80, ceil(100 * 0.95) = 95
    assert conformal_quantile(scores, 80).tolist() == [80.0, 160.0]
    assert conformal_quantile(scores, 95).tolist() == [95.0, 190.0]
    # 99.9 % needs 1999 scores: the two steps pool their 198, and the rank is past the last
    assert conformal_quantile(scores, 99.9).tolist() == [198.0, 198.0]


def test_a_step_with_too_few_scores_borrows_its_nearest_steps():
    # 7 series, one window (Walmart): 7 scores a step, step j's scores are j + 0.1 ... j + 0.7
    h = 6
    scores = tuple(j + np.arange(1, 8) / 10 for j in range(h))
    assert [min_scores(level) for level in (80, 90, 95, 97.5)] == [9, 19, 39, 79]
    at80, at95 = conformal_quantile(scores, 80), conformal_quantile(scores, 95)
    # 80 %: radius 1 (21 scores, 14 at the ends); rank ceil(22 * 0.8) = 18 of 21
    assert at80[2] == pytest.approx(3.4) and at80[0] == pytest.approx(1.5)
    # 95 %: radius 3 (42 scores at step 2), rank ceil(43 * 0.95) = 41 of 42
    assert at95[2] == pytest.approx(5.6)
    assert at80.tolist() == pytest.approx([1.5, 2.4, 3.4, 4.4, 5.4, 5.6])
    # the last step at 80 % keeps at least its own second-largest score (5.6), and 95 %,
    # pooling the early steps' smaller scores, is held at least as wide: nested intervals
    assert at95.tolist() == pytest.approx([5.6] * h)
    assert (at95 >= at80).all()
    # with as many scores as the level needs, a step keeps its own
    many = (np.arange(1.0, 40.0), np.arange(101.0, 140.0))
    assert conformal_quantile(many, 95).tolist() == [38.0, 138.0]


def test_each_bound_comes_from_its_own_tail():
    # 199 residuals -20 ... 178: mostly above the forecast (sales spikes)
    conformal = ConformalScores((np.arange(199.0) - 20.0,))
    # 80 %: each tail at 90 %, rank ceil(200 * 0.9) = 180 of 199: 159 above; below, the
    # 180th smallest of the negatives -178 ... 20 is 1
    below, above = conformal.offsets(80)
    assert above.tolist() == [159.0] and below.tolist() == [1.0]
    (lo, hi) = conformal.bounds(np.array([[100.0]]), np.array([2.0]), (80,))[80.0]
    assert lo.tolist() == [[98.0]] and hi.tolist() == [[100.0 + 2 * 159.0]]
    # residuals -10 ... 188: the lower tail's 180th is -9, past the forecast: held at 0, so
    # the interval holds its forecast
    assert ConformalScores((np.arange(199.0) - 10.0,)).offsets(80)[0].tolist() == [0.0]
    # a symmetric error gets the same reach on both sides
    both = ConformalScores((np.arange(-99.0, 100.0),))
    below, above = both.offsets(95)  # tails at 97.5 %: rank ceil(200 * 0.975) = 195
    assert below.tolist() == above.tolist() == [95.0]
    # a model saved before equal tails: absolute scores, symmetric intervals
    old = ConformalScores((np.arange(1.0, 100.0),), signed=False)
    assert [x.tolist() for x in old.offsets(80)] == [[80.0], [80.0]]


def test_a_model_pickled_before_equal_tails_keeps_its_symmetric_intervals():
    import pickle

    new = ConformalScores((np.arange(1.0, 100.0),))
    assert pickle.loads(pickle.dumps(new)).signed
    before = ConformalScores.__new__(ConformalScores)
    object.__setattr__(before, "__dict__", {"scores": new.scores})  # no ``signed`` then
    loaded = pickle.loads(pickle.dumps(before))
    assert not loaded.signed
    assert [x.tolist() for x in loaded.offsets(80)] == [[80.0], [80.0]]


def test_intervals_cover_new_exchangeable_errors_at_their_level():
    rng = np.random.default_rng(0)
    h, n = 3, 4000
    noise = rng.standard_normal((n, h)) * np.array([1.0, 2.0, 4.0])  # wider each step
    noise = np.exp(noise / 4) - 1  # skewed: longer above the forecast than below
    scales = rng.uniform(1, 10, n)
    actual = 100 * scales[:, None] + noise * scales[:, None]
    validation = table(actual, np.full_like(actual, 0) + 100 * scales[:, None])
    validation = HeldOut(**{**vars(validation), "scale": np.repeat(scales, h)})
    conformal = conformal_scores(validation)
    new_noise = np.exp(rng.standard_normal((n, h)) * np.array([1.0, 2.0, 4.0]) / 4) - 1
    new_actual = 100 * scales[:, None] + new_noise * scales[:, None]
    forecast = 100 * scales[:, None] * np.ones((1, h))
    bounds = conformal.bounds(forecast, scales, (80, 95))
    got = evaluate_intervals(new_actual, bounds, scales)
    assert got["coverage_80"] == pytest.approx(80, abs=2)
    assert got["coverage_95"] == pytest.approx(95, abs=1.5)
    for level, (lo, hi) in bounds.items():  # each tail misses its half of 1 - L
        tail = (100 - level) / 2
        assert 100 * np.mean(new_actual > hi) == pytest.approx(tail, abs=1.5)
        assert 100 * np.mean(new_actual < lo) == pytest.approx(tail, abs=1.5)
    below, above = conformal.offsets(80)
    assert above[0] < above[1] < above[2]  # per step, as the errors grow
    assert (above > below).all()  # and longer above, as the errors are


def test_coverage_and_msis_by_hand():
    y = np.array([[1.0, 5.0, 10.0]])
    lo, hi = np.array([[0.0, 0.0, 0.0]]), np.array([[2.0, 4.0, 12.0]])
    assert coverage(y, lo, hi) == pytest.approx(200 / 3)
    # alpha = 0.2: widths 2, 4, 12; one miss of 1 above -> 2 / 0.2 * 1 = 10; scale 2
    assert msis(y, lo, hi, np.array([2.0]), 80) == pytest.approx((2 + 4 + 10 + 12) / 3 / 2)
    assert metric_label("coverage_80") == "coverage_80" and metric_label("msis_95") == "MSIS_95"


@pytest.mark.parametrize("bad", [0, 100, 150, -5, "x"])
def test_levels_outside_0_100_are_refused(bad):
    with pytest.raises(UsageError, match="--level"):
        check_levels([bad])


def test_levels_are_deduplicated_floats():
    assert check_levels(["80", 95, 80.0]) == (80.0, 95.0)


def test_greedy_mixes_opposite_biases_and_beats_each_member():
    rng = np.random.default_rng(1)
    actual = rng.uniform(50, 150, (200, 4))
    high = table(actual, actual * 1.2 + rng.normal(0, 1, actual.shape))
    low = table(actual, actual * 0.8 + rng.normal(0, 1, actual.shape))
    bad = table(actual, actual * 3.0)
    choice = greedy_weights([high, low, bad], "mape", rounds=10)
    assert choice.weights.sum() == pytest.approx(1.0)
    assert choice.weights[2] == 0
    assert choice.weights[0] == pytest.approx(0.5, abs=0.1)
    members = [t.metrics()["mape"] for t in (high, low, bad)]
    assert choice.value < min(members) / 5
    assert combine([high, low, bad], choice.weights).metrics()["mape"] == pytest.approx(
        choice.value
    )


def test_greedy_never_does_worse_than_its_best_member_on_validation():
    rng = np.random.default_rng(2)
    actual = rng.uniform(50, 150, (50, 3))
    good = table(actual, actual + rng.normal(0, 1, actual.shape))
    poor = table(actual, actual + rng.normal(0, 30, actual.shape))
    choice = greedy_weights([poor, good], "mae", rounds=25)
    assert choice.weights.tolist() == [0.0, 1.0]
    assert choice.value == pytest.approx(good.metrics()["mae"])


def test_top_mean_weights_the_k_best_equally():
    actual = np.full((10, 2), 100.0)
    tables = [table(actual, actual + d) for d in (5.0, 1.0, 3.0)]
    assert top_mean_weights(tables, "mae", 2).weights.tolist() == [0.0, 0.5, 0.5]
    assert select(tables, "mae", "mean", top=9).weights.tolist() == pytest.approx([1 / 3] * 3)
    with pytest.raises(UsageError, match="--method 'best' is not one of greedy, mean"):
        select(tables, "mae", "best")


def test_held_out_metrics_are_the_mean_over_windows_and_survive_a_csv(tmp_path):
    actual = np.array([[100.0, 100.0], [200.0, 200.0]])
    forecast = np.array([[110.0, 90.0], [200.0, 220.0]])
    held = table(actual, forecast, windows=2)
    assert held.metrics()["mape"] == pytest.approx((10 + 5) / 2)
    path = tmp_path / "v.csv.gz"
    held.to_frame().to_csv(path, index=False)
    back = HeldOut.from_frame(pd.read_csv(path))
    assert all(np.array_equal(a, b) for a, b in zip(back.keys(), held.keys(), strict=True))
    assert back.metrics() == held.metrics()
