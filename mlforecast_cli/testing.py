"""The contract suite every model plugin runs, ours and third parties' alike.

A plugin author subclasses one class in a test module and names the model::

    from mlforecast_cli.testing import ForecasterContract

    class TestMyModel(ForecasterContract):
        model_name = "my_model"        # as registered
        params = {"epochs": 2}         # optional: pin some hyperparameters

pytest then runs every inherited ``test_*`` method on a few real series of the built-in
``walmart`` panel, cut into windows exactly as ``mlf optimize`` cuts them. Each rule is also a
plain function (``check_spec``, ``check_fit_predict``, ...) and :func:`check_model` runs them
all, for a script or a notebook. A broken rule raises :class:`ContractError` (an
``AssertionError``) saying which rule, what the model did, and how to fix it.

This module is only imported by tests: ``import mlforecast_cli`` never loads it, and pytest is
imported only inside the methods that skip.
"""

from __future__ import annotations

import atexit
import json
import math
import pickle
import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np

from .errors import MlfError
from .models.contract import SERIES, Forecaster, ForecasterProtocol, Histories, TaskInfo, Windows
from .models.registry import FAMILIES, ModelEntry, Registry

__all__ = [
    "CaseOptions",
    "ContractCase",
    "ContractError",
    "Fitted",
    "ForecasterContract",
    "ReportRecorder",
    "check_deterministic",
    "check_factory",
    "check_finite",
    "check_fit_predict",
    "check_inputs_unchanged",
    "check_intervals_and_ensemble",
    "check_model",
    "check_pickle",
    "check_predict_any_windows",
    "check_predictions",
    "check_pruning_stops_fit",
    "check_refit",
    "check_report",
    "check_report_calls",
    "check_requires",
    "check_shape",
    "check_short_histories",
    "short_history_cases",
    "check_space",
    "check_spec",
    "check_spec_fields",
    "check_unchanged",
    "draw_params",
    "global_random_state",
    "make_case",
    "snapshot_windows",
]

DEFAULT_HORIZON = 4
DEFAULT_N_SERIES = 3
DEFAULT_SEED = 42
SUMMARY_MAX = 120


class ContractError(AssertionError):
    """A model broke a rule of the plugin contract; the message names the rule and the fix."""


# --------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class ContractCase:
    """Everything one contract run feeds a model: the task, the params and three sets of
    inputs from a few real series, exactly as ``mlf optimize`` makes them: :class:`Windows`,
    or :class:`Histories` for a whole-series model (``ModelSpec(input="series")``)."""

    entry: ModelEntry
    params: dict[str, Any]
    task: TaskInfo
    train: Windows | Histories = field(repr=False)
    """Training windows (every sample before the validation window), or the histories up to
    the validation window."""
    valid: Windows | Histories = field(repr=False)
    """One evaluation window per series, with labels (what a trial is scored on), or the
    histories up to the validation window with its labels as ``y``."""
    future: Windows | Histories = field(repr=False)
    """One window (or whole history) per series up to the end of the data: ``y`` is None
    (what ``mlf predict`` uses)."""
    rtol: float = 1e-5
    atol: float = 1e-6
    panel: Any = field(default=None, repr=False)
    """The few series the inputs were cut from (a :class:`~mlforecast_cli.data.panel.Panel`)."""

    @property
    def name(self) -> str:
        return self.entry.name

    def create(self, params: Mapping[str, Any] | None = None):
        """A fresh, unfitted model built by the plugin's factory."""
        model = self.entry.create(self.params if params is None else params, self.task)
        if not isinstance(model, ForecasterProtocol):
            raise ContractError(
                f"{self.name}: the factory returned {type(model).__name__}, which has no "
                "fit(train, valid=None, report=None) and predict(windows) methods; subclass "
                "mlforecast_cli.Forecaster"
            )
        return model


