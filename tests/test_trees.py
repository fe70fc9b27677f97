"""The tree-model plugins (lightgbm, xgboost, catboost, random_forest) on the real Walmart panel.

Real fits with tiny round counts: shapes and finite values through the runner, the report
bridge per round, pruning in a real Optuna study, determinism, refit_params, the horizon
strategies and units, a real `mlf optimize`, and the shared plugin contract suite.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from mlforecast_cli.models.registry import Registry
from mlforecast_cli.testing import ForecasterContract

pytest.importorskip("lightgbm")
pytest.importorskip("xgboost")
pytest.importorskip("catboost")
pytest.importorskip("sklearn")

HORIZON = 13
TREES = ("lightgbm", "xgboost", "catboost", "random_forest")
ROUNDS = {"lightgbm": "n_estimators", "xgboost": "n_estimators", "catboost": "iterations"}
SMALL = {
    "lightgbm": {"n_estimators": 40, "learning_rate": 0.1, "num_leaves": 8, "subsample": 0.8},
    "xgboost": {"n_estimators": 40, "learning_rate": 0.1, "max_depth": 3, "subsample": 0.8},
    "catboost": {"iterations": 40, "learning_rate": 0.1, "depth": 4, "subsample": 0.8},
    "random_forest": {"n_estimators": 20, "max_depth": 6, "max_samples": 0.7},
}


@pytest.fixture(scope="module")
def panel():
    from mlforecast_cli.datasets import load_dataset

    return load_dataset("walmart")


@pytest.fixture(scope="module")
def entries():
    registry = Registry()
    return {name: registry.get(name) for name in TREES}


@pytest.fixture(scope="module")
def split(panel):
    from mlforecast_cli.data.split import split_panel

    return split_panel(panel, HORIZON, 1, min_train=31)


def task_for(panel, seed: int = 42):
    from mlforecast_cli.trials.fit import task_info

    return task_info(panel, HORIZON, seed=seed, device="cpu", n_jobs=1)


def params_for(entries, name: str, **extra) -> dict:
    """The space's fixed values, a small window, tiny round counts."""
    space = entries[name].load_space()
    return {**space.fixed, "window_size": 10, **SMALL[name], **extra}


def fit(entries, panel, split, name, *, report=None, seed=42, **extra):
    from mlforecast_cli.trials.fit import FitOptions, fit_and_score

    params = params_for(entries, name, **extra)
    options = FitOptions(report=report, train_metrics=False)
    end = split.folds[0].train_end
    return fit_and_score(entries[name], params, task_for(panel, seed), panel, end, options)


@pytest.mark.parametrize("name", TREES)
def test_fit_scores_every_series_and_step_and_reports_each_round(entries, panel, split, name):
    calls: list[tuple[int, float]] = []
    result = fit(entries, panel, split, name, report=lambda s, v: calls.append((s, v)))
    assert result.predictions.shape == (panel.n_series, HORIZON)
    assert np.isfinite(result.predictions).all()
    assert math.isfinite(result.metrics["mape"])
    assert result.metrics["mape"] < 20  # far from random on this panel
    steps = [s for s, _ in calls]
    assert steps == list(range(1, len(steps) + 1))  # one call per round (per batch for rf)
    assert all(math.isfinite(v) and v > 0 for _, v in calls)
    if name == "random_forest":
        assert len(steps) == SMALL[name]["n_estimators"] // 5  # trees_per_step: 5
    else:  # early stopping may stop before the last round, never after
        assert 1 <= len(steps) <= SMALL[name][ROUNDS[name]]
        # the reported value is the validation MAPE the runner then computes, at the best round
        best = result.refit_params[ROUNDS[name]]
        assert calls[best - 1][1] == pytest.approx(result.metrics["mape"], rel=1e-6)


@pytest.mark.parametrize("name", TREES)
def test_same_seed_same_forecast_other_seed_differs(entries, panel, split, name):
    a = fit(entries, panel, split, name).predictions
    b = fit(entries, panel, split, name).predictions
    np.testing.assert_array_equal(a, b)
    c = fit(entries, panel, split, name, seed=7).predictions
    assert not np.array_equal(a, c)  # subsampling does follow the seed


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "catboost"])
def test_refit_params_give_the_early_stopped_round_count(entries, panel, split, name):
    from mlforecast_cli.trials.fit import FitOptions, fit_and_score

    key = ROUNDS[name]
    result = fit(entries, panel, split, name, **{key: 300, "learning_rate": 0.3})
    rounds = result.refit_params[key]
    assert 1 <= rounds < 300  # a high learning rate overfits long before 300 rounds
    # the refit (no validation window) trains exactly that many rounds
    params = {**params_for(entries, name, **{key: 300, "learning_rate": 0.3}), key: rounds}
    refit = fit_and_score(
        entries[name],
        params,
        task_for(panel),
        panel,
        split.test_start,
        FitOptions(holdout=False, train_metrics=False),
    )
    assert refit.refit_params == {key: rounds}
    assert np.isfinite(refit.predictions).all()


