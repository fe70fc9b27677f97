"""The contract suite (mlforecast_cli.testing): it passes on good models and FAILS on broken ones.

Good models: the built-in seasonal_naive (through its entry point) and a tiny iterative model
defined here (registered with the ``plugin`` attribute). Broken models: one per rule, each
checked with the rule's function, and a pytester run proving the test class reports failures.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mlforecast_cli import Forecaster, ModelSpec, SeriesForecaster, hookimpl
from mlforecast_cli.models.registry import Registry
from mlforecast_cli.testing import (
    ContractError,
    Fitted,
    ForecasterContract,
    check_deterministic,
    check_fit_predict,
    check_inputs_unchanged,
    check_model,
    check_pickle,
    check_predict_any_windows,
    check_pruning_stops_fit,
    check_refit,
    check_report,
    check_requires,
    check_short_histories,
    check_space,
    check_spec_fields,
    make_case,
    short_history_cases,
)

pytest_plugins = ["pytester"]


class InlineYaml:
    """A search space given as text (anything with read_text/is_file loads as a space)."""

    def __init__(self, text: str, name: str = "inline.yaml") -> None:
        self.text, self.name = textwrap.dedent(text), name

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.text

    def is_file(self) -> bool:
        return True

    def __str__(self) -> str:
        return f"<{self.name}>"


BLEND_SPACE = InlineYaml(
    """
    params:
      lr: {type: float, low: 0.01, high: 0.5, log: true}
      window_size: {type: int, low: 4, high: 26}
    fixed:
      epochs: 8
      scaler: window
    """,
    "blend.yaml",
)


class Blend(Forecaster):
    """Tiny but real: learns the weight between the last value and the seasonal value by
    gradient descent, reporting the validation loss each epoch."""

    supports_pruning = True

    @staticmethod
    def _parts(windows):
        last = np.broadcast_to(windows.x[:, -1:], windows.seasonal.shape)
        seasonal = np.where(np.isfinite(windows.seasonal), windows.seasonal, last)
        return last, seasonal

    def fit(self, train, valid=None, report=None):
        rng = np.random.default_rng(self.task.seed)
        self.weight = float(rng.uniform(0.0, 1.0))
        last, seasonal = self._parts(train)
        for epoch in range(int(self.params["epochs"])):
            error = self.weight * seasonal + (1 - self.weight) * last - train.y
            gradient = float(np.mean(2 * error * (seasonal - last)))
            self.weight = float(np.clip(self.weight - self.params["lr"] * gradient, 0.0, 1.0))
            if report is not None and valid is not None and valid.y is not None:
                report(epoch, float(np.mean((self.predict(valid) - valid.y) ** 2)))
        return self

    def predict(self, windows):
        last, seasonal = self._parts(windows)
        return self.weight * seasonal + (1 - self.weight) * last

    def refit_params(self):
        return {"epochs": int(self.params["epochs"])}


def plugin_for(factory, name: str = "tiny", space=BLEND_SPACE, **spec):
    """A plugin object registering ``factory`` as model ``name``."""

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(
                ModelSpec(
                    name=name,
                    summary=spec.pop("summary", "a model for the contract tests"),
                    family=spec.pop("family", "other"),
                    factory=factory,
                    space=space,
                    **spec,
                )
            )

    Plugin.__name__ = f"{name}_plugin"
    return Plugin()


def entry_for(factory, name: str = "tiny", **spec):
    registry = Registry(entry_points=False)
    registry.add_plugin(plugin_for(factory, name, **spec), name=f"{name}_plugin")
    return registry.get(name)


def case_for(factory, **spec):
    return make_case(entry_for(factory, **spec))


# --------------------------------------------------------------------------- passing suites


class TestSeasonalNaive(ForecasterContract):
    model_name = "seasonal_naive"


class TestTinyBlend(ForecasterContract):
    model_name = "tiny"
    plugin = plugin_for(Blend)
    params = {"lr": 0.1}


def test_blend_reports_every_epoch_and_the_suite_checks_pruning():
    case = case_for(Blend)
    fitted = Fitted.fit(case)
    assert [step for step, _ in fitted.report_calls] == list(range(8))
    assert check_report(case) is True


def test_check_model_runs_every_rule_on_a_good_model():
    case = check_model(entry_for(Blend), {"window_size": 8}, horizon=3, n_series=2)
    assert case.task.horizon == 3 and case.task.n_series == 2
    assert case.valid.x.shape == (2, 8) and case.future.y is None
    assert case.params["epochs"] == 8 and case.params["window_size"] == 8


def test_params_default_to_a_seeded_draw_from_the_space():
    entry = entry_for(Blend)
    first, again = make_case(entry), make_case(entry)
    assert first.params == again.params
    assert 0.01 <= first.params["lr"] <= 0.5 and 4 <= first.params["window_size"] <= 26
    assert make_case(entry, seed=7).params != first.params


def test_importing_the_package_loads_neither_the_suite_nor_pytest():
    code = (
        "import sys, mlforecast_cli, mlforecast_cli.cli\n"
        "assert 'mlforecast_cli.testing' not in sys.modules\n"
        "assert 'pytest' not in sys.modules\n"
        "import mlforecast_cli.testing\n"
        "assert 'pytest' not in sys.modules, 'testing imports pytest at module level'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------- broken models


class WrongShape(Blend):
    def predict(self, windows):
        return super().predict(windows)[:, :-1]


class PredictsNaN(Blend):
    def predict(self, windows):
        out = super().predict(windows)
        out[0, 0] = np.nan
        return out


class Unseeded(Blend):
    def predict(self, windows):
        noise = np.random.default_rng().normal(size=windows.seasonal.shape)
        return super().predict(windows) + 0.1 * noise


class GlobalRandom(Blend):
    def fit(self, train, valid=None, report=None):
        super().fit(train, valid, report)
        self.weight = float(np.random.uniform(0.0, 1.0))  # the global generator, not task.seed
        return self


class ClaimsPruningNeverReports(Blend):
    def fit(self, train, valid=None, report=None):
        return super().fit(train, valid, None)


class SwallowsPruning(Blend):
    def fit(self, train, valid=None, report=None):
        def careless(step, value):
            try:
                report(step, value)
            except Exception:  # the bug: swallows optuna.TrialPruned
                return

        return super().fit(train, valid, careless if report else None)


class ReportsNaN(Blend):
    def fit(self, train, valid=None, report=None):
        return super().fit(train, valid, (lambda s, v: report(s, float("nan"))) if report else None)


class ReportsBackwards(Blend):
    def fit(self, train, valid=None, report=None):
        return super().fit(train, valid, (lambda s, v: report(10 - s, v)) if report else None)


class Unpicklable(Blend):
    def fit(self, train, valid=None, report=None):
        super().fit(train, valid, report)
        self.transform = lambda a: a
        return self


class BatchDependent(Blend):
    def predict(self, windows):
        out = super().predict(windows)
        return out - out.mean() + 0.1 * len(windows)


class ReadsLabels(Blend):
    def predict(self, windows):
        return super().predict(windows) + 0.0 * windows.y


class MutatesInputs(Blend):
    def fit(self, train, valid=None, report=None):
        train.x[:, 0] = 0.0
        return super().fit(train, valid, report)


class NeedsValidation(Blend):
    def fit(self, train, valid=None, report=None):
        self.level = float(valid.y.mean())
        return super().fit(train, valid, report)


BROKEN = [
    (WrongShape, lambda c: check_fit_predict(c), r"shape \(3, 3\); expected \(3, 4\)"),
    (PredictsNaN, lambda c: check_fit_predict(c), r"NaN or infinite value\(s\)"),
    (Unseeded, lambda c: check_deterministic(c), r"is not deterministic"),
    (GlobalRandom, lambda c: check_deterministic(c), r"seed every random generator"),
    (ClaimsPruningNeverReports, check_report, r"supports_pruning = True but .* never called"),
    (SwallowsPruning, check_pruning_stops_fit, r"fit went on and returned"),
    (ReportsNaN, check_report, r"non-finite value nan"),
    (ReportsBackwards, check_report, r"report steps must increase"),
    (Unpicklable, lambda c: check_pickle(c, Fitted.fit(c).model), r"cannot be pickled"),
    (BatchDependent, lambda c: check_predict_any_windows(c, Fitted.fit(c).model), r"changed"),
    (ReadsLabels, lambda c: check_fit_predict(c), r"y is None: predict must not read labels"),
    (MutatesInputs, check_inputs_unchanged, r"modified train\.x in place"),
    (NeedsValidation, lambda c: check_refit(c), r"valid=None, report=None .* raised"),
]


@pytest.mark.parametrize(
    ("factory", "check", "message"), BROKEN, ids=[b[0].__name__ for b in BROKEN]
)
def test_a_broken_model_fails_its_rule(factory, check, message):
    case = case_for(factory)
    with pytest.raises(ContractError, match=message):
        check(case)
    with pytest.raises(ContractError):  # check_model runs every rule: one of them fails
        check_model(case.entry)


def test_the_good_model_passes_those_same_rules():
    case = case_for(Blend)
    for _, check, _ in BROKEN:
        check(case)


def test_spec_rules_name_the_fault():
    with pytest.raises(ContractError, match="summary must be one line"):
        check_spec_fields(entry_for(Blend, summary="two\nlines"))
    with pytest.raises(ContractError, match="summary is empty"):
        check_spec_fields(entry_for(Blend, summary=" "))
    with pytest.raises(ContractError, match="expects 'other'"):
        check_spec_fields(entry_for(Blend), "other")
    with pytest.raises(ContractError, match="requires not_installed_anywhere_xyz"):
        check_requires(entry_for(Blend, requires=("not_installed_anywhere_xyz",)))
    bad_space = InlineYaml("params:\n  lr: {type: float, low: 1.0}\n", "bad.yaml")
    with pytest.raises(ContractError, match=r"invalid space: <bad\.yaml>: params\.lr"):
        check_space(entry_for(Blend, space=bad_space))
    bad_pruner = InlineYaml("fixed: {epochs: 1}\noptimizer:\n  pruner: {type: NoSuchPruner}\n")
    with pytest.raises(ContractError, match="NoSuchPruner"):
        check_space(entry_for(Blend, space=bad_pruner))
    with pytest.raises(ContractError, match="cannot import factory"):
        check_model(entry_for("nowhere_xyz.module:Model"))


def test_window_size_too_large_for_the_data_says_so():
    with pytest.raises(ContractError, match="pin smaller values in params"):
        make_case(entry_for(Blend), {"window_size": 500})


def test_the_test_class_reports_a_broken_model_as_failures(pytester):
    pytester.makepyfile(
        test_broken=textwrap.dedent(
            """
            import numpy as np
            from mlforecast_cli import Forecaster, ModelSpec, SeriesForecaster, hookimpl
            from mlforecast_cli.testing import ForecasterContract


            class Space:
                def read_text(self, encoding="utf-8"):
                    return "fixed: {window_size: 4, scaler: window}\\n"

                def is_file(self):
                    return True


            class NaNModel(Forecaster):
                def fit(self, train, valid=None, report=None):
                    return self

                def predict(self, windows):
                    return np.full((len(windows), windows.horizon), np.nan)


            class Plugin:
                @hookimpl
                def register_models(self, register):
                    register(ModelSpec(name="nan_model", summary="NaN", factory=NaNModel,
                                       space=Space()))


            class TestNaNModel(ForecasterContract):
                model_name = "nan_model"
                plugin = Plugin()


            class TestUnnamed(ForecasterContract):
                pass
            """
        )
    )
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "--tb=line")
    outcomes = result.parseoutcomes()
    result.stdout.fnmatch_lines(
        [
            "*ContractError: nan_model.predict on validation windows returned 12 NaN or inf*",
            "*ContractError: TestUnnamed: set model_name*",
        ]
    )
    # the spec passes, the NaN model fails the finite/determinism/pickle/rows rules,
    # the unnamed class fails everything, and report/pruning rules are skipped (no report)
    assert outcomes["failed"] >= 5 + 10
    assert outcomes.get("passed", 0) >= 4
    assert outcomes.get("skipped", 0) >= 2


# --------------------------------------------------------------------------- real panels

YEAR_SPACE = InlineYaml("fixed: {shift: 0.0}\n", "year.yaml")


class LastYear(SeriesForecaster):
    """Whole-series: the value 53 weeks back; passes every other rule on Walmart's 143 weeks."""

    def fit(self, train, valid=None, report=None):
        return self

    def predict(self, histories):
        rows = [
            np.repeat(histories.history(i)[-53], histories.horizon) for i in range(len(histories))
        ]
        return np.array(rows, dtype=float) + self.params["shift"]


