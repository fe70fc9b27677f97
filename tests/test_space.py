"""Tests for mlforecast_cli.search.space: validation, loading, Optuna bridging, overrides, YAML."""

from __future__ import annotations

import copy
import importlib.resources
import re
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mlforecast_cli.errors import SpaceError, UsageError
from mlforecast_cli.search.space import (
    DEFAULT_OPTIMIZER,
    METRIC_NAMES,
    Param,
    SearchSpace,
    build_pruner,
    build_sampler,
    load_space,
    parse_space,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

SRC = "spaces/test.yaml"
BASE: dict[str, Any] = {
    "description": "a test space",
    "params": {
        "learning_rate": {"type": "float", "low": 0.001, "high": 0.3, "log": True},
        "num_leaves": {"type": "int", "low": 8, "high": 128, "step": 8},
        "window_size": {"type": "int", "low": 7, "high": 30},
        "boosting": {"type": "categorical", "choices": ["gbdt", "dart"]},
    },
    "fixed": {"n_estimators": 500, "lags": [1, 7]},
    "optimizer": {"metric": "mape", "direction": "minimize"},
}
LIGHTGBM_YAML = """\
# spaces/lightgbm.yaml
params:
  learning_rate: {type: float, low: 1e-3, high: 0.3, log: true}
  num_leaves: {type: int, low: 8, high: 128, step: 8}
  window_size: {type: int, low: 7, high: 30}
  boosting: {type: categorical, choices: [gbdt, dart]}
fixed:
  n_estimators: 500
optimizer:
  metric: mape
  direction: minimize
  sampler: {type: TPESampler, n_startup_trials: 10, seed: 42}
  pruner: {type: MedianPruner, n_startup_trials: 5, n_warmup_steps: 10}
"""


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def space() -> SearchSpace:
    return parse_space(base(), SRC)


def with_param(name: str, spec: Any) -> dict[str, Any]:
    data = base()
    data["params"][name] = spec
    return data


def with_optimizer(**block: Any) -> dict[str, Any]:
    data = base()
    data["optimizer"].update(block)
    return data


def expect_error(data: Any, *fragments: str, source: str = SRC) -> str:
    with pytest.raises(SpaceError) as info:
        parse_space(data, source)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(source)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# --------------------------------------------------------------------------- parsing


def test_parse_valid_space() -> None:
    s = space()
    assert s.source == SRC
    assert s.description == "a test space"
    assert s.n_params == 4
    assert s.metric == "mape"
    assert s.direction == "minimize"
    assert s.params["num_leaves"] == Param("num_leaves", "int", 8, 128, 8)
    assert s.params["learning_rate"] == Param("learning_rate", "float", 0.001, 0.3, None, True)
    assert s.params["boosting"].choices == ("gbdt", "dart")
    assert s.fixed == {"n_estimators": 500, "lags": [1, 7]}
    assert s.optimizer == DEFAULT_OPTIMIZER


def test_optimizer_defaults_merge_with_file_block() -> None:
    data = base()
    data["optimizer"] = {"metric": "RMSE", "pruner": {"type": "NopPruner"}}
    s = parse_space(data, SRC)
    assert s.metric == "rmse"
    assert s.optimizer["sampler"] == DEFAULT_OPTIMIZER["sampler"]
    assert s.optimizer["pruner"] == {"type": "NopPruner"}
    assert parse_space({"fixed": {"a": 1}}, SRC).optimizer == DEFAULT_OPTIMIZER


def test_number_like_strings_are_converted() -> None:
    data = with_param("lr", {"type": "float", "low": "1e-3", "high": "1E-1", "log": True})
    data["params"]["n"] = {"type": "int", "low": "2", "high": 10.0, "step": "2"}
    s = parse_space(data, SRC)
    assert s.params["lr"].low == 0.001 and s.params["lr"].high == 0.1
    assert s.params["n"] == Param("n", "int", 2, 10, 2)
    assert isinstance(s.params["n"].high, int)


def test_optimizer_numbers_in_every_metric_are_accepted() -> None:
    for metric in METRIC_NAMES:
        assert parse_space(with_optimizer(metric=metric), SRC).metric == metric


INVALID = [
    ("not-a-mapping", ["a", "b"], "expected a mapping"),
    ("empty", None, "empty"),
    ("unknown-top", {**BASE, "parms": {}}, "parms: unknown top-level key; did you mean 'params'"),
    ("top-level-param", {**BASE, "learning_rate": 1}, "learning_rate: unknown top-level key"),
    ("description-type", {**BASE, "description": ["x"]}, "description: expected a string"),
    ("params-list", {**BASE, "params": ["lr"]}, "params: expected a mapping"),
    ("fixed-list", {**BASE, "fixed": [1]}, "fixed: expected a mapping"),
    ("param-scalar", with_param("lr", 0.1), "params.lr: expected a mapping"),
    (
        "unknown-param-key",
        with_param("lr", {"type": "float", "low": 0.1, "hgih": 1}),
        "params.lr.hgih: unknown key; did you mean 'high'?",
    ),
    ("missing-type", with_param("lr", {"low": 0.1, "high": 1}), "params.lr.type: missing"),
    (
        "unknown-type",
        with_param("lr", {"type": "integer", "low": 1, "high": 2}),
        "params.lr.type: unknown type 'integer'; did you mean 'int'?",
    ),
    ("missing-low", with_param("lr", {"type": "float", "high": 1}), "params.lr.low: missing"),
    ("missing-high", with_param("n", {"type": "int", "low": 1}), "params.n.high: missing"),
    (
        "low-gt-high",
        with_param("lr", {"type": "float", "low": 2, "high": 1}),
        "params.lr: low 2.0 is greater than high 1.0",
    ),
    (
        "log-low-zero",
        with_param("lr", {"type": "float", "low": 0, "high": 1, "log": True}),
        "params.lr.low: is 0.0 but log: true needs low > 0",
    ),
    (
        "log-int-low-zero",
        with_param("n", {"type": "int", "low": 0, "high": 10, "log": True}),
        "params.n.low: is 0 but log: true needs low > 0",
    ),
    (
        "log-with-step",
        with_param("lr", {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}),
        "params.lr.step: cannot be combined with log: true",
    ),
    (
        "log-with-int-step",
        with_param("n", {"type": "int", "low": 1, "high": 9, "log": True, "step": 2}),
        "params.n.step: cannot be combined with log",
    ),
    (
        "step-zero",
        with_param("n", {"type": "int", "low": 1, "high": 9, "step": 0}),
        "params.n.step: must be greater than 0",
    ),
    (
        "step-negative",
        with_param("x", {"type": "float", "low": 1, "high": 9, "step": -0.5}),
        "params.x.step: must be greater than 0",
    ),
    (
        "step-misfit-int",
        with_param("n", {"type": "int", "low": 8, "high": 101, "step": 8}),
        "params.n.step: high - low = 93 is not a multiple of step 8; "
        "the nearest valid high is 104 (or 96)",
    ),
    (
        "step-misfit-float",
        with_param("x", {"type": "float", "low": 0.1, "high": 0.52, "step": 0.1}),
        "params.x.step: high - low = 0.42 is not a multiple of step 0.1; "
        "the nearest valid high is 0.5 (or 0.6)",
    ),
    (
        "int-fractional-low",
        with_param("n", {"type": "int", "low": 1.5, "high": 9}),
        "params.n.low: 1.5 is not a whole number",
    ),
    (
        "int-fractional-step",
        with_param("n", {"type": "int", "low": 1, "high": 9, "step": 0.5}),
        "params.n.step: 0.5 is not a whole number",
    ),
    (
        "bool-low",
        with_param("n", {"type": "int", "low": True, "high": 9}),
        "params.n.low: is a bool (true), not a number",
    ),
    (
        "string-high",
        with_param("x", {"type": "float", "low": 0, "high": "big"}),
        "params.x.high: expected a number, got the string 'big'",
    ),
    (
        "list-low",
        with_param("x", {"type": "float", "low": [0], "high": 1}),
        "params.x.low: expected a number, got a list",
    ),
    (
        "infinite-high",
        with_param("x", {"type": "float", "low": 0, "high": float("inf")}),
        "params.x.high: must be a finite number",
    ),
    (
        "log-not-bool",
        with_param("x", {"type": "float", "low": 1, "high": 2, "log": "yes please"}),
        "params.x.log: expected true or false",
    ),
    (
        "choices-missing",
        with_param("c", {"type": "categorical"}),
        "params.c.choices: missing",
    ),
    (
        "choices-empty",
        with_param("c", {"type": "categorical", "choices": []}),
        "params.c.choices: is empty",
    ),
    (
        "choices-not-list",
        with_param("c", {"type": "categorical", "choices": "gbdt"}),
        "params.c.choices: expected a list",
    ),
    (
        "choices-nested-list",
        with_param("c", {"type": "categorical", "choices": [[1, 7], [1, 7, 14]]}),
        "params.c.choices[0]: [1, 7] is a list; Optuna choices must be scalars",
    ),
    (
        "choices-mapping",
        with_param("c", {"type": "categorical", "choices": ["a", {"b": 1}]}),
        "params.c.choices[1]: {'b': 1} is a mapping",
    ),
    (
        "choices-duplicate",
        with_param("c", {"type": "categorical", "choices": ["a", "b", "a"]}),
        "params.c.choices[2]: 'a' repeats an earlier choice",
    ),
    (
        "choices-on-float",
        with_param("x", {"type": "float", "low": 0, "high": 1, "choices": [0, 1]}),
        "params.x.choices: 'choices' applies to type: categorical",
    ),
    (
        "low-on-categorical",
        with_param("c", {"type": "categorical", "choices": [1, 2], "low": 1}),
        "params.c.low: 'low' applies to type: int or float",
    ),
    (
        "log-on-categorical",
        with_param("c", {"type": "categorical", "choices": [1, 2], "log": True}),
        "params.c.log: 'log' applies",
    ),
    (
        "param-and-fixed",
        {**BASE, "fixed": {"window_size": 14}},
        "fixed.window_size: is also under params",
    ),
    ("non-string-name", with_param(3, {"type": "int", "low": 1, "high": 2}), "params.3: names"),
    (
        "history-share-zero",
        with_param("w", {"type": "int", "low": 7, "high": 30, "history_share": 0}),
        "params.w.history_share: expected a share between 0 and 1",
    ),
    (
        "history-share-text",
        with_param("w", {"type": "int", "low": 7, "high": 30, "history_share": "half"}),
        "params.w.history_share: expected a share between 0 and 1 of the median series' history",
    ),
    (
        "history-share-above-one",
        with_param("w", {"type": "int", "low": 7, "high": 30, "history_share": 1.5}),
        "params.w.history_share: expected a share between 0 and 1",
    ),
    (
        "history-share-on-categorical",
        with_param("c", {"type": "categorical", "choices": [1, 2], "history_share": 0.5}),
        "params.c.history_share: 'history_share' applies to type: int or float",
    ),
    (
        "horizon-searched",
        with_param("horizon", {"type": "int", "low": 1, "high": 28}),
        "params.horizon: the horizon is a property of the task",
    ),
    ("optimizer-list", {**BASE, "optimizer": ["mape"]}, "optimizer: expected a mapping"),
    (
        "optimizer-unknown-key",
        with_optimizer(metrc="mae"),
        "optimizer.metrc: unknown key; did you mean 'metric'?",
    ),
    (
        "unknown-metric",
        with_optimizer(metric="mse"),
        "optimizer.metric: unknown metric 'mse'; did you mean",
    ),
    ("metric-number", with_optimizer(metric=3), "optimizer.metric: unknown metric 3"),
    (
        "bad-direction",
        with_optimizer(direction="down"),
        "optimizer.direction: must be minimize or maximize",
    ),
    ("sampler-string", with_optimizer(sampler="TPE"), "optimizer.sampler: expected a mapping"),
    (
        "sampler-no-type",
        with_optimizer(sampler={"seed": 1}),
        "optimizer.sampler.type: missing",
    ),
    (
        "pruner-null",
        with_optimizer(pruner=None),
        "optimizer.pruner: expected a mapping like {type: MedianPruner, ...}, got None; "
        "{type: NopPruner} disables pruning",
    ),
    ("pruner-no-type", with_optimizer(pruner={}), "optimizer.pruner.type: missing"),
    (
        "first-trial-list",
        with_optimizer(first_trial=["Z"]),
        "optimizer.first_trial: expected a mapping of param: value",
    ),
]


@pytest.mark.parametrize(
    ("data", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_spaces(data: Any, fragment: str) -> None:
    message = expect_error(data, fragment)
    assert re.match(re.escape(SRC) + r": ", message)


def test_space_error_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        parse_space({"params": 1}, SRC)
    assert info.value.exit_code == 2


def test_valid_edge_cases() -> None:
    data = with_param("n", {"type": "int", "low": 1, "high": 64, "log": True, "step": 1})
    data["params"]["same"] = {"type": "float", "low": 0.5, "high": 0.5}
    data["params"]["c"] = {"type": "categorical", "choices": [None, True, 1.5, "x"]}
    data["params"]["q"] = {"type": "float", "low": 0.1, "high": 0.5, "step": 0.1}
    data["fixed"] = None
    s = parse_space(data, SRC)
    assert s.params["n"].log and s.params["c"].choices == (None, True, 1.5, "x")
    assert s.fixed == {}


def test_history_share_lowers_high_to_the_data_and_never_under_low() -> None:
    spec = {"type": "int", "low": 7, "high": 30, "history_share": 0.5}
    space = parse_space(with_param("w", spec), SRC)
    assert space.fitted_to_history(100.0) is space  # half of 100 holds the whole range
    assert space.fitted_to_history(33.0).params["w"].high == 16
    assert space.fitted_to_history(33.0).params["w"].low == 7
    assert space.fitted_to_history(6.0).params["w"].high == 7  # a range of one value
    stepped = {"type": "int", "low": 8, "high": 40, "step": 4, "history_share": 0.5}
    fitted = parse_space(with_param("w", stepped), SRC).fitted_to_history(45.0)
    assert fitted.params["w"].high == 20  # 22.5 taken down to a whole step above low
    assert fitted.params["w"].distribution().high == 20
    floats = {"type": "float", "low": 0.1, "high": 0.9, "history_share": 0.01}
    assert parse_space(with_param("f", floats), SRC).fitted_to_history(50.0).params["f"].high == 0.5
    assert parse_space(with_param("w", spec), SRC).to_dict()["params"]["w"]["history_share"] == 0.5


def test_a_range_set_by_the_user_is_searched_as_given() -> None:
    spec = {"type": "int", "low": 7, "high": 30, "history_share": 0.5}
    space = parse_space(with_param("w", spec), SRC)
    assert space.override(["w=7..40"]).fitted_to_history(20.0).params["w"].high == 40
    assert space.override(["params.w.low=8"]).fitted_to_history(20.0).params["w"].high == 10


# --------------------------------------------------------------------------- loading


def test_load_from_path_and_str(tmp_path: Path) -> None:
    path = tmp_path / "lightgbm.yaml"
    path.write_text(LIGHTGBM_YAML)
    for ref in (path, str(path)):
        s = load_space(ref)
        assert s.source == str(path)
        assert s.params["learning_rate"].low == 0.001
        assert s.fixed == {"n_estimators": 500}


@pytest.fixture
def resource_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    package = tmp_path / "mlf_tmp_spaces_pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "lightgbm.yaml").write_text(LIGHTGBM_YAML)
    (package / "sub" / "nested.yaml").write_text("fixed: {a: 1}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package.name
    sys.modules.pop(package.name, None)


def test_load_from_package_resource(resource_package: str) -> None:
    s = load_space(f"{resource_package}:lightgbm.yaml")
    assert s.source == f"{resource_package}:lightgbm.yaml"
    assert s.n_params == 4
    assert load_space(f"{resource_package}:sub/nested.yaml").fixed == {"a": 1}
    traversable = importlib.resources.files(resource_package) / "lightgbm.yaml"
    assert load_space(traversable).params == s.params


def test_load_missing(tmp_path: Path, resource_package: str) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpaceError, match=re.escape(f"{missing}: file not found")):
        load_space(missing)
    with pytest.raises(SpaceError, match="has no resource 'nope.yaml'"):
        load_space(f"{resource_package}:nope.yaml")
    with pytest.raises(SpaceError, match="package 'no_such_pkg_xyz' is not installed"):
        load_space("no_such_pkg_xyz:a.yaml")
    with pytest.raises(SpaceError, match="not found"):
        load_space(importlib.resources.files(resource_package) / "nope.yaml")
    with pytest.raises(SpaceError, match="is a directory"):
        load_space(tmp_path)


def test_load_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("params:\n  lr: {type: float, low: 0.1\n  n: 3\nfixed: [\n")
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 3, column")
    assert "invalid YAML" in message and "\n" not in message


def test_load_empty_and_invalid_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    with pytest.raises(SpaceError, match=re.escape(f"{empty}: the file is empty")):
        load_space(empty)
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  lr: {type: float, low: 0.1, hgih: 1}\n")
    with pytest.raises(SpaceError, match=re.escape(f"{bad}: params.lr.hgih: unknown key")):
        load_space(bad)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(SpaceError, match="not a UTF-8 text file"):
        load_space(binary)


def test_module_does_not_import_optuna() -> None:
    code = "import sys, mlforecast_cli.search.space; print('optuna' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- Optuna


def test_distributions() -> None:
    dists = space().distributions()
    D = optuna.distributions
    assert dists["learning_rate"] == D.FloatDistribution(0.001, 0.3, log=True)
    assert dists["num_leaves"] == D.IntDistribution(8, 128, step=8)
    assert dists["window_size"] == D.IntDistribution(7, 30)
    assert dists["boosting"] == D.CategoricalDistribution(["gbdt", "dart"])
    stepped = parse_space(
        with_param("q", {"type": "float", "low": 0, "high": 1, "step": 0.25}), SRC
    )
    assert stepped.distributions()["q"] == D.FloatDistribution(0.0, 1.0, step=0.25)


def test_suggest_on_a_real_study() -> None:
    s = space()
    seen: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        values = s.suggest(trial)
        seen.append(values)
        return float(values["learning_rate"])

    study = optuna.create_study(sampler=build_sampler(s), pruner=build_pruner(s))
    study.optimize(objective, n_trials=12)
    assert len(seen) == 12
    for values in seen:
        assert set(values) == {*s.params, *s.fixed}
        assert 0.001 <= values["learning_rate"] <= 0.3
        assert 8 <= values["num_leaves"] <= 128 and values["num_leaves"] % 8 == 0
        assert 7 <= values["window_size"] <= 30 and isinstance(values["window_size"], int)
        assert values["boosting"] in ("gbdt", "dart")
        assert values["n_estimators"] == 500 and values["lags"] == [1, 7]
    assert set(study.best_trial.distributions) == set(s.params)
    assert study.best_trial.distributions == s.distributions()


def test_default_sampler_and_pruner() -> None:
    s = space()
    sampler = build_sampler(s)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._n_startup_trials == 10
    pruner = build_pruner(s)
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert (pruner._n_startup_trials, pruner._n_warmup_steps) == (5, 10)


def _sampled(sampler: optuna.samplers.BaseSampler) -> list[float]:
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    return [t.params["x"] for t in study.trials]


def test_sampler_seed() -> None:
    s = space()
    reference = _sampled(optuna.samplers.TPESampler(n_startup_trials=10, seed=42))
    assert _sampled(build_sampler(s)) == reference
    assert _sampled(build_sampler(s, seed=42)) == reference
    assert _sampled(build_sampler(s, seed=7)) != reference
    assert _sampled(build_sampler(s, seed=7)) == _sampled(build_sampler(s, seed=7))


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_other_samplers_and_pruners() -> None:
    data = with_optimizer(
        sampler={"type": "RandomSampler", "seed": 1},
        pruner={"type": "NopPruner"},
    )
    s = parse_space(data, SRC)
    assert isinstance(build_sampler(s), optuna.samplers.RandomSampler)
    assert isinstance(build_pruner(s), optuna.pruners.NopPruner)
    short = parse_space(with_optimizer(sampler={"type": "Random"}), SRC)
    assert isinstance(build_sampler(short, seed=3), optuna.samplers.RandomSampler)
    patient = parse_space(
        with_optimizer(
            pruner={
                "type": "PatientPruner",
                "patience": 3,
                "wrapped_pruner": {"type": "MedianPruner", "n_warmup_steps": 2},
            }
        ),
        SRC,
    )
    assert isinstance(build_pruner(patient), optuna.pruners.PatientPruner)


BAD_OPTUNA = [
    ("sampler", {"type": "TPESampler", "n_startup": 5}, "optimizer.sampler.n_startup: "
     "TPESampler has no argument 'n_startup'; did you mean 'n_startup_trials'?"),
    ("sampler", {"type": "TPESampler", "n_startup_trials": "ten"},
     "optimizer.sampler.n_startup_trials: expected int, got 'ten'"),
    ("sampler", {"type": "TPESampler", "seed": 1.5}, "optimizer.sampler.seed: expected int | None"),
    ("sampler", {"type": "TPEsampler"}, "optimizer.sampler.type: unknown sampler 'TPEsampler'; "
     "did you mean 'TPESampler'?"),
    ("sampler", {"type": "GridSampler"}, "optimizer.sampler.search_space: missing"),
    ("pruner", {"type": "MedianPruner", "warmup": 3}, "optimizer.pruner.warmup: MedianPruner has "
     "no argument 'warmup'"),
    ("pruner", {"type": "NopPruner", "n_warmup_steps": 3}, "NopPruner has no argument"),
    ("pruner", {"type": "Median2Pruner"}, "optimizer.pruner.type: unknown pruner"),
    ("pruner", {"type": "MedianPruner", "n_startup_trials": -1},
     "optimizer.pruner: MedianPruner rejected its arguments"),
    ("pruner", {"type": "PatientPruner", "patience": 2, "wrapped_pruner": {"type": "Nope"}},
     "optimizer.pruner.wrapped_pruner.type: unknown pruner 'Nope'"),
]  # fmt: skip


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize(("block", "spec", "fragment"), BAD_OPTUNA)
def test_bad_sampler_and_pruner(block: str, spec: dict, fragment: str) -> None:
    s = parse_space(with_optimizer(**{block: spec}), SRC)
    build = build_sampler if block == "sampler" else build_pruner
    with pytest.raises(SpaceError) as info:
        build(s)
    message = str(info.value)
    assert message.startswith(f"{SRC}: ") and "\n" not in message
    assert fragment in message


# --------------------------------------------------------------------------- overrides


def test_override_scalar_fixes_a_param() -> None:
    s = space().override(["window_size=14", "learning_rate=1e-2", "boosting=goss"])
    assert s.fixed["window_size"] == 14 and isinstance(s.fixed["window_size"], int)
    assert s.fixed["learning_rate"] == 0.01
    assert s.fixed["boosting"] == "goss"
    assert set(s.params) == {"num_leaves"}
    assert space().override(["window_size=500"]).fixed["window_size"] == 500  # out of range
    assert space().override(["learning_rate=1"]).fixed["learning_rate"] == 1.0
    assert s.source == SRC


def test_override_range_keeps_type_log_step() -> None:
    s = space().override(["window_size=10..20", "learning_rate=1e-3..1e-1", "num_leaves=16..64"])
    assert s.params["window_size"] == Param("window_size", "int", 10, 20)
    assert s.params["learning_rate"] == Param("learning_rate", "float", 0.001, 0.1, log=True)
    assert s.params["num_leaves"] == Param("num_leaves", "int", 16, 64, step=8)


def test_override_list_and_mapping() -> None:
    s = space().override(
        [
            "window_size=[7, 14, 28]",
            "learning_rate={type: float, low: 0.01, high: 0.1}",
            "num_leaves={high: 256}",
        ]
    )
    assert s.params["window_size"] == Param("window_size", "categorical", choices=(7, 14, 28))
    assert s.params["learning_rate"] == Param("learning_rate", "float", 0.01, 0.1)
    assert s.params["num_leaves"] == Param("num_leaves", "int", 8, 256, step=8)


def test_override_fixed_keys() -> None:
    s = space().override(
        [
            "n_estimators=1000",
            "lags=[1, 7, 14]",
            "subsample=0.5..1.0",
            "max_depth=3..9",
            "colsample={type: float, low: 0.3, high: 1}",
            "extra_flag=true",
            "objective={name: l2}",
        ]
    )
    assert s.fixed["n_estimators"] == 1000
    assert s.fixed["lags"] == [1, 7, 14]  # a list replaces a list
    assert s.params["subsample"] == Param("subsample", "float", 0.5, 1.0)
    assert s.params["max_depth"] == Param("max_depth", "int", 3, 9)
    assert s.params["colsample"] == Param("colsample", "float", 0.3, 1.0)
    assert s.fixed["extra_flag"] is True
    assert s.fixed["objective"] == {"name": "l2"}
    searched = s.override(["n_estimators=[100, 500]", "range_from_fixed=1..4"])
    assert searched.params["n_estimators"].choices == (100, 500)
    assert "n_estimators" not in searched.fixed
    assert searched.params["range_from_fixed"].type == "int"
    refixed = searched.override(["n_estimators=200"])
    assert refixed.fixed["n_estimators"] == 200 and "n_estimators" not in refixed.params


def test_override_optimizer_paths() -> None:
    s = space().override(
        [
            "optimizer.metric=mae",
            "optimizer.direction=maximize",
            "optimizer.pruner.n_warmup_steps=3",
            "optimizer.sampler.n_startup_trials=4",
        ]
    )
    assert s.metric == "mae" and s.direction == "maximize"
    assert s.optimizer["pruner"]["n_warmup_steps"] == 3
    assert build_sampler(s)._n_startup_trials == 4
    random = space().override(["optimizer.sampler.type=RandomSampler"])
    assert random.optimizer["sampler"] == {"type": "RandomSampler", "seed": 42}
    assert isinstance(build_sampler(random), optuna.samplers.RandomSampler)
    nop = space().override(["optimizer.pruner=NopPruner"])
    assert isinstance(build_pruner(nop), optuna.pruners.NopPruner)
    nested = space().override(["params.window_size.high=60", "fixed.n_estimators=9"])
    assert nested.params["window_size"].high == 60 and nested.fixed["n_estimators"] == 9


def test_override_leaves_the_original_alone() -> None:
    s = space()
    s.override(["window_size=3", "lags=[2]", "optimizer.metric=mae"])
    assert s == space()
    assert space().override([]) == s


BAD_OVERRIDES = [
    ("window_size", "--set 'window_size': missing '='"),
    ("=5", "--set '=5': empty key"),
    ("window_size=abc", "--set window_size: params.window_size: is a type: int param"),
    ("window_size=2.5", "--set window_size: params.window_size: is a type: int param"),
    ("learning_rate=fast", "--set learning_rate: params.learning_rate: is a type: float"),
    ("window_size=20..10", "--set window_size: params.window_size: low 20 is greater than high"),
    ("window_size=1.5..9", "--set window_size: params.window_size.low: 1.5 is not a whole"),
    ("learning_rate=0..1", "--set learning_rate: params.learning_rate.low: is 0.0 but log"),
    ("num_leaves=8..100", "--set num_leaves: params.num_leaves.step: high - low = 92"),
    ("boosting=1..3", "--set boosting: params.boosting: is categorical, so low..high"),
    ("window_size=[[1, 2]]", "--set window_size: params.window_size.choices[0]"),
    ("window_size={type: int, low: 1}", "--set window_size: params.window_size.high: missing"),
    ("window_size={hgih: 3}", "--set window_size: params.window_size.hgih: unknown key"),
    ("window_size={low: [", "--set window_size: the value '{low: [' is not valid YAML"),
    ("optimizer.metric=mse", "--set optimizer.metric: optimizer.metric: unknown metric 'mse'"),
    ("optimizer.direction=up", "--set optimizer.direction: optimizer.direction: must be"),
    ("optimizer.metrics=mae", "--set optimizer.metrics: optimizer.metrics: unknown key"),
    ("optimizer.sampler.foo=1", "--set optimizer.sampler.foo: optimizer.sampler.foo: TPESampler"),
    ("optimizer.sampler.type=Nope", "--set optimizer.sampler.type: optimizer.sampler.type: "),
    ("optimizer.pruner.n_warmup_steps=x", "--set optimizer.pruner.n_warmup_steps: "),
    ("optimizer.metric.x=1", "--set optimizer.metric.x: optimizer.metric: is a string"),
    ("model.depth=3", "--set model.depth: model.depth: unknown dotted key"),
    ("horizon=1..28", "--set horizon: params.horizon: the horizon is a property of the task"),
]


@pytest.mark.parametrize(("assignment", "fragment"), BAD_OVERRIDES)
def test_bad_overrides(assignment: str, fragment: str) -> None:
    with pytest.raises(SpaceError) as info:
        space().override([assignment])
    message = str(info.value)
    assert message.startswith(fragment), message
    assert "\n" not in message


def test_override_custom_source_name() -> None:
    with pytest.raises(SpaceError, match=r"^--param window_size: "):
        space().override(["window_size=x"], source="--param")


# --------------------------------------------------------------------------- YAML round trip


def test_to_yaml_round_trip() -> None:
    s = space()
    text = s.to_yaml()
    assert "learning_rate: {type: float, low: 0.001, high: 0.3, log: true}" in text
    assert parse_space(yaml.safe_load(text), SRC) == s
    changed = s.override(["window_size=10..20", "boosting=gbdt", "optimizer.metric=wape"])
    assert parse_space(yaml.safe_load(changed.to_yaml()), SRC) == changed
    assert changed.to_dict()["fixed"]["boosting"] == "gbdt"
    assert "description" not in parse_space({"fixed": {"a": 1}}, SRC).to_dict()


def test_to_yaml_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "lightgbm.yaml"
    path.write_text(LIGHTGBM_YAML)
    s = load_space(path)
    out = tmp_path / "copy.yaml"
    out.write_text(s.to_yaml())
    again = load_space(out)
    assert again.params == s.params and again.fixed == s.fixed
    assert again.optimizer == s.optimizer


def test_to_dict_is_a_copy() -> None:
    s = space()
    data = s.to_dict()
    data["fixed"]["lags"].append(99)
    data["optimizer"]["sampler"]["seed"] = 0
    assert s.fixed["lags"] == [1, 7] and s.optimizer["sampler"]["seed"] == 42


names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(lambda n: n != "horizon")
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)


@st.composite
def int_params(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        low = draw(st.integers(1, 1000))
        spec = {"type": "int", "low": low, "high": low + draw(st.integers(0, 10**6)), "log": True}
        return spec
    low = draw(st.integers(-1000, 1000))
    step = draw(st.none() | st.integers(1, 50))
    high = low + (step or 1) * draw(st.integers(0, 100))
    return {"type": "int", "low": low, "high": high, **({"step": step} if step else {})}


@st.composite
def float_params(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["plain", "log", "step"]))
    if kind == "log":
        low = draw(st.floats(1e-8, 1e3))
        return {"type": "float", "low": low, "high": low * draw(st.floats(1, 1e4)), "log": True}
    if kind == "plain":
        low = draw(st.floats(-1e6, 1e6))
        return {"type": "float", "low": low, "high": low + draw(st.floats(0, 1e6))}
    low = Decimal(draw(st.integers(-(10**4), 10**4))) / 100
    step = Decimal(draw(st.sampled_from(["0.01", "0.05", "0.1", "0.25", "1", "2.5"])))
    high = low + step * draw(st.integers(0, 50))
    return {"type": "float", "low": float(low), "high": float(high), "step": float(step)}


categorical_params = st.lists(scalars, min_size=1, max_size=6, unique=True).map(
    lambda choices: {"type": "categorical", "choices": choices}
)
fixed_values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(names, scalars))


@st.composite
def spaces(draw: st.DrawFn) -> SearchSpace:
    keys = draw(st.lists(names, max_size=8, unique=True))
    split = draw(st.integers(0, len(keys)))
    params = {
        k: draw(st.one_of(int_params(), float_params(), categorical_params)) for k in keys[:split]
    }
    fixed = {k: draw(fixed_values) for k in keys[split:]}
    optimizer = {
        "metric": draw(st.sampled_from(METRIC_NAMES)),
        "direction": draw(st.sampled_from(["minimize", "maximize"])),
        "sampler": {"type": "RandomSampler", "seed": draw(st.integers(0, 100))},
    }
    data = {"params": params, "fixed": fixed, "optimizer": optimizer}
    if draw(st.booleans()):
        data["description"] = draw(st.text(min_size=1, max_size=30))
    return parse_space(data, "x")


@settings(max_examples=150, deadline=None)
@given(spaces())
def test_to_yaml_round_trip_property(s: SearchSpace) -> None:
    again = parse_space(yaml.safe_load(s.to_yaml()), "x")
    assert again == s
    assert again.to_yaml() == s.to_yaml()
    for name, param in again.params.items():
        assert type(param.low) is type(s.params[name].low)
    assert textwrap.dedent(s.to_yaml()).startswith("# search space (from x)")


def test_a_small_finite_space_is_searched_exhaustively() -> None:
    from mlforecast_cli.search.space import EXHAUSTIVE_MAX, build_sampler

    space = parse_space(
        {
            "params": {
                "kind": {"type": "categorical", "choices": ["a", "b", "c"]},
                "n": {"type": "int", "low": 2, "high": 10, "step": 4},  # 2, 6, 10
                "rate": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1},
            }
        },
        SRC,
    )
    assert [p.count() for p in space.params.values()] == [3, 3, 3]
    assert space.size == 27 <= EXHAUSTIVE_MAX
    assert build_sampler(space.exhaustive(27), seed=1).__class__.__name__ == "BruteForceSampler"
    assert space.exhaustive(26) is space  # fewer trials than configurations: TPE chooses
    chosen = space.override(["optimizer.sampler={type: RandomSampler}"])
    assert chosen.exhaustive(100) is chosen  # a sampler the user chose stays
    continuous = parse_space({"params": {"rate": {"type": "float", "low": 0, "high": 1}}}, SRC)
    assert continuous.size is None and continuous.exhaustive(100) is continuous