def test_random_forest_refit_keeps_its_tree_count(entries, panel, split):
    result = fit(entries, panel, split, "random_forest")
    assert result.refit_params == {"n_estimators": SMALL["random_forest"]["n_estimators"]}
    assert len(result.model.models[0].estimators_) == SMALL["random_forest"]["n_estimators"]


@pytest.mark.parametrize(
    "extra",
    [
        {"strategy": "per_step"},
        {"level": "mean"},
        {"units": "scaled", "scaler": "window", "target": "seasonal_gap"},
        {"units": "scaled", "scaler": "series", "target": "direct"},
        {"target": "last_gap", "transform": "none", "series_id": True, "stop_on": "metric"},
    ],
    ids=[
        "per_step",
        "mean-level",
        "scaled-window-seasonal_gap",
        "scaled-series-direct",
        "last_gap-untransformed-series_id",
    ],
)
def test_other_strategy_units_and_target(entries, panel, split, extra):
    result = fit(entries, panel, split, "lightgbm", **extra)
    assert result.predictions.shape == (panel.n_series, HORIZON)
    assert np.isfinite(result.predictions).all()
    assert result.metrics["mape"] < 20
    if extra.get("strategy") == "per_step":
        assert len(result.model.models) == HORIZON
        assert set(result.refit_params) == {"n_estimators"}


def test_relative_view_keeps_original_units_and_handles_zero_windows(panel, split):
    from dataclasses import replace

    from mlforecast_cli.plugins._tabular import relative_view

    from mlforecast_cli.data.windows import make_windows

    windows = make_windows(panel, split.folds[0].train_end, 10, HORIZON, mode="train")
    view = relative_view(windows)
    for a, b in ((windows.x, view.x), (windows.y, view.y), (windows.seasonal, view.seasonal)):
        original = a * windows.scale[:, None] + windows.loc[:, None]
        np.testing.assert_allclose(b * view.scale[:, None] + view.loc[:, None], original)
    assert np.allclose(np.median(view.x, axis=1), 1.0)  # sales are positive here
    x = windows.x.copy()
    x[0] = -windows.loc[0] / windows.scale[0]  # an all-zero window (original units)
    x[1, :6] = -windows.loc[1] / windows.scale[1]  # a mostly-zero one
    zeros = relative_view(replace(windows, x=x))
    assert zeros.scale[0] == 1.0
    assert zeros.scale[1] > 0 and np.isfinite(zeros.x[1]).all()


def test_random_forest_grows_each_tree_on_at_most_max_tree_rows(entries, panel, split):
    """The cap keeps a forest's cost flat on large panels: each tree sees max_tree_rows draws."""
    whole = fit(entries, panel, split, "random_forest", max_samples=1.0)
    rows = whole.model.models[0].estimators_[0].tree_.weighted_n_node_samples[0]
    assert rows > 5_000  # a bootstrap of every stacked row
    capped = fit(entries, panel, split, "random_forest", max_samples=1.0, max_tree_rows=500)
    trees = capped.model.models[0].estimators_
    assert {t.tree_.weighted_n_node_samples[0] for t in trees} == {500.0}
    assert capped.metrics["mape"] < 20


def test_gap_clip_bounds_what_the_forest_learns_of_a_gap_and_leaves_direct_alone(
    entries, panel, split
):
    """Clipped gap labels: no leaf, so no forecast, moves the seasonal naive by more than the
    clip (in the model's units); a direct target is learned as it is."""
    from mlforecast_cli.plugins._tabular import stacked_matrix

    clip = 0.02
    gap = fit(entries, panel, split, "random_forest", target="seasonal_gap", gap_clip=clip)
    model = gap.model
    leaves = np.concatenate([t.tree_.value.ravel() for t in model.models[0].estimators_])
    assert np.abs(leaves).max() <= clip + 1e-12
    view = model._view(gap.windows)
    raw = model.models[0].predict(stacked_matrix(view, series_id=model.series_id)[0])
    assert np.abs(raw).max() <= clip + 1e-12 and np.abs(raw).max() > clip / 2
    unclipped = fit(entries, panel, split, "random_forest", target="seasonal_gap")
    assert np.abs(unclipped.model.models[0].estimators_[0].tree_.value).max() > clip
    direct = fit(entries, panel, split, "random_forest", target="direct", gap_clip=clip)
    assert np.abs(direct.model.models[0].estimators_[0].tree_.value).max() > 10 * clip


