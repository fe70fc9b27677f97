"""Metrics in original units (mlforecast_cli.search.metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mlforecast_cli.errors import UsageError
from mlforecast_cli.search.metrics import (
    METRICS,
    MetricError,
    evaluate,
    mae,
    mape,
    mase,
    mase_scale,
    rmse,
    smape,
    wape,
    wmae,
    zero_actuals,
)

Y = np.array([[100.0, 200.0], [50.0, 0.0]])
YHAT = np.array([[110.0, 150.0], [50.0, 10.0]])
# errors: 10, -50, 0, 10 (abs 10, 50, 0, 10)


def test_hand_computed_values():
    assert mape(Y, YHAT) == pytest.approx(100 * (10 / 100 + 50 / 200 + 0 / 50) / 3)
    assert zero_actuals(Y) == 1
    assert smape(Y, YHAT) == pytest.approx(200 / 4 * (10 / 210 + 50 / 350 + 0 / 100 + 10 / 10))
    assert mae(Y, YHAT) == pytest.approx(70 / 4)
    assert rmse(Y, YHAT) == pytest.approx(math.sqrt((100 + 2500 + 0 + 100) / 4))
    assert wape(Y, YHAT) == pytest.approx(100 * 70 / 350)
    weights = np.array([[5.0, 1.0], [1.0, 1.0]])
    assert wmae(Y, YHAT, weights) == pytest.approx((50 + 50 + 0 + 10) / 8)
    assert mase(Y, YHAT, np.array([10.0, 5.0])) == pytest.approx((1 + 5 + 0 + 2) / 4)


def test_smape_zero_over_zero_is_zero():
    assert smape(np.zeros((1, 3)), np.zeros((1, 3))) == 0.0
    assert smape(np.array([[0.0, 4.0]]), np.array([[0.0, 4.0]])) == 0.0
    assert smape(np.array([[1.0]]), np.array([[-1.0]])) == pytest.approx(200.0)


def test_mape_all_zero_refuses():
    with pytest.raises(MetricError, match=r"all 4 actual values are zero.*--metric smape"):
        mape(np.zeros((2, 2)), np.ones((2, 2)))
    assert issubclass(MetricError, UsageError)
    with pytest.raises(MetricError, match="WAPE"):
        wape(np.zeros((2, 2)), np.ones((2, 2)))


def test_non_finite_forecast_gives_nan():
    bad = YHAT.copy()
    bad[0, 1] = np.nan
    inf = YHAT.copy()
    inf[1, 0] = np.inf
    for yhat in (bad, inf):
        assert math.isnan(mape(Y, yhat))
        assert math.isnan(smape(Y, yhat))
        assert math.isnan(mae(Y, yhat))
        assert math.isnan(rmse(Y, yhat))
        assert math.isnan(wape(Y, yhat))
        assert math.isnan(mase(Y, yhat, np.ones(2)))
        assert math.isnan(wmae(Y, yhat, np.ones_like(Y)))


def test_shape_mismatch_is_a_bug():
    with pytest.raises(ValueError, match="shape"):
        mae(Y, YHAT[:, :1])


def test_mase_scale():
    history = [
        np.array([1.0, 2.0, 4.0, 7.0]),  # season 2: |4-1|, |7-2| -> 4
        np.array([3.0, 5.0]),  # too short for season 2: lag 1 -> 2
        np.full(6, 8.0),  # constant: floored to mean |y| = 8
        np.zeros(3),  # all zero: floored to 1
    ]
    np.testing.assert_allclose(mase_scale(history, 2), [4.0, 2.0, 8.0, 1.0])
    np.testing.assert_allclose(mase_scale([np.arange(10.0)], 1), [1.0])
    assert mase_scale([], 4).shape == (0,)


def test_mase_scale_of_many_ragged_series_is_each_series_own():
    """Vectorised over the series laid end to end: the same as each series on its own."""
    rng = np.random.default_rng(3)
    history = [
        rng.normal(size=rng.integers(0, 40)) * 10.0 ** rng.uniform(-2, 4) for _ in range(300)
    ]
    history += [np.full(9, -2.0), np.array([5.0]), np.array([]), np.array([np.nan, 1.0, 2.0])]
    for season in (1, 4, 12):
        expected = [mase_scale([h], season)[0] for h in history]
        np.testing.assert_allclose(mase_scale(history, season), expected, rtol=1e-13)


def test_evaluate_and_registry():
    assert set(METRICS) == {"mape", "smape", "mae", "rmse", "mase", "wape", "wmae"}
    out = evaluate(Y, YHAT)
    assert set(out) == {"mape", "smape", "mae", "rmse", "wape"}
    out = evaluate(Y, YHAT, scale=np.ones(2), weights=np.ones_like(Y))
    assert set(out) == set(METRICS)
    assert out["wmae"] == pytest.approx(out["mae"])
    assert out["mase"] == pytest.approx(out["mae"])
    assert set(evaluate(np.zeros((1, 2)), np.ones((1, 2)))) == {"smape", "mae", "rmse"}


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
actual = st.one_of(st.just(0.0), st.floats(1e-3, 1e6), st.floats(-1e6, -1e-3))


@settings(max_examples=200, deadline=None)
@given(
    y=arrays(np.float64, (3, 4), elements=actual),
    yhat=arrays(np.float64, (3, 4), elements=actual),
    c=st.floats(1e-3, 1e3),
)
def test_mape_scale_invariant(y, yhat, c):
    assume(np.any(y != 0))
    assert mape(c * y, c * yhat) == pytest.approx(mape(y, yhat), rel=1e-9, abs=1e-9)
    assert smape(c * y, c * yhat) == pytest.approx(smape(y, yhat), rel=1e-9, abs=1e-9)
    assert mae(c * y, c * yhat) == pytest.approx(c * mae(y, yhat), rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    y=arrays(np.float64, (2, 5), elements=finite), yhat=arrays(np.float64, (2, 5), elements=finite)
)
def test_metric_bounds(y, yhat):
    assert 0.0 <= smape(y, yhat) <= 200.0
    assert mae(y, yhat) <= rmse(y, yhat) + 1e-9 * max(1.0, rmse(y, yhat))
    assert mae(y, y) == 0.0
