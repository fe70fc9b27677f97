"""The PyTorch plugins lstm, tcn and transformer: real fits with tiny networks on Walmart data."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlforecast_cli.data.split import split_panel  # noqa: E402
from mlforecast_cli.data.windows import make_windows  # noqa: E402
from mlforecast_cli.datasets import load_dataset  # noqa: E402
from mlforecast_cli.models.registry import Registry  # noqa: E402
from mlforecast_cli.testing import ForecasterContract  # noqa: E402
from mlforecast_cli.trials.fit import FitOptions, fit_and_score, task_info  # noqa: E402
from mlforecast_cli.trials.scoring import TrialFailed  # noqa: E402

MODELS = ("lstm", "tcn", "transformer")
TRAINING = {"epochs": 3, "batch_size": 64, "window_size": 8, "head_size": 8, "dropout": 0.1}
TINY = {
    "lstm": {**TRAINING, "hidden_size": 8, "num_layers": 2, "bidirectional": True},
    "tcn": {**TRAINING, "num_channels": "4-8", "kernel_size": 2},
    "transformer": {
        **TRAINING,
        "d_model": 8,
        "nhead": 2,
        "num_encoder_layers": 1,
        "num_decoder_layers": 1,
        "dim_feedforward": 16,
    },
}
HORIZON = 13


@pytest.fixture(scope="module")
def walmart():
    panel = load_dataset("walmart")
    split = split_panel(panel, HORIZON, 1, min_train=31)
    task = task_info(panel, HORIZON, seed=42, device="cpu", n_jobs=1)
    return panel, split, task


def entry(name: str):
    return Registry().get(name)


def fit(name, walmart, params=None, report=None, holdout=True, task=None):
    panel, split, default_task = walmart
    end = split.folds[0].train_end if holdout else split.test_start
    return fit_and_score(
        entry(name),
        {**TINY[name], **(params or {})},
        task or default_task,
        panel,
        end,
        FitOptions(holdout=holdout, report=report, train_metrics=False),
    )


def windows(walmart, window_size=8, mode="eval"):
    panel, split, _ = walmart
    end = split.folds[0].train_end
    return make_windows(panel, end, window_size, HORIZON, mode=mode, scaler="window")


@pytest.mark.parametrize("name", MODELS)
def test_fit_and_score_shapes_and_report_per_epoch(name, walmart):
    calls = []
    result = fit(name, walmart, report=lambda step, value: calls.append((step, value)))
    assert result.predictions.shape == (7, HORIZON)
    assert np.isfinite(result.predictions).all()
    assert np.isfinite(result.metrics["mape"])
    trainer = result.model.trainer
    assert [step for step, _ in calls] == list(range(1, trainer.epochs_run + 1))
    assert all(np.isfinite(value) and value > 0 for _, value in calls)
    assert 0 <= result.refit_params["epochs"] <= trainer.epochs_run  # 0: the base was best


@pytest.mark.parametrize("name", MODELS)
def test_panel_without_features(name, walmart):
    panel, split, task = walmart
    bare = replace(
        panel,
        columns=replace(panel.columns, features=()),
        features=[f[:, :0] for f in panel.features],
    )
    result = fit(name, (bare, split, replace(task, n_features=0, feature_names=())))
    assert result.predictions.shape == (7, HORIZON)
    assert np.isfinite(result.predictions).all()


def test_early_stopping_keeps_the_best_epoch(walmart):
    params = {"epochs": 40, "patience": 2, "learning_rate": 0.01}
    result = fit("lstm", walmart, params)
    trainer = result.model.trainer
    errors = [valid for _, _, valid in trainer.history]  # epoch 0 (the base) first
    assert [epoch for epoch, _, _ in trainer.history] == list(range(trainer.epochs_run + 1))
    assert trainer.stopped == "early stopping" and trainer.epochs_run < 40
    assert trainer.best_epoch == int(np.argmin(errors)) > 0
    assert trainer.epochs_run == trainer.best_epoch + 2
    # the kept weights are those of the best epoch: re-scoring gives its validation error
    valid = windows(walmart)
    predicted = result.model.predict(valid) * valid.scale[:, None] + valid.loc[:, None]
    actual = valid.y * valid.scale[:, None] + valid.loc[:, None]
    error = np.mean(np.abs(predicted - actual).sum(1) / np.abs(actual).sum(1))
    assert error == pytest.approx(min(errors), rel=1e-4)


def test_a_residual_network_that_training_only_worsens_keeps_its_base(walmart):
    from mlforecast_cli.plugins._torch_training import base_values

    result = fit("lstm", walmart, {"epochs": 3, "patience": 3, "learning_rate": 5.0})
    trainer = result.model.trainer
    errors = [valid for _, _, valid in trainer.history]
    assert trainer.best_epoch == 0 and min(errors[1:]) > errors[0]  # every epoch was worse
    assert result.refit_params == {"epochs": 0}
    valid = windows(walmart)
    assert np.allclose(result.model.predict(valid), base_values(valid), atol=1e-5)
    refit = fit("lstm", walmart, {"epochs": 0, "learning_rate": 5.0}, holdout=False)
    assert refit.model.trainer.epochs_run == 0 and np.isfinite(refit.predictions).all()


def test_validation_error_is_the_same_in_chunks(walmart, monkeypatch):
    from mlforecast_cli.plugins import _torch_training

    result = fit("lstm", walmart, {"epochs": 2})
    trainer = result.model.trainer
    data = _torch_training.build_inputs(windows(walmart), trainer.stats, torch.device("cpu"))
    whole = trainer._valid_error(data)
    monkeypatch.setattr(_torch_training, "PREDICT_CHUNK", 3)  # 7 windows: chunks of 3, 3, 1
    assert trainer._valid_error(data) == pytest.approx(whole, rel=1e-6)
    assert whole == pytest.approx(min(v for _, _, v in trainer.history), rel=1e-4)


def test_per_epoch_validation_error_uses_a_seeded_draw_of_many_windows(walmart, monkeypatch):
    from mlforecast_cli.plugins import _torch_training

    monkeypatch.setattr(_torch_training, "EPOCH_VALID_WINDOWS", 3)  # of Walmart's 7 windows
    result = fit("lstm", walmart, {"epochs": 2})
    trainer = result.model.trainer
    data = _torch_training.build_inputs(windows(walmart), trainer.stats, torch.device("cpu"))
    draw = _torch_training._epoch_sample(data, 42)
    assert len(draw) == 3 and len(_torch_training._epoch_sample(data, 42)) == 3
    assert torch.equal(draw.series, _torch_training._epoch_sample(data, 42).series)
    assert trainer._valid_error(draw) == pytest.approx(
        min(v for _, _, v in trainer.history), rel=1e-4
    )
    assert trainer._valid_error(draw) != pytest.approx(trainer._valid_error(data), rel=1e-4)


def test_refit_trains_the_epochs_it_is_given(walmart):
    result = fit("tcn", walmart, {"epochs": 4}, holdout=False)
    trainer = result.model.trainer
    assert trainer.epochs_run == 4 and trainer.stopped == "epochs"
    assert all(valid is None for _, _, valid in trainer.history)


def test_time_budget_stops_training(walmart):
    result = fit("lstm", walmart, {"epochs": 50, "max_seconds": 1e-9})
    trainer = result.model.trainer
    assert trainer.stopped == "time budget" and trainer.epochs_run == 1
    assert np.isfinite(result.predictions).all()


def test_pruning_in_a_real_study(walmart):
    import optuna

    panel, split, task = walmart
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1e-9))

    def objective(trial):
        def report(step, value):
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        return fit("transformer", walmart, {"epochs": 5}, report=report).metrics["mape"]

    study.optimize(objective, n_trials=2)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.PRUNED] * 2
    assert all(list(t.intermediate_values) == [1] for t in study.trials)


@pytest.mark.parametrize("name", MODELS)
def test_nan_loss_fails_the_trial_with_a_clear_message(name, walmart):
    with pytest.raises(TrialFailed, match=r"training loss became NaN.*lower learning_rate"):
        fit(name, walmart, {"learning_rate": 1e30, "grad_clip": 0})


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_predictions_and_pickle_round_trip(name, walmart):
    first = fit(name, walmart)
    torch.manual_seed(123)  # the global state must not matter
    second = fit(name, walmart)
    np.testing.assert_array_equal(first.predictions, second.predictions)
    _, _, task = walmart
    other = fit(name, walmart, task=replace(task, seed=7))
    assert not np.allclose(first.predictions, other.predictions)

    valid = windows(walmart)
    restored = pickle.loads(pickle.dumps(first.model))
    np.testing.assert_array_equal(restored.predict(valid), first.model.predict(valid))
    assert next(restored.trainer.network.parameters()).device.type == "cpu"


def test_d_model_not_divisible_by_nhead_is_repaired(walmart):
    from mlforecast_cli.plugins.transformer import repair_heads

    for d_model in range(64, 257):
        for nhead in range(4, 9):
            repaired, heads = repair_heads(d_model, nhead)
            assert heads == nhead and repaired % nhead == 0 and d_model - nhead < repaired
    result = fit("transformer", walmart, {"d_model": 10, "nhead": 4})
    assert result.model.params["d_model"] == 8
    assert result.refit_params["d_model"] == 8
    assert np.isfinite(result.predictions).all()


def test_tcn_is_causal_with_the_receptive_field_it_claims():
    from mlforecast_cli.plugins._torch_training import Dims
    from mlforecast_cli.plugins.tcn import build_network, receptive_field

    torch.manual_seed(0)
    params = {"num_channels": "4-4-4", "kernel_size": 3, "dropout": 0.0}
    tcn = build_network(params, Dims(30, 13, 6, 7)).tcn.eval()
    x = torch.randn(2, 1, 30)
    with torch.no_grad():
        out = tcn(x)
        for t in (0, 10, 28):
            changed = x.clone()
            changed[:, :, t + 1 :] += 5.0
            after = tcn(changed)
            torch.testing.assert_close(after[..., : t + 1], out[..., : t + 1])
            assert not torch.allclose(after[..., t + 1], out[..., t + 1])
        # with positive weights no ReLU cuts a path: what reaches the last output is the field
        for p in tcn.parameters():
            p.fill_(0.1)
        x = torch.rand(2, 1, 30) + 1.0
        base = tcn(x)[..., -1]
        field = receptive_field(3, 3)
        assert field == 29
        for lag in range(30):
            changed = x.clone()
            changed[:, :, 29 - lag] += 1.0
            moved = not torch.allclose(tcn(changed)[..., -1], base)
            assert moved == (lag < field), lag


def test_spaces_have_the_issue_ranges():
    def ranges(name):
        space = entry(name).load_space()
        out = {}
        for key, p in space.params.items():
            out[key] = list(p.choices) if p.type == "categorical" else (p.low, p.high)
        return out, space

    common = {
        "dropout": (0.0, 0.5),
        "learning_rate": (1e-4, 1e-2),
        "epochs": (50, 200),
        "window_size": (7, 30),
    }
    lstm, space = ranges("lstm")
    assert lstm["hidden_size"] == (64, 512) and lstm["num_layers"] == (1, 4)
    assert lstm["bidirectional"] == [False, True] and lstm["batch_size"] == (16, 128)
    tcn, _ = ranges("tcn")
    assert tcn["num_channels"] == ["32-64-128", "32-64-128-256"]
    assert tcn["kernel_size"] == (3, 7) and tcn["batch_size"] == (16, 128)
    transformer, _ = ranges("transformer")
    assert transformer["d_model"] == (64, 256) and transformer["nhead"] == (4, 8)
    assert transformer["num_encoder_layers"] == transformer["num_decoder_layers"] == (1, 4)
    assert transformer["dim_feedforward"] == (256, 1024)
    assert transformer["batch_size"] == (16, 64)
    for found in (lstm, tcn, transformer):
        assert {k: found[k] for k in common} == common
        assert "horizon" not in found
    assert space.params["learning_rate"].log
    assert space.optimizer["pruner"]["n_warmup_steps"] == 10


def test_listing_models_does_not_import_torch():
    code = (
        "import sys; from mlforecast_cli.models.registry import Registry; r = Registry(); "
        "names = [r.get(n).spec.family for n in ('lstm', 'tcn', 'transformer')]; "
        "print(names, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['neural', 'neural', 'neural'] False"


def test_optimize_lstm_from_the_cli(cli, mlflow_uri):
    sets = [f"{k}={v}" for k, v in {**TINY["lstm"], "num_layers": 1}.items()]
    args = ["optimize", "lstm", "--trials", "2", "--json", "--device", "auto"]
    for assignment in sets:
        args += ["--set", assignment]
    result = cli(*args)
    assert result.code == 0, result
    (model,) = json.loads(result.out)["models"]
    assert model["error"] is None and model["trials"]["complete"] == 2
    assert np.isfinite(model["test_metrics"]["mape"])
    assert 1 <= model["best_params"]["epochs"] <= 3


CONTRACT_PARAMS = {**TRAINING, "epochs": 2, "scaler": "window", "dropout": 0.0}


class TestLSTMContract(ForecasterContract):
    model_name = "lstm"
    params = {**CONTRACT_PARAMS, "hidden_size": 8, "num_layers": 1, "bidirectional": False}


class TestTCNContract(ForecasterContract):
    model_name = "tcn"
    params = {**CONTRACT_PARAMS, "num_channels": "4-8", "kernel_size": 2}


class TestTransformerContract(ForecasterContract):
    model_name = "transformer"
    params = {
        **CONTRACT_PARAMS,
        "d_model": 8,
        "nhead": 2,
        "num_encoder_layers": 1,
        "num_decoder_layers": 1,
        "dim_feedforward": 16,
    }


def test_the_level_base_follows_a_fall_over_the_season_and_undoes_the_scaling():
    from mlforecast_cli.plugins._torch_training import base_values, level_season

    from mlforecast_cli.models.contract import Windows

    season, h = 4, 2
    fell = [100.0, 100, 100, 100, 10, 10, 10, 10]  # a tenth of its level a season later
    grew = [10.0, 10, 10, 10, 100, 100, 100, 100]
    x = np.array([fell, grew])
    seasonal = np.array([[10.0, 10.0], [100.0, np.nan]])  # one season back; unknown: last value
    loc, scale = np.array([50.0, 5.0]), np.array([20.0, 2.0])
    windows = Windows(
        x=(x - loc[:, None]) / scale[:, None],
        y=None,
        seasonal=(seasonal - loc[:, None]) / scale[:, None],
        features=np.zeros((2, h, 0)),
        calendar=np.zeros((2, h, 2)),
        series=np.array([0, 1]),
        loc=loc,
        scale=scale,
    )
    plain = base_values(windows) * scale[:, None] + loc[:, None]
    level = base_values(windows, season) * scale[:, None] + loc[:, None]
    assert np.allclose(plain, [[10, 10], [100, 100]])
    assert np.allclose(level, [[1, 1], [100, 100]])  # a fall of 10x; a rise is not followed
    task = task_info(load_dataset("walmart"), 13, seed=0, device="cpu", n_jobs=1)
    assert level_season({"base": "level"}, task) == 52 and level_season({}, task) == 0
    with pytest.raises(ValueError, match="base 'lvl' is not one of seasonal, level"):
        level_season({"base": "lvl"}, task)


def test_lr_decays_halve_the_rate_over_the_searched_epochs_and_the_refit_keeps_them(walmart):
    from mlforecast_cli.plugins._torch_training import NeuralTrainer, lr_decay

    factors = lr_decay({"lr_decays": 3}, 8)
    assert [factors(e) for e in range(1, 9)] == [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]
    assert lr_decay({"lr_decays": 0}, 8)(8) == 1.0
    refit = lr_decay({"lr_decays": 3, "decay_span": 8}, 4)  # the refit's 4 epochs of 8
    assert [refit(e) for e in range(1, 5)] == [1, 1, 0.5, 0.5]

    params = {**TINY["lstm"], "epochs": 8, "lr_decays": 3, "patience": 100, "residual": False}
    model = fit("lstm", walmart, params).model.trainer  # the network builder
    train, valid = windows(walmart, mode="train"), windows(walmart)
    _, _, task = walmart

    def trained(settings, *data):
        return NeuralTrainer(model.name, model.build_network, settings, task).fit(*data)

    searched = trained(params, train, valid)
    kept = searched.refit_params()
    assert kept == {"epochs": searched.best_epoch, "decay_span": 8} and searched.best_epoch >= 1
    again = trained({**params, **kept}, train)  # the refit: the kept epochs of the same schedule
    for name, tensor in searched.network.state_dict().items():
        assert torch.equal(tensor, again.network.state_dict()[name]), name


def test_valid_error_mape_is_the_kept_epochs_mape_over_every_nonzero_actual(walmart):
    params = {"epochs": 3, "patience": 5, "learning_rate": 0.01, "valid_error": "mape"}
    result = fit("lstm", walmart, params)
    trainer = result.model.trainer
    valid = windows(walmart)
    predicted = result.model.predict(valid) * valid.scale[:, None] + valid.loc[:, None]
    actual = valid.y * valid.scale[:, None] + valid.loc[:, None]
    kept = actual != 0
    error = np.mean(np.minimum(np.abs(predicted - actual)[kept] / np.abs(actual[kept]), 10.0))
    assert error == pytest.approx(min(v for _, _, v in trainer.history), rel=1e-4)
    with pytest.raises(TrialFailed, match="valid_error 'smape' is not one of wape, mape"):
        fit("lstm", walmart, {**params, "valid_error": "smape"})