@pytest.mark.parametrize("value", [0, -0.1, "wide", float("inf")])
def test_gap_clip_must_be_a_positive_number(entries, panel, value):
    with pytest.raises(ValueError, match="gap_clip must be a positive number, got"):
        entries["random_forest"].create({"gap_clip": value}, task_for(panel))


def test_max_train_rows_learns_from_a_seeded_draw_of_that_many_rows(entries, panel, split):
    """Stacked rows of overlapping windows repeat each other: the cap bounds a fit's cost."""
    model = entries["lightgbm"].create({"max_train_rows": 3_000}, task_for(panel))
    finite = np.ones(10_000, dtype=bool)
    finite[:100] = False
    kept = model._kept_rows(finite)
    assert kept.sum() == 3_000 and not kept[:100].any()
    np.testing.assert_array_equal(kept, model._kept_rows(finite))  # seeded
    assert model._kept_rows(finite[:2_000]).sum() == 1_900  # under the cap: every finite row
    whole = fit(entries, panel, split, "lightgbm")
    capped = fit(entries, panel, split, "lightgbm", max_train_rows=3_000)
    again = fit(entries, panel, split, "lightgbm", max_train_rows=3_000)
    np.testing.assert_array_equal(capped.predictions, again.predictions)
    assert not np.array_equal(capped.predictions, whole.predictions)
    assert capped.metrics["mape"] < 20


def test_log_offset_makes_equal_relative_errors_equal_distances(entries, panel):
    """With a small log_offset, 10 % above a trough is as far as 10 % above a peak."""
    values = np.array([[-2.0, 0.0, 0.2, 0.22, 2.0, 2.2]])
    small = entries["lightgbm"].create({"transform": "log", "log_offset": 0.01}, task_for(panel))
    np.testing.assert_allclose(small._from(small._to(values)), values)
    t = small._to(values)[0]
    assert t[1] == 0.0 and t[0] < 0
    assert abs((t[3] - t[2]) - (t[5] - t[4])) < 0.01
    default = entries["lightgbm"].create({"transform": "log"}, task_for(panel))
    d = default._to(values)[0]
    assert (d[3] - d[2]) < 0.3 * (d[5] - d[4])  # log(1 + v): 10 % of a trough weighs a quarter


@pytest.mark.parametrize("key", ["max_train_rows", "log_offset"])
@pytest.mark.parametrize("value", [0, -5, "many"])
def test_max_train_rows_and_log_offset_must_be_positive(entries, panel, key, value):
    with pytest.raises(ValueError, match=f"{key} must be a positive number, got"):
        entries["lightgbm"].create({key: value}, task_for(panel))


def test_unknown_strategy_is_a_clear_error(entries, panel):
    with pytest.raises(ValueError, match="strategy 'nope' is not one of stacked, per_step"):
        entries["lightgbm"].create({"strategy": "nope"}, task_for(panel))


@pytest.mark.parametrize("name", ["lightgbm", "catboost", "random_forest"])
def test_threshold_pruner_stops_a_real_trial_at_its_warmup(entries, panel, name):
    """Through the real runner: report → trial.report → TrialPruned, and training stops."""
    import optuna

    from mlforecast_cli.trials.optuna_study import StudyConfig
    from tests.studies import run_trials

    pins = [f"{k}={v}" for k, v in SMALL[name].items()] + ["window_size=10"]
    pins.append("optimizer.pruner={type: ThresholdPruner, upper: 0.0, n_warmup_steps: 3}")
    space = entries[name].load_space().override(pins)
    config = StudyConfig.of(name, f"prune-{name}", space, horizon=HORIZON)
    study = run_trials(entries[name], panel, config, n_trials=1)
    [trial] = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert sorted(trial.intermediate_values) == [1, 2, 3]  # stopped at the first step allowed