def draw_params(entry: ModelEntry, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """One configuration from the model's own space: a seeded Optuna trial plus ``fixed``."""
    __tracebackhide__ = True
    import optuna

    space = _load_space(entry)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        return space.suggest(study.ask())
    except Exception as exc:
        raise ContractError(
            f"{entry.name}: Optuna cannot sample the space {space.source}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        optuna.logging.set_verbosity(verbosity)


@dataclass(frozen=True)
class CaseOptions:
    """How :func:`make_case` builds the contract data: the first ``n_series`` series of a
    built-in ``dataset``, a ``horizon``, the task's ``seed``, ``device`` and ``n_threads``
    (None: as ``mlf optimize`` gives one trial), and the tolerance when two predictions must
    agree (determinism, pickling, row independence), in the windows' scaled units."""

    horizon: int = DEFAULT_HORIZON
    n_series: int = DEFAULT_N_SERIES
    seed: int = DEFAULT_SEED
    dataset: str = "walmart"
    device: str = "cpu"
    n_threads: int | None = None
    rtol: float = 1e-5
    atol: float = 1e-6


def make_case(
    entry: ModelEntry,
    params: Mapping[str, Any] | None = None,
    options: CaseOptions | None = None,
    **changes: Any,
) -> ContractCase:
    """The contract data for ``entry``: the first ``n_series`` series of a built-in dataset.

    ``params`` are laid over one configuration drawn from the model's space (see
    :func:`draw_params`), so a test may pin only what it cares about (a small
    ``epochs``...); a name the model does not declare is refused. ``window_size`` and
    ``scaler`` shape the windows as in the runner. ``options`` (:class:`CaseOptions`), with
    ``changes`` to its fields laid over (``make_case(entry, seed=7)``).
    """
    __tracebackhide__ = True
    from .data.split import split_panel
    from .data.windows import make_windows
    from .trials.fit import DEFAULT_SCALER, DEFAULT_WINDOW_SIZE

    opts = _case_options(options, changes)
    _check_declared(entry, params)
    full = {**draw_params(entry, opts.seed), **dict(params or {})}
    panel = _first_series(opts.dataset, opts.n_series)
    task = _task(panel, opts)
    tolerance = {"rtol": opts.rtol, "atol": opts.atol, "panel": panel}
    horizon = opts.horizon
    if entry.spec.input == SERIES:
        train, valid, future = _series_inputs(panel, horizon)
        return ContractCase(entry, full, task, train, valid, future, **tolerance)
    window_size = int(full.get("window_size", DEFAULT_WINDOW_SIZE))
    scaler = str(full.get("scaler", DEFAULT_SCALER))
    try:
        split = split_panel(panel, horizon, 1, min_train=window_size + horizon)
        end = split.folds[0].train_end
        train = make_windows(panel, end, window_size, horizon, mode="train", scaler=scaler)
        valid = make_windows(panel, end, window_size, horizon, mode="eval", scaler=scaler)
        future = make_windows(
            panel, panel.lengths, window_size, horizon, mode="eval", scaler=scaler
        )
    except MlfError as exc:
        raise ContractError(
            f"{entry.name}: cannot cut contract windows with window_size={window_size}, "
            f"scaler={scaler!r}, horizon={horizon}: {exc}; pin smaller values in params"
        ) from None
    return ContractCase(entry, full, task, train, valid, future, **tolerance)


def _case_options(options: CaseOptions | None, changes: Mapping[str, Any]) -> CaseOptions:
    __tracebackhide__ = True
    names = {f.name for f in fields(CaseOptions)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ContractError(
            f"make_case got unknown option(s) {', '.join(unknown)}; "
            f"CaseOptions has {', '.join(sorted(names))}"
        )
    return replace(options or CaseOptions(), **changes)


def _check_declared(entry: ModelEntry, params: Mapping[str, Any] | None) -> None:
    """The pinned ``params`` name only parameters the model declares."""
    __tracebackhide__ = True
    from .search.space import did_you_mean

    declared = _declared(entry)
    for name in params or {}:
        if name not in declared:
            hint = did_you_mean(str(name), sorted(declared))
            raise ContractError(
                f"{entry.name}: params names {name!r}, which the model does not declare; "
                f"{hint}declare it in the shipped space or ModelSpec(extra_params=...)"
            )


def _declared(entry: ModelEntry) -> frozenset[str]:
    __tracebackhide__ = True
    try:
        return entry.declared_params
    except MlfError as exc:
        raise ContractError(f"{entry.name}: invalid space: {exc}") from None


def _first_series(dataset: str, n_series: int):
    """The first ``n_series`` series of built-in ``dataset`` (a Panel)."""
    from .datasets import load_dataset

    panel = load_dataset(dataset)
    return _subpanel(panel, range(min(int(n_series), panel.n_series)))


def _subpanel(panel, keep, lengths: Mapping[int, int] | None = None):
    """The series ``keep`` of ``panel``, those in ``lengths`` cut to their first points."""
    keep = list(keep)
    cut = {k: slice(0, (lengths or {}).get(k)) for k in keep}
    return replace(
        panel,
        ids=[panel.ids[i] for i in keep],
        times=[panel.times[i][cut[i]] for i in keep],
        y=[panel.y[i][cut[i]] for i in keep],
        features=[panel.features[i][cut[i]] for i in keep],
        weights=None if panel.weights is None else [panel.weights[i][cut[i]] for i in keep],
    )


def _task(panel, opts: CaseOptions) -> TaskInfo:
    from .trials.fit import task_info

    task = task_info(panel, opts.horizon, seed=opts.seed, device=opts.device, n_jobs=1)
    return task if opts.n_threads is None else replace(task, n_threads=int(opts.n_threads))


def _series_inputs(panel, horizon: int) -> tuple[Histories, Histories, Histories]:
    """(train, valid, future) histories as a search and ``mlf predict`` give them."""
    from .data.histories import make_histories
    from .data.windows import actuals
    from .trials.fit_series import scored_horizon

    end = panel.lengths - int(horizon)
    train = make_histories(panel, end, horizon)
    valid = replace(train, y=actuals(panel, scored_horizon(panel, end, horizon)))
    return train, valid, make_histories(panel, panel.lengths, horizon)


# --------------------------------------------------------------------------- the rules


def check_spec(entry: ModelEntry, model_name: str | None = None) -> None:
    """The spec is complete: name, one-line summary, family, installed requirements,
    an importable factory, and a space that loads, validates and builds its optimizer."""
    __tracebackhide__ = True
    check_spec_fields(entry, model_name)
    check_requires(entry)
    check_factory(entry)
    check_space(entry)


def check_spec_fields(entry: ModelEntry, model_name: str | None = None) -> None:
    """Name, a one-line summary, a known family, ``requires`` as a tuple of import names."""
    __tracebackhide__ = True
    spec = entry.spec
    if model_name is not None and spec.name != model_name:
        raise ContractError(f"the spec is named {spec.name!r}, the test expects {model_name!r}")
    summary = spec.summary
    if not isinstance(summary, str) or not summary.strip():
        raise ContractError(f"{spec.name}: summary is empty; give one line for mlf list-models")
    if "\n" in summary.strip() or len(summary) > SUMMARY_MAX:
        raise ContractError(
            f"{spec.name}: summary must be one line of at most {SUMMARY_MAX} characters "
            f"(got {len(summary)}); put details in the space's description:"
        )
    if spec.family not in FAMILIES:
        raise ContractError(
            f"{spec.name}: family {spec.family!r} is not one of {', '.join(FAMILIES)}"
        )
    if isinstance(spec.requires, str) or not all(isinstance(r, str) for r in spec.requires):
        raise ContractError(
            f"{spec.name}: requires must be a tuple of import names, got {spec.requires!r}"
        )


def check_requires(entry: ModelEntry) -> None:
    """Every import name in ``requires`` is installed."""
    __tracebackhide__ = True
    missing = entry.missing()
    if missing:
        raise ContractError(
            f"{entry.name}: requires {', '.join(missing)}, which is not installed: "
            f"{entry.install_hint()} (or skip the test module with pytest.importorskip)"
        )


def check_factory(entry: ModelEntry) -> Callable[..., Any]:
    """The factory (an import string or a callable) resolves to a callable."""
    __tracebackhide__ = True
    try:
        factory = entry.factory()
    except MlfError as exc:
        raise ContractError(str(exc)) from None
    if not callable(factory):
        raise ContractError(
            f"{entry.name}: factory {entry.spec.factory!r} is a {type(factory).__name__}, not "
            "a class or function called as factory(params, task)"
        )
    return factory


def check_space(entry: ModelEntry) -> None:
    """The space loads and validates, its sampler and pruner build, Optuna can sample it."""
    __tracebackhide__ = True
    from .search.space import build_pruner, build_sampler

    space = _load_space(entry)
    try:
        build_sampler(space, seed=DEFAULT_SEED)
        build_pruner(space)
    except MlfError as exc:
        raise ContractError(f"{entry.name}: {exc}") from None
    draw_params(entry)


def check_fit_predict(case: ContractCase, report: Callable[[int, float], None] | None = None):
    """Fit on the training windows (with validation windows and ``report``) and predict the
    validation, training and future windows: shape ``(n_windows, horizon)``, all finite.

    Returns the fitted model.
    """
    __tracebackhide__ = True
    model = case.create()
    _fit(case, model, case.train, case.valid, report)
    for label, windows in (("validation", case.valid), ("future", case.future)):
        check_predictions(case, _predict(case, model, windows, label), windows, label)
    check_predictions(case, _predict(case, model, case.train, "training"), case.train, "training")
    return model


def check_predictions(case: ContractCase, predictions: Any, windows: Windows, label: str) -> None:
    """``predictions`` has shape ``(len(windows), horizon)`` and only finite values."""
    __tracebackhide__ = True
    check_shape(case, predictions, windows, label)
    check_finite(case, predictions, label)


def check_shape(case: ContractCase, predictions: Any, windows: Windows, label: str) -> None:
    __tracebackhide__ = True
    array = np.asarray(predictions)
    expected = (len(windows), case.task.horizon)
    if array.shape != expected:
        raise ContractError(
            f"{case.name}.predict on {len(windows)} {label} window(s) returned shape "
            f"{array.shape}; expected {expected} = (n_windows, horizon)"
        )
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ContractError(
            f"{case.name}.predict on {label} windows returned dtype {array.dtype}; return real "
            "numbers (a float numpy array)"
        )


def check_finite(case: ContractCase, predictions: Any, label: str) -> None:
    __tracebackhide__ = True
    array = np.asarray(predictions, dtype=float)
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ContractError(
            f"{case.name}.predict on {label} windows returned {int(bad.sum())} NaN or infinite "
            f"value(s) of {array.size}, first at window {row}, step {col} ({array[row, col]}); "
            "NaN in windows.seasonal marks history too short: fill it before using it"
        )


def check_deterministic(
    case: ContractCase, reference: tuple[np.ndarray, np.ndarray] | None = None
) -> None:
    """Two fresh fits with the same params and ``task.seed`` predict the same, whatever the
    global random state (seed every generator from ``task.seed``).

    ``reference``: the (validation, future) predictions of a fit made under
    :func:`global_random_state` ``(1)``; computed when not given.
    """
    __tracebackhide__ = True
    first = reference if reference is not None else _fit_and_predict(case, global_seed=1)
    second = _fit_and_predict(case, global_seed=2)
    for label, a, b in zip(("validation", "future"), first, second, strict=True):
        _same(
            case,
            a,
            b,
            f"{case.name} is not deterministic: two fits with task.seed={case.task.seed} "
            f"predicted different {label} values",
            "seed every random generator from task.seed (np.random.default_rng(task.seed), "
            "torch.manual_seed(task.seed), the library's random_state/seed argument)",
        )


class ReportRecorder:
    """A ``report(step, value)`` that records its calls (and may raise after some of them)."""

    def __init__(self, raise_after: int | None = None, exc: BaseException | None = None) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self.raise_after = raise_after
        self.exc = exc

    def __call__(self, step: int, value: float) -> None:
        self.calls.append((step, value))
        if self.raise_after is not None and len(self.calls) >= self.raise_after:
            raise self.exc


def check_report_calls(case: ContractCase, model: Any, calls: list[tuple[Any, Any]]) -> None:
    """The calls a fit made to ``report``: whole-number steps, strictly increasing, finite
    values; at least one when the model claims ``supports_pruning``."""
    __tracebackhide__ = True
    claims = bool(getattr(model, "supports_pruning", False))
    if claims and not calls:
        raise ContractError(
            f"{case.name} sets supports_pruning = True but fit(train, valid, report) never "
            "called report(step, value); call it after each epoch/round, or set it to False"
        )
    previous = None
    for i, (step, value) in enumerate(calls):
        if isinstance(step, bool) or not isinstance(step, int | np.integer):
            raise ContractError(
                f"{case.name}: report call {i} gave step {step!r} ({type(step).__name__}); "
                "steps are whole numbers (the epoch or round)"
            )
        if previous is not None and step <= previous:
            raise ContractError(
                f"{case.name}: report steps must increase, got step {step} after {previous}"
            )
        previous = step
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ContractError(
                f"{case.name}: report call {i} (step {step}) gave value {value!r}; report a "
                "number (the validation loss)"
            ) from None
        if not math.isfinite(number):
            raise ContractError(
                f"{case.name}: report call {i} (step {step}) gave the non-finite value {number}; "
                "report a finite validation loss"
            )


def check_report(case: ContractCase) -> bool:
    """``report`` is used correctly: valid calls (see :func:`check_report_calls`), and a
    report that raises ``optuna.TrialPruned`` stops the fit (see :func:`check_pruning_stops_fit`).

    Returns False when the model neither claims pruning nor calls ``report`` (nothing to check).
    """
    __tracebackhide__ = True
    recorder = ReportRecorder()
    model = case.create()
    _fit(case, model, case.train, case.valid, recorder)
    check_report_calls(case, model, recorder.calls)
    if not recorder.calls:
        return False
    check_pruning_stops_fit(case)
    return True


def check_pruning_stops_fit(case: ContractCase) -> None:
    """A ``report`` that raises ``optuna.TrialPruned`` on its first call stops ``fit``: the
    model lets the exception through (this is how the core prunes a trial)."""
    __tracebackhide__ = True
    import optuna

    stopper = ReportRecorder(raise_after=1, exc=optuna.TrialPruned("pruned by the contract suite"))
    try:
        case.create().fit(case.train, case.valid, stopper)
    except optuna.TrialPruned:
        return
    except Exception as exc:
        raise ContractError(
            f"{case.name}: when report() raised optuna.TrialPruned, fit raised "
            f"{type(exc).__name__} instead; let exceptions from report propagate"
        ) from exc
    if not stopper.calls:
        raise ContractError(f"{case.name}: fit(train, valid, report) never called report")
    raise ContractError(
        f"{case.name}: report() raised optuna.TrialPruned at step {stopper.calls[0][0]} but fit "
        "went on and returned; let exceptions from report propagate (no bare except around it)"
    )


def check_pickle(case: ContractCase, model: Any) -> None:
    """A fitted model survives ``pickle`` (how ``mlf optimize`` saves it) and predicts the same."""
    __tracebackhide__ = True
    try:
        restored = pickle.loads(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:
        raise ContractError(
            f"{case.name}: a fitted model cannot be pickled ({type(exc).__name__}: {exc}); "
            "mlf saves models with pickle: drop lambdas, open files and locks from its state, "
            "or define __getstate__/__setstate__"
        ) from exc
    for label, windows in (("validation", case.valid), ("future", case.future)):
        before = _predict(case, model, windows, label)
        after = _predict(case, restored, windows, label)
        check_shape(case, after, windows, f"{label} (after unpickling)")
        _same(
            case,
            before,
            after,
            f"{case.name}: the unpickled model predicts different {label} values",
            "keep every fitted value in the model's state",
        )


def check_predict_any_windows(case: ContractCase, model: Any) -> None:
    """``predict`` works on any number of windows in any order: one window alone, the windows
    reversed and repeated. Each window's forecast depends on that window only."""
    __tracebackhide__ = True
    full = np.asarray(_predict(case, model, case.valid, "validation"), dtype=float)
    n = len(case.valid)
    subsets = {
        "the first validation window alone": np.array([0]),
        "the last validation window alone": np.array([n - 1]),
        "the validation windows reversed and repeated": np.r_[np.arange(n)[::-1], np.arange(n)],
    }
    for label, rows in subsets.items():
        windows = _take(case.valid, rows)
        predictions = _predict(case, model, windows, label)
        check_predictions(case, predictions, windows, label)
        _same(
            case,
            full[rows],
            np.asarray(predictions, dtype=float),
            f"{case.name}: the forecast of a window changed when it was predicted with {label}",
            "forecast each window from its own row only (no statistics across the batch)",
        )


def snapshot_windows(case: ContractCase) -> dict[str, dict[str, np.ndarray]]:
    """Copies of every array of the case's windows (see :func:`check_unchanged`)."""
    return {label: _arrays(w) for label, w in _labelled(case)}


def check_unchanged(case: ContractCase, snapshot: dict[str, dict[str, np.ndarray]]) -> None:
    """The case's windows still equal ``snapshot``: the model changed no array in place."""
    __tracebackhide__ = True
    for label, w in _labelled(case):
        for name, before in snapshot[label].items():
            if not np.array_equal(before, getattr(w, name), equal_nan=True):
                raise ContractError(
                    f"{case.name} modified {label}.{name} in place; the core reuses windows "
                    "between fits: copy an array before changing it"
                )


def check_inputs_unchanged(case: ContractCase) -> None:
    """``fit`` and ``predict`` leave the windows they are given untouched."""
    __tracebackhide__ = True
    snapshot = snapshot_windows(case)
    model = case.create()
    _fit(case, model, case.train, case.valid, ReportRecorder())
    for label, windows in _labelled(case):
        _predict(case, model, windows, label)
    check_unchanged(case, snapshot)


def check_refit(case: ContractCase, fitted: Any = None) -> None:
    """The refit path works: ``fit(train)`` with no validation windows and no report, and
    ``refit_params()`` (when defined) returns JSON-able values the factory accepts again.

    ``fitted``: a model already fit with validation windows (fit here when not given).
    """
    __tracebackhide__ = True
    model = case.create()
    _fit(case, model, case.train, None, None, how="fit(train) with valid=None, report=None")
    check_predictions(
        case,
        _predict(case, model, case.valid, "validation"),
        case.valid,
        "validation (after fit without valid)",
    )
    method = getattr(model, "refit_params", None)
    if method is None or getattr(method, "__func__", None) is Forecaster.refit_params:
        return  # not defined, or Forecaster's own (nothing to refit with)
    if not callable(model.refit_params):
        raise ContractError(f"{case.name}.refit_params must be a method returning a dict")
    if fitted is None:
        fitted = case.create()
        _fit(case, fitted, case.train, case.valid, None)
    extra = fitted.refit_params()
    if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
        raise ContractError(
            f"{case.name}.refit_params() returned {extra!r}; return a dict of param name → value"
        )
    try:
        json.dumps(dict(extra))
    except (TypeError, ValueError) as exc:
        raise ContractError(
            f"{case.name}.refit_params() returned values that are not JSON ({exc}); return "
            "plain ints, floats, strings or lists (they are stored with the trial)"
        ) from exc
    again = case.create({**case.params, **extra})
    _fit(case, again, case.train, None, None, how="fit(train) with the refit_params()")
    check_predictions(
        case,
        _predict(case, again, case.valid, "validation"),
        case.valid,
        "validation (after a refit with refit_params())",
    )


def check_model(
    model: str | ModelEntry,
    params: Mapping[str, Any] | None = None,
    *,
    registry: Registry | None = None,
    **case_options: Any,
) -> ContractCase:
    """Run every rule on ``model`` (a registered name or a :class:`ModelEntry`); raises the
    first :class:`ContractError`. ``case_options`` go to :func:`make_case`."""
    __tracebackhide__ = True
    entry = model if isinstance(model, ModelEntry) else _lookup(registry or Registry(), model)
    check_spec(entry)
    case = make_case(entry, params, **case_options)
    fitted = Fitted.fit(case)
    fitted.check_shapes_and_finite()
    check_report_calls(case, fitted.model, fitted.report_calls)
    if fitted.report_calls:
        check_pruning_stops_fit(case)
    check_refit(case, fitted.model)
    check_deterministic(case, fitted.reference)
    check_pickle(case, fitted.model)
    check_predict_any_windows(case, fitted.model)
    check_unchanged(case, fitted.snapshot)
    check_intervals_and_ensemble(case)
    check_short_histories(case)
    return case


INTERVAL_WINDOWS = 2
"""Rolling validation windows the interval and ensemble rule fits on."""


def check_intervals_and_ensemble(case: ContractCase) -> None:
    """The model gets prediction intervals and joins ensembles with no code of its own: its
    forecasts of ``INTERVAL_WINDOWS`` rolling validation windows, scored as a study scores
    them, give finite conformal intervals that hold the forecast and widen with the level,
    and greedy ensemble selection combines them with the seasonal naive's."""
    __tracebackhide__ = True
    from .data.split import split_panel
    from .ensembles.ensemble import combine, select
    from .ensembles.held_out import from_fits
    from .ensembles.intervals import conformal_scores
    from .trials.fit import FitOptions, fit_and_score, min_train

    if case.panel is None:
        raise ContractError(f"{case.name}: the case has no panel; build it with make_case")
    naive = Registry().get("seasonal_naive")
    split = split_panel(
        case.panel, case.task.horizon, INTERVAL_WINDOWS, min_train=min_train(case.entry, None)
    )
    no_train_metrics = FitOptions(train_metrics=False)
    tables = []
    for entry, params in ((case.entry, case.params), (naive, {})):
        fits = []
        for fold in split.folds:
            try:
                with global_random_state(1):
                    fit = fit_and_score(
                        entry, params, case.task, case.panel, fold.train_end, no_train_metrics
                    )
            except MlfError as exc:
                raise ContractError(
                    f"{entry.name}: fitting a rolling validation window as a study does "
                    f"failed: {exc}"
                ) from exc
            fits.append((fit, fold.train_end))
        tables.append(from_fits(case.panel, fits))
    own = tables[0]
    conformal = conformal_scores(own)
    h = own.horizon
    forecast = own.forecast.reshape(-1, h)
    scale = own.scale.reshape(-1, h)[:, 0]
    bounds = conformal.bounds(forecast, scale, (80.0, 95.0))
    (lo80, hi80), (lo95, hi95) = bounds[80.0], bounds[95.0]
    if not all(np.isfinite(b).all() for b in (lo80, hi80, lo95, hi95)):
        raise ContractError(f"{case.name}: its conformal intervals are not finite")
    if not (
        (lo95 <= lo80).all()
        and (lo80 <= forecast).all()
        and (forecast <= hi80).all()
        and (hi80 <= hi95).all()
    ):
        raise ContractError(
            f"{case.name}: its conformal intervals do not hold the forecast or do not widen "
            "from 80 % to 95 %"
        )
    choice = select(tables, "mae", "greedy", rounds=5)
    ensemble = combine(tables, choice.weights).metrics().get("mae", float("nan"))
    if not (math.isclose(choice.weights.sum(), 1.0) and math.isfinite(ensemble)):
        raise ContractError(
            f"{case.name}: greedy ensemble selection with the seasonal naive gave weights "
            f"{choice.weights.tolist()} and validation MAE {ensemble}"
        )
    if ensemble > min(t.metrics()["mae"] for t in tables) + 1e-9:
        raise ContractError(
            f"{case.name}: the greedy ensemble's validation MAE {ensemble:.6g} is worse than "
            "its best member's, which greedy selection can always match"
        )


def short_history_cases(case: ContractCase) -> list[tuple[str, int | None]]:
    """(label, points before the cut) of each short-history case :func:`check_short_histories`
    runs; None points: the first series alone, whole (a one-series panel)."""
    window = case.params.get("window_size")
    season = case.task.season_length
    lengths: list[tuple[str, int | None]] = []
    if isinstance(window, int) and window > 2:
        lengths.append(
            (
                f"a series shorter than its window ({window - 1} points, window_size {window})",
                window - 1,
            )
        )
    if season > 2:
        lengths.append(
            (f"a series shorter than one season ({season - 1} points, season {season})", season - 1)
        )
    lengths += [("a series of 2 points", 2), ("a series of 1 point", 1)]
    return [*lengths, ("a one-series panel", None)]


def check_short_histories(case: ContractCase) -> None:
    """The model copes with what real panels hold: a trial (fit on the validation cut, forecast
    and scored as a study does) on the case's series with the first one cut short (shorter than
    the model's window, than one season, 2 points, 1 point before the cut), and on that series
    alone. A model that raises or forecasts NaN there would fail every trial of such a panel;
    the message names the case."""
    __tracebackhide__ = True
    from .trials.fit import FitOptions, fit_and_score

    if case.panel is None:
        raise ContractError(f"{case.name}: the case has no panel; build it with make_case")
    horizon = case.task.horizon
    full = case.panel
    for label, points in short_history_cases(case):
        if points is None:
            panel = _subpanel(full, [0])
        else:
            panel = _subpanel(full, range(full.n_series), {0: points + horizon})
        task = replace(case.task, n_series=panel.n_series)
        end = panel.lengths - horizon
        try:
            with global_random_state(1):
                fit_and_score(
                    case.entry, case.params, task, panel, end, FitOptions(train_metrics=False)
                )
        except MlfError as exc:
            raise ContractError(
                f"{case.name} fails on {label}: {exc}; real panels hold such series: forecast "
                "them (a whole-series model gets each history as it is, however short)"
            ) from exc


@dataclass
class Fitted:
    """One fit of the case's model (under global random state 1) and what it was given."""

    case: ContractCase
    model: Any
    report_calls: list[tuple[Any, Any]]
    reference: tuple[np.ndarray, np.ndarray]
    """Its (validation, future) predictions, as floats."""
    snapshot: dict[str, dict[str, np.ndarray]]
    """Copies of the windows taken before the fit (see :func:`check_unchanged`)."""

    @classmethod
    def fit(cls, case: ContractCase) -> Fitted:
        __tracebackhide__ = True
        snapshot = snapshot_windows(case)
        recorder = ReportRecorder()
        with global_random_state(1):
            model = case.create()
            _fit(case, model, case.train, case.valid, recorder)
        valid = _predict(case, model, case.valid, "validation")
        future = _predict(case, model, case.future, "future")
        for label, predictions, windows in (
            ("validation", valid, case.valid),
            ("future", future, case.future),
        ):
            check_shape(case, predictions, windows, label)
        reference = (np.asarray(valid, dtype=float), np.asarray(future, dtype=float))
        return cls(case, model, recorder.calls, reference, snapshot)

    def predictions(self) -> Iterator[tuple[str, Any, Windows]]:
        """(label, predictions, windows) for the validation, future and training windows."""
        case = self.case
        yield "validation", self.reference[0], case.valid
        yield "future", self.reference[1], case.future
        yield "training", _predict(case, self.model, case.train, "training"), case.train

    def check_shapes_and_finite(self) -> None:
        __tracebackhide__ = True
        for label, predictions, windows in self.predictions():
            check_predictions(self.case, predictions, windows, label)


# --------------------------------------------------------------------------- the test class


_CACHE: dict[tuple[type, str], tuple[bool, Any]] = {}
atexit.register(_CACHE.clear)  # drop the fitted models while their libraries are still loaded


class ForecasterContract:
    """Base class of a model's contract tests: subclass it as ``Test<Model>`` and set
    ``model_name``; every ``test_*`` method below then runs on that model. The model is fit
    once per class and that fit is shared by the tests that only read it.

    Class attributes (override in the subclass):

    - ``model_name``: the registered name (required).
    - ``params``: hyperparameters to test with, laid over one configuration drawn from the
      model's space with a seeded Optuna trial (``None``: the drawn configuration as is).
    - ``horizon`` (4), ``n_series`` (3), ``seed`` (42), ``dataset`` ("walmart"),
      ``device`` ("cpu"), ``n_threads`` (None: as ``mlf optimize`` gives one trial).
    - ``rtol`` / ``atol``: tolerance when two predictions must agree (determinism, pickling,
      row independence), in the windows' scaled units.
    - ``plugin``: a plugin object or module with an ``@hookimpl register_models`` to test
      without installing it (entry points are then not loaded); or override
      :meth:`make_registry`.
    """

    model_name: ClassVar[str] = ""
    params: ClassVar[Mapping[str, Any] | None] = None
    horizon: ClassVar[int] = DEFAULT_HORIZON
    n_series: ClassVar[int] = DEFAULT_N_SERIES
    seed: ClassVar[int] = DEFAULT_SEED
    dataset: ClassVar[str] = "walmart"
    device: ClassVar[str] = "cpu"
    n_threads: ClassVar[int | None] = None
    rtol: ClassVar[float] = 1e-5
    atol: ClassVar[float] = 1e-6
    plugin: ClassVar[object | None] = None

    def make_registry(self) -> Registry:
        """The registry the model is looked up in (override to build your own)."""
        if self.plugin is not None:
            registry = Registry(entry_points=False)
            registry.add_plugin(self.plugin, name=getattr(self.plugin, "__name__", None))
            return registry
        return Registry()

    # ---- computed once per class ---------------------------------------------------------
    def _memo(self, key: str, compute: Callable[[], Any]) -> Any:
        __tracebackhide__ = True
        slot = (type(self), key)
        if slot not in _CACHE:
            try:
                _CACHE[slot] = (True, compute())
            except Exception as exc:
                _CACHE[slot] = (False, (exc, exc.__traceback__))
        ok, value = _CACHE[slot]
        if not ok:  # the same failure in every test that needs it, with its own traceback
            exc, traceback = value
            raise exc.with_traceback(traceback)
        return value

    @property
    def entry(self) -> ModelEntry:
        def lookup() -> ModelEntry:
            if not self.model_name:
                raise ContractError(f"{type(self).__name__}: set model_name = '<registered name>'")
            return _lookup(self.make_registry(), self.model_name)

        return self._memo("entry", lookup)

    @property
    def case(self) -> ContractCase:
        return self._memo(
            "case",
            lambda: make_case(self.entry, self.params, self.case_options()),
        )

    def case_options(self) -> CaseOptions:
        """The :class:`CaseOptions` of the class attributes."""
        return CaseOptions(**{f.name: getattr(self, f.name) for f in fields(CaseOptions)})

    @property
    def fitted(self) -> Fitted:
        return self._memo("fitted", lambda: Fitted.fit(self.case))

    def _skip_without_report(self) -> None:
        if not self.fitted.report_calls:
            import pytest

            pytest.skip(f"{self.model_name} never calls report, so it is never pruned")

    # ---- the spec --------------------------------------------------------------------------
    def test_spec_is_complete(self) -> None:
        check_spec_fields(self.entry, self.model_name)

    def test_requires_are_installed(self) -> None:
        check_requires(self.entry)

    def test_factory_is_importable(self) -> None:
        check_factory(self.entry)

    def test_space_loads_and_validates(self) -> None:
        check_space(self.entry)

    # ---- fit and predict -------------------------------------------------------------------
    def test_fit_predict_shapes(self) -> None:
        for label, predictions, windows in self.fitted.predictions():
            check_shape(self.case, predictions, windows, label)

    def test_predictions_are_finite(self) -> None:
        self.fitted.check_shapes_and_finite()

    def test_fit_without_validation_or_report(self) -> None:
        check_refit(self.case, self.fitted.model)

    def test_deterministic_under_seed(self) -> None:
        check_deterministic(self.case, self.fitted.reference)

    def test_report_calls_are_valid(self) -> None:
        check_report_calls(self.case, self.fitted.model, self.fitted.report_calls)
        self._skip_without_report()

    def test_pruning_stops_fit(self) -> None:
        self._skip_without_report()
        check_pruning_stops_fit(self.case)

    def test_pickled_model_predicts_the_same(self) -> None:
        check_pickle(self.case, self.fitted.model)

    def test_predicts_any_number_of_windows(self) -> None:
        check_predict_any_windows(self.case, self.fitted.model)

    def test_gets_intervals_and_joins_ensembles(self) -> None:
        check_intervals_and_ensemble(self.case)

    def test_copes_with_short_histories_and_one_series(self) -> None:
        check_short_histories(self.case)

    def test_leaves_inputs_unchanged(self) -> None:
        fitted = self.fitted
        for _ in fitted.predictions():
            pass
        check_unchanged(self.case, fitted.snapshot)


# --------------------------------------------------------------------------- helpers


def _lookup(registry: Registry, name: str) -> ModelEntry:
    __tracebackhide__ = True
    try:
        return registry.get(name)
    except MlfError as exc:
        problems = "; ".join(registry.problems)
        detail = f" (plugin problems: {problems})" if problems else ""
        raise ContractError(f"{exc}{detail}") from None


def _load_space(entry: ModelEntry):
    __tracebackhide__ = True
    try:
        space = entry.load_space()
    except MlfError as exc:
        raise ContractError(f"{entry.name}: invalid space: {exc}") from None
    return space


def _fit(case, model, train, valid, report, how: str = "fit(train, valid, report)") -> None:
    __tracebackhide__ = True
    import optuna

    try:
        model.fit(train, valid, report)
    except (ContractError, optuna.TrialPruned):
        raise
    except Exception as exc:
        raise ContractError(
            f"{case.name}.{how} with params {case.params} raised {type(exc).__name__}: {exc}"
        ) from exc


def _predict(case: ContractCase, model: Any, windows: Windows, label: str) -> Any:
    __tracebackhide__ = True
    try:
        return model.predict(windows)
    except Exception as exc:
        detail = " (their y is None: predict must not read labels)" if windows.y is None else ""
        raise ContractError(
            f"{case.name}.predict on {len(windows)} {label} window(s){detail} raised "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _fit_and_predict(case: ContractCase, global_seed: int) -> tuple[np.ndarray, np.ndarray]:
    __tracebackhide__ = True
    with global_random_state(global_seed):
        model = case.create()
        _fit(case, model, case.train, case.valid, ReportRecorder())
        return (
            np.asarray(_predict(case, model, case.valid, "validation"), dtype=float),
            np.asarray(_predict(case, model, case.future, "future"), dtype=float),
        )


@contextmanager
def global_random_state(seed: int) -> Iterator[None]:
    """Seed the global generators (random, numpy, torch when loaded) differently, then restore:
    a model that relies on them instead of task.seed gives different results."""
    import sys

    state = random.getstate(), np.random.get_state()
    torch = sys.modules.get("torch")
    torch_state = torch.random.get_rng_state() if torch is not None else None
    random.seed(seed)
    np.random.seed(seed)
    if torch is not None:
        torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        if torch is not None:
            torch.random.set_rng_state(torch_state)


def _same(case: ContractCase, a: Any, b: Any, what: str, fix: str) -> None:
    __tracebackhide__ = True
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ContractError(f"{what}: shapes {a.shape} and {b.shape}")
    if not np.allclose(a, b, rtol=case.rtol, atol=case.atol, equal_nan=True):
        gap = float(np.nanmax(np.abs(a - b)))
        raise ContractError(
            f"{what} (largest difference {gap:.3g}, tolerance rtol={case.rtol:g}, "
            f"atol={case.atol:g}); {fix}"
        )


def _arrays(windows: Windows) -> dict[str, np.ndarray]:
    """A copy of every array field of ``windows``."""
    out = {}
    for item in fields(windows):
        value = getattr(windows, item.name)
        if isinstance(value, np.ndarray):
            out[item.name] = value.copy()
    return out


def _take(windows: Windows | Histories, rows: np.ndarray) -> Windows | Histories:
    """The windows (or histories) at ``rows`` (any order, repeats allowed)."""
    if isinstance(windows, Histories):
        from .data.histories import select

        return select(windows, rows)
    n = len(windows)

    def pick(value):
        if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == n:
            return value[rows]
        return value

    return replace(windows, **{f.name: pick(getattr(windows, f.name)) for f in fields(windows)})


def _labelled(case: ContractCase) -> tuple[tuple[str, Windows], ...]:
    return (("train", case.train), ("valid", case.valid), ("future", case.future))
