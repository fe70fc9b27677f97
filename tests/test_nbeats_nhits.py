"""The nbeats and nhits plugins: bases, pooling and interpolation, real fits, the contract kit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlforecast_cli.data import split_panel  # noqa: E402
from mlforecast_cli.datasets import load_dataset  # noqa: E402
from mlforecast_cli.models.registry import Registry  # noqa: E402
from mlforecast_cli.testing import ForecasterContract  # noqa: E402
from mlforecast_cli.trials.fit import FitOptions, fit_and_score, task_info  # noqa: E402
from mlforecast_cli.trials.scoring import TrialFailed  # noqa: E402

HORIZON = 13
TRAINING = {"epochs": 2, "batch_size": 64, "window_size": 20, "mlp_units": 8, "dropout": 0.0}
TINY = {
    "nbeats": {**TRAINING, "stacks": "trend-seasonality", "n_blocks": 2},
    "nhits": {**TRAINING, "n_pool_kernel_size": "4-2-1", "n_freq_downsample": "6-2-1"},
}


@pytest.fixture(scope="module")
def walmart():
    panel = load_dataset("walmart")
    split = split_panel(panel, HORIZON, 1, min_train=31)
    task = task_info(panel, HORIZON, seed=42, device="cpu", n_jobs=1)
    return panel, split, task


def fit(name, walmart, params=None, report=None):
    panel, split, task = walmart
    return fit_and_score(
        Registry().get(name),
        {**TINY[name], **(params or {})},
        task,
        panel,
        split.folds[0].train_end,
        FitOptions(report=report, train_metrics=False),
    )


def dims(window_size=20, horizon=HORIZON, n_step_features=6):
    from mlforecast_cli.plugins._torch_training import Dims

    return Dims(window_size, horizon, n_step_features, 7)


def test_trend_and_seasonality_bases():
    from mlforecast_cli.plugins.nbeats import seasonality_basis, trend_basis

    past, future = trend_basis(20, HORIZON, 3)
    assert past.shape == (4, 20) and future.shape == (4, HORIZON)
    np.testing.assert_array_equal(future[0], 1.0)  # t^0
    assert np.abs(past).max() <= 1.0 and np.abs(future).max() <= 1.0
    assert np.all(np.diff(np.concatenate([past[1], future[1]])) > 0)  # one time axis

    past, future = seasonality_basis(20, HORIZON, 2)
    n_freq = 2 * HORIZON // 2  # 13 frequencies: cos rows, sin rows without the constant
    assert past.shape == (2 * n_freq - 1, 20) and future.shape == (2 * n_freq - 1, HORIZON)
    np.testing.assert_allclose(future[0], 1.0)
    # frequency 1/2 cycle per horizon: cos over the horizon goes from 1 to about -1
    assert future[1, 0] == pytest.approx(1.0) and future[1, -1] < -0.9


def test_interpretable_stacks_split_the_forecast_into_trend_and_season():
    from mlforecast_cli.plugins.nbeats import build_network

    torch.manual_seed(0)
    params = {"stacks": "trend-seasonality", "n_blocks": 2, "mlp_units": 8, "residual": False}
    net = build_network(params, dims()).eval()
    past = torch.randn(5, 20, 1)
    with torch.no_grad():
        parts = net.components(past)
        out = net(past, torch.zeros(5, HORIZON, 6), torch.zeros(5, dtype=torch.long))
    assert parts.shape == (5, 2, HORIZON) and out.shape == (5, HORIZON)
    torch.testing.assert_close(parts.sum(dim=1), out)
    trend = parts[:, 0].numpy()  # a quadratic's values: their 3rd differences vanish
    np.testing.assert_allclose(np.diff(trend, n=3, axis=1), 0.0, atol=1e-4)
    assert net.stacks[0][0].past_basis.shape == (3, 20)  # n_polynomials 2 by default


def test_shared_weights_share_one_block_per_stack():
    from mlforecast_cli.plugins.nbeats import build_network

    params = {"stacks": "identity", "n_blocks": 3, "mlp_units": 8}
    shared = build_network({**params, "shared_weights": True}, dims())
    alone = build_network(params, dims())
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(alone) == 3 * count(shared)


def test_nhits_pooling_and_interpolation_shapes():
    from mlforecast_cli.plugins.nhits import build_network, n_knots

    params = {
        "n_pool_kernel_size": "8-4-1",
        "n_freq_downsample": "6-3-1",
        "mlp_units": 8,
        "residual": False,
    }
    net = build_network(params, dims(window_size=30)).eval()
    assert [n_knots(HORIZON, f) for f in (6, 3, 1, 24)] == [2, 4, 13, 1]
    first, middle, last = (blocks[0] for blocks in net.stacks)
    assert first.mlp[0].in_features == 4 + 6 * 2  # ceil(30/8) past + 6 features × ceil(13/8)
    assert middle.mlp[0].in_features == 8 + 6 * 4
    assert last.mlp[0].in_features == 30 + 6 * 13
    assert [b.theta.out_features for b in (first, middle, last)] == [32, 34, 43]
    past, steps = torch.randn(5, 30, 1), torch.randn(5, HORIZON, 6)
    with torch.no_grad():
        parts = net.components(past, steps)
    assert parts.shape == (5, 3, HORIZON)
    # two knots linearly interpolated: the first stack's forecast is a straight line
    np.testing.assert_allclose(np.diff(parts[:, 0].numpy(), n=2, axis=1), 0.0, atol=1e-5)


@pytest.mark.parametrize("name", ["nbeats", "nhits"])
def test_untrained_residual_network_is_the_seasonal_naive(name):
    module = __import__(f"mlforecast_cli.plugins.{name}", fromlist=["build_network"])
    net = module.build_network(TINY[name], dims())
    with torch.no_grad():
        out = net(torch.randn(3, 20, 1), torch.randn(3, HORIZON, 6), torch.zeros(3).long())
    assert torch.equal(out, torch.zeros(3, HORIZON))


@pytest.mark.parametrize("name", ["nbeats", "nhits"])
def test_fit_reports_every_epoch_and_predicts_the_horizon(name, walmart):
    calls = []
    result = fit(name, walmart, report=lambda step, value: calls.append((step, value)))
    assert result.predictions.shape == (7, HORIZON)
    assert np.isfinite(result.predictions).all()
    assert [step for step, _ in calls] == [1, 2]
    assert 1 <= result.refit_params["epochs"] <= 2


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("nbeats", {"stacks": "trend-wavelet"}, r"nbeats: stacks 'trend-wavelet' is not"),
        ("nhits", {"n_freq_downsample": "4-1"}, r"must list as many stacks as each other"),
        ("nhits", {"n_pool_kernel_size": "2-x-1"}, r"n_pool_kernel_size '2-x-1' is not"),
        ("nhits", {"pooling_mode": "min"}, r"pooling_mode 'min' is not one of max, avg"),
    ],
)
def test_bad_settings_fail_with_one_clear_line(name, params, message, walmart):
    with pytest.raises(TrialFailed, match=message):
        fit(name, walmart, params)


def test_an_epoch_is_a_fixed_budget_of_seeded_batches(walmart):
    from mlforecast_cli.plugins._torch_training import epoch_order

    def order(n, batch, steps, seed=0):
        return epoch_order(n, batch, steps, torch.Generator().manual_seed(seed))

    big = order(100_000, 256, 50)
    assert len(big) == 50 * 256 and len(set(big.tolist())) == len(big)  # a sample, no repeats
    small = order(525, 32, 50)  # 1,600 windows: 3 whole passes and part of a 4th
    assert len(small) == 1_600 and np.bincount(small.numpy()).min() == 3
    assert sorted(order(525, 32, None).tolist()) == list(range(525))  # unset: one pass
    assert torch.equal(order(525, 32, 50), small) and not torch.equal(order(525, 32, 50, 1), small)

    budget = {"steps_per_epoch": 2, "batch_size": 8}
    first, again = fit("nhits", walmart, budget), fit("nhits", walmart, budget)
    np.testing.assert_array_equal(first.predictions, again.predictions)
    whole = fit("nhits", walmart, {**budget, "steps_per_epoch": None})
    assert not np.allclose(first.predictions, whole.predictions)


def test_mape_loss_weighs_errors_by_the_actual_value(walmart):
    from mlforecast_cli.plugins._torch_training import Inputs, _loss_fn

    y = torch.tensor([[0.0, 1.0]])
    batch = Inputs(*(torch.zeros(1, 1),) * 4, y, torch.tensor([[10.0]]), torch.tensor([[2.0]]))
    predicted = torch.tensor([[1.0, 1.5]])  # errors 2 and 1 in original units, actuals 10, 12
    expected = (2 / 10 + 1 / 12) / 2
    assert float(_loss_fn("mape")(predicted, batch)) == pytest.approx(expected)
    assert float(_loss_fn("mae")(predicted, batch)) == pytest.approx(0.75)
    result = fit("nhits", walmart, {"loss": "mape"})
    assert np.isfinite(result.predictions).all()


def test_listing_models_does_not_import_torch():
    code = (
        "import sys; from mlforecast_cli.models.registry import Registry; r = Registry(); "
        "names = [r.get(n).spec.family for n in ('nbeats', 'nhits')]; "
        "print(names, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['neural', 'neural'] False"


def test_spaces_follow_the_papers_and_the_auto_defaults():
    nhits = Registry().get("nhits").load_space()
    assert "1-1-1" in nhits.params["n_pool_kernel_size"].choices
    assert "24-12-1" in nhits.params["n_freq_downsample"].choices
    assert nhits.params["learning_rate"].log
    assert list(nhits.params["batch_size"].choices) == [128, 256, 512, 1024]
    nbeats = Registry().get("nbeats").load_space()
    assert "trend-seasonality" in nbeats.params["stacks"].choices
    for space in (nhits, nbeats):
        assert list(space.params["scaler"].choices) == ["window", "series"]
        assert space.fixed["steps_per_epoch"] == 50 and space.fixed["max_seconds"]
        assert list(space.params["loss"].choices) == ["mape", "mae"]
        assert "horizon" not in space.params


def test_optimize_nhits_from_the_cli(cli, mlflow_uri):
    args = ["optimize", "nhits", "--trials", "2", "--json"]
    for key, value in {**TINY["nhits"], "steps_per_epoch": 5}.items():
        args += ["--set", f"{key}={value}"]
    result = cli(*args)
    assert result.code == 0, result
    (model,) = json.loads(result.out)["models"]
    assert model["error"] is None and model["trials"]["complete"] == 2
    assert np.isfinite(model["test_metrics"]["mape"])
    assert 0 <= model["best_params"]["epochs"] <= 2  # 0: the residual's base was best


CONTRACT = {**TRAINING, "window_size": 8, "scaler": "window"}


class TestNBEATSContract(ForecasterContract):
    model_name = "nbeats"
    params = {**CONTRACT, "stacks": "identity-trend-seasonality", "n_blocks": 1}


class TestNHITSContract(ForecasterContract):
    model_name = "nhits"
    params = {**CONTRACT, "n_pool_kernel_size": "2-1", "n_freq_downsample": "4-1"}


def test_every_training_setting_is_declared():
    """A setting of the shared training loop is one every neural model accepts in a space
    (nbeats and nhits refused ``--set weight_decay=...`` before they declared them)."""
    from mlforecast_cli.plugins._params import TRAINING_LOOP_PARAMS, TRAINING_PARAMS
    from mlforecast_cli.plugins._torch_training import DEFAULTS

    from mlforecast_cli.models.registry import Registry

    assert set(TRAINING_PARAMS) == set(DEFAULTS)
    registry = Registry()
    for name in ("lstm", "tcn", "transformer", "nbeats", "nhits"):
        assert set(TRAINING_LOOP_PARAMS) <= registry.get(name).declared_params, name