def test_a_trial_leaves_no_cyclic_garbage_of_the_model_library(entries, panel, monkeypatch):
    """LightGBM's callbacks and ctypes handles sit in reference cycles that keep memory until
    a full collection: trials collect them (here every trial), so a study's memory stays flat."""
    import gc

    from mlforecast_cli.trials import objective as objective_module
    from mlforecast_cli.trials.optuna_study import StudyConfig
    from tests.studies import objective_for, run_trials

    monkeypatch.setattr(objective_module, "COLLECT_EVERY", 0.0)
    pins = [f"{k}={v}" for k, v in SMALL["lightgbm"].items()] + ["window_size=10"]
    space = entries["lightgbm"].load_space().override(pins)
    config = StudyConfig.of("lightgbm", "gc", space, horizon=HORIZON)
    objective = objective_for(entries["lightgbm"], panel, config)
    gc.disable()  # only the objective's own collection may run
    try:
        run_trials(entries["lightgbm"], panel, config, n_trials=2, objective=objective)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = {f"{type(o).__module__}.{type(o).__name__}" for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    # without the collection: lightgbm.callback._EarlyStoppingCallback, ctypes pointers...
    assert not {t for t in left if t.startswith(("lightgbm.", "ctypes."))}, sorted(left)


def test_median_pruner_waits_ten_rounds(entries, panel):
    """The default pruner (MedianPruner, n_warmup_steps=10): prunes, but never before round 10."""
    import optuna

    from mlforecast_cli.trials.optuna_study import StudyConfig
    from tests.studies import run_trials

    space = (
        entries["lightgbm"]
        .load_space()
        .override(["n_estimators=60", "optimizer.pruner.n_startup_trials=2", "window_size=10"])
    )
    config = StudyConfig.of("lightgbm", "median", space, horizon=HORIZON)
    study = run_trials(entries["lightgbm"], panel, config, n_trials=8)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done and pruned
    assert all(max(t.intermediate_values) >= 10 for t in pruned)


def test_mlf_optimize_lightgbm(cli, mlflow_uri):
    result = cli("optimize", "lightgbm", "--trials", "3", "--set", "n_estimators=60", "--json")
    assert result.code == 0, result
    [model] = json.loads(result.out)["models"]
    assert model["model"] == "lightgbm" and model["error"] is None
    assert sum(model["trials"].values()) == 3
    assert math.isfinite(model["best_value"])
    assert math.isfinite(model["test_metrics"]["mape"])
    assert 1 <= model["best_params"]["n_estimators"] <= 60  # what early stopping chose


def test_plugin_modules_import_no_model_library():
    code = (
        "import sys\n"
        "import mlforecast_cli.plugins.lightgbm, mlforecast_cli.plugins.xgboost\n"
        "import mlforecast_cli.plugins.catboost, mlforecast_cli.plugins.random_forest\n"
        "heavy = {'lightgbm', 'xgboost', 'catboost', 'sklearn', 'numpy', 'pandas', 'optuna'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


class TestLightGBMContract(ForecasterContract):
    model_name = "lightgbm"
    params = {"n_estimators": 30}


class TestXGBoostContract(ForecasterContract):
    model_name = "xgboost"
    params = {"n_estimators": 30}


class TestCatBoostContract(ForecasterContract):
    model_name = "catboost"
    params = {"iterations": 30}


class TestRandomForestContract(ForecasterContract):
    model_name = "random_forest"
    params = {"n_estimators": 20}


def test_log_transform_round_trips_and_padded_lags_are_missing(entries, panel):
    from dataclasses import replace

    from mlforecast_cli.plugins._tabular import stacked_matrix

    from mlforecast_cli.data.windows import make_windows

    model = entries["lightgbm"].create({"transform": "log"}, task_for(panel))
    values = np.array([[-3.0, 0.0, 0.5, 20.0]])
    np.testing.assert_allclose(model._from(model._to(values)), values)
    assert model._to(values)[0, 1] == 0.0 and model._to(values)[0, 0] < 0

    windows = make_windows(panel, np.full(panel.n_series, 20), 10, HORIZON, mode="eval")
    short = replace(windows, observed=np.full(len(windows), 3))
    X, names = stacked_matrix(short, series_id=False)
    assert X.dtype == np.float32 and "series" not in names
    lags = [names.index(f"lag_{k}") for k in range(1, 11)]
    assert np.isfinite(X[:, lags[:3]]).all() and np.isnan(X[:, lags[3:]]).all()


@pytest.mark.parametrize(
    "key,value", [("transform", "sqrt"), ("stop_on", "never"), ("gap_loss", "l1")]
)
def test_unknown_transform_or_stop_is_a_clear_error(entries, panel, key, value):
    with pytest.raises(ValueError, match=f"{key} '{value}' is not one of"):
        entries["lightgbm"].create({key: value}, task_for(panel))


def test_huber_training_stops_on_the_huber_loss_with_the_delta_given(entries, panel, split):
    from mlforecast_cli.plugins._tabular import EvalSet

    y = np.array([0.0, 0.0, 0.0, 0.0])
    raw = np.array([0.05, -0.05, 2.0, 0.0])  # one far-off point
    assert EvalSet(None, y, None).loss(raw) == pytest.approx((0.0025 * 2 + 4.0) / 4)
    huber = EvalSet(None, y, None, huber_delta=0.1).loss(raw)
    assert huber == pytest.approx((0.5 * 0.0025 * 2 + 0.1 * (2.0 - 0.05)) / 4)
    model = entries["lightgbm"].create({"objective": "huber", "huber_delta": 0.3}, task_for(panel))
    assert model.robust_loss and model.huber_delta == 0.3
    assert not entries["lightgbm"].create({}, task_for(panel)).robust_loss
    gap = {"target": "seasonal_gap", "gap_loss": "huber"}
    for name, loss in (("lightgbm", "huber"), ("catboost", "Huber")):
        assert entries[name].create(gap, task_for(panel)).objective() == loss
        direct = entries[name].create({**gap, "target": "direct"}, task_for(panel))
        assert not direct.robust_loss
    result = fit(entries, panel, split, "lightgbm", gap_loss="huber", target="seasonal_gap")
    assert np.isfinite(result.predictions).all() and result.metrics["mape"] < 20
    assert result.refit_params["n_estimators"] >= 1


def test_train_metrics_are_computed_on_a_seeded_draw_of_the_training_windows(
    entries, panel, split, monkeypatch
):
    from mlforecast_cli.data.windows import Draw, train_windows
    from mlforecast_cli.trials import fit as fit_module
    from mlforecast_cli.trials.scoring import score

    monkeypatch.setattr(fit_module, "MAX_TRAIN_METRIC_WINDOWS", 50)
    params = params_for(entries, "lightgbm")
    end = split.folds[0].train_end
    result = fit_module.fit_and_score(entries["lightgbm"], params, task_for(panel), panel, end)
    drawn = train_windows(panel, end, 10, HORIZON, scaler="none", draw=Draw(50, 42))
    assert len(drawn) == 50
    _, expected = score(panel, drawn, np.asarray(result.model.predict(drawn), dtype=float), end)
    assert result.train_metrics == pytest.approx(expected)


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "catboost"])
def test_target_is_searched_and_a_gap_trial_learns_with_huber(entries, panel, name):
    """The boosters' spaces search the target (direct or the level-adjusted seasonal gap, a gap
    learned with the library's Huber loss); CatBoost's study starts from the direct target."""
    from mlforecast_cli.trials.optuna_study import StudyConfig
    from tests.studies import run_trials

    space = entries[name].load_space()
    assert space.params["target"].to_dict()["choices"] == ["direct", "level_gap"]
    assert space.fixed["gap_loss"] == "huber"
    pins = [f"{k}={v}" for k, v in SMALL[name].items()] + ["window_size=10"]
    config = StudyConfig.of(name, f"target-{name}", space.override(pins), horizon=HORIZON)
    study = run_trials(entries[name], panel, config, n_trials=1)
    [trial] = study.trials
    assert trial.state.name == "COMPLETE"
    if name == "catboost":
        assert space.first_trial() == {"target": "direct"}
        assert trial.params["target"] == "direct"
    model = entries[name].create(
        {**params_for(entries, name), "target": "level_gap"}, task_for(panel)
    )
    assert model.robust_loss and model.objective() == model.huber_objective