class LastYearOrLast(LastYear):
    """The same, falling back to the last value where the history is shorter than a year."""

    def predict(self, histories):
        out = []
        for i in range(len(histories)):
            y = histories.history(i)
            h = histories.horizon
            out.append(np.repeat(y[-53] if len(y) >= 53 else y[-1], h))
        return np.array(out, dtype=float) + self.params["shift"]


def test_a_plugin_that_reads_a_year_back_fails_on_a_short_history_and_says_which():
    entry = entry_for(LastYear, space=YEAR_SPACE, input="series")
    case = make_case(entry)
    check_fit_predict(case)  # the rules on whole series pass
    with pytest.raises(ContractError, match=r"shorter than one season \(51 points") as info:
        check_short_histories(case)
    assert "IndexError" in str(info.value)
    check_short_histories(make_case(entry_for(LastYearOrLast, space=YEAR_SPACE, input="series")))


def test_the_short_history_cases_cover_window_season_two_points_one_point_and_one_series():
    labels = [
        label for label, _ in short_history_cases(make_case(entry_for(Blend), {"window_size": 8}))
    ]
    assert [label.split(" (")[0] for label in labels] == [
        "a series shorter than its window",
        "a series shorter than one season",
        "a series of 2 points",
        "a series of 1 point",
        "a one-series panel",
    ]


def test_a_misspelt_pinned_parameter_is_refused_with_the_closest_name():
    with pytest.raises(ContractError, match=r"'windw_size'.*did you mean 'window_size'"):
        make_case(entry_for(Blend), {"windw_size": 8})
    with pytest.raises(ContractError, match="unknown option"):
        make_case(entry_for(Blend), horizn=3)


def test_a_whole_series_model_is_not_given_window_size_unless_it_declares_it():
    assert (
        "window_size" not in entry_for(LastYear, space=YEAR_SPACE, input="series").declared_params
    )
    declared = entry_for(
        LastYear, space=YEAR_SPACE, input="series", extra_params=("window_size",)
    ).declared_params
    assert {"window_size", "shift"} <= declared and "scaler" not in declared
    assert {"window_size", "scaler", "lr", "epochs"} <= entry_for(Blend).declared_params


def test_a_spec_with_a_bad_extra_params_is_a_plugin_problem():
    registry = Registry(entry_points=False)
    registry.add_plugin(plugin_for(Blend, extra_params="lr"), name="bad")
    assert not registry.models
    assert any("extra_params must be a tuple" in p for p in registry.problems)