def _windows(x: np.ndarray, seasonal: np.ndarray):
    """Windows of the given inputs and season-back values, in original units."""
    from mlforecast_cli.models.contract import Windows

    n, h = seasonal.shape
    return Windows(
        x=x,
        y=None,
        seasonal=seasonal,
        features=np.zeros((n, h, 0)),
        calendar=np.zeros((n, h, 0)),
        series=np.arange(n),
        loc=np.zeros(n),
        scale=np.ones(n),
    )


def test_level_naive_follows_a_fall_in_level_and_never_a_rise():
    """The level_gap anchor: last season's values times the fall of the level over the last
    season (the last 4 inputs against the same 4 one season before); a rise, a window too
    short to see a season back, or an unknown season-back value leaves the seasonal naive."""
    from mlforecast_cli.plugins._tabular import level_growth, level_naive

    season = 4
    fell = np.array([10.0, 10, 10, 10, 1, 1, 1, 1])  # a tenth of the level one season before
    rose = np.array([1.0, 1, 1, 1, 2, 2, 2, 2])
    seasonal = np.array([[10.0, 20, np.nan], [1.0, 2, np.nan]])
    windows = _windows(np.stack([fell, rose]), seasonal)
    np.testing.assert_allclose(level_growth(windows, season)[:, 0], [0.1, 2.0])
    np.testing.assert_allclose(level_naive(windows, season), [[1.0, 2, 1], [1.0, 2, 2]])
    short = _windows(np.stack([fell, rose])[:, -7:], seasonal)  # 7 < season + 4 inputs
    np.testing.assert_allclose(level_naive(short, season), [[10.0, 20, 1], [1.0, 2, 2]])


def test_level_gap_is_the_seasonal_gap_where_no_season_back_is_in_the_window(entries, panel, split):
    """Weekly Walmart (season 52) with a 10-week window: no fall can be measured, so the
    level_gap trial forecasts exactly what the seasonal_gap one does."""
    seasonal = fit(entries, panel, split, "lightgbm", target="seasonal_gap")
    level = fit(entries, panel, split, "lightgbm", target="level_gap")
    np.testing.assert_array_equal(level.predictions, seasonal.predictions)


def test_level_gap_forecasts_series_that_collapsed_at_their_new_level():
    """M1 monthly's MND series include several that fell to a tenth or less of their level a
    year before validation: the seasonal naive, and a tree anchored on it, forecast them at
    last year's level, errors of thousands of percent. Anchored on the fallen level, the
    same configuration's validation MAPE is far lower (docs/trees.md, issue 26)."""
    import pandas as pd

    from mlforecast_cli.data.panel import Columns, load_panel
    from mlforecast_cli.data.split import split_panel
    from mlforecast_cli.trials.fit import FitOptions, fit_and_score, task_info

    frame = pd.read_csv("/work/shared/datasets/m1_monthly.csv")
    frame = frame[frame["id"].str.startswith("MND")]
    m1 = load_panel(frame, Columns(target="value", time="date", ids=("id",)), source="mnd")
    end = split_panel(m1, 18, 1).folds[0].train_end
    entry = Registry().get("lightgbm")
    task = task_info(m1, 18, seed=42, device="cpu", n_jobs=1)
    options = FitOptions(report=None, train_metrics=False)
    base = {**entry.load_space().fixed, **SMALL["lightgbm"], "window_size": 24}
    mape = {
        target: fit_and_score(entry, {**base, "target": target}, task, m1, end, options).metrics[
            "mape"
        ]
        for target in ("seasonal_gap", "level_gap")
    }
    assert mape["level_gap"] < 0.5 * mape["seasonal_gap"], mape  # 22 against 150 when written


def test_tree_windows_reach_at_most_half_the_median_history(tmp_path):
    """On short series the trees' window_size range stops at half the median series' points
    before validation; on long ones, and for a range the user sets, it is the space's."""
    import pandas as pd

    from mlforecast_cli.data.panel import Columns, load_panel
    from mlforecast_cli.models.registry import get_registry
    from mlforecast_cli.optimize.plan import OptimizeConfig, plan_study
    from mlforecast_cli.trials.optuna_study import StudySettings

    def panel(lengths):
        rng = np.random.default_rng(0)
        rows = [
            (f"s{i}", date, 100 + 10 * math.sin(t) + rng.normal())
            for i, n in enumerate(lengths)
            for t, date in enumerate(pd.date_range("2000-01-01", periods=n, freq="MS"))
        ]
        return load_panel(
            pd.DataFrame(rows, columns=["id", "date", "y"]), Columns("y", "date", ("id",))
        )

    def window(lengths, *assignments):
        config = OptimizeConfig(StudySettings(horizon=6), "p", "e", 5, assignments=assignments)
        return plan_study(registry.get(name), config, panel(lengths))[0].space.params["window_size"]

    registry = get_registry()
    for name in ("lightgbm", "xgboost", "catboost", "random_forest"):
        assert registry.get(name).load_space().params["window_size"].high == 30
        assert window([40, 41, 45, 80, 100]).high == 16  # median 45 - 2 x 6 = 33 before validation
        assert window([40, 41, 45, 80, 100]).low == 7
        assert window([90, 100, 120]).high == 30
        assert window([40, 41, 45, 80, 100], "window_size=7..30").high == 30
