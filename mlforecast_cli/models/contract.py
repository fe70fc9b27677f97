"""The model contract: what the core hands a plugin's model and what it expects back.

Two kinds of model, declared by :attr:`ModelSpec.input`: a *windows* model (``"windows"``,
the default) learns from samples the core cut out of every series (:class:`Windows`); a
*whole-series* model (``"series"``) is handed each series' whole history (:class:`Histories`)
and forecasts the ``horizon`` steps after its end. Both have the same methods,
``fit(train, valid=None, report=None)`` and ``predict(inputs) -> (len(inputs), horizon)``.

Imports nothing heavy: numpy is only named in annotations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

ReportFn = Callable[[int, float], None]
"""``report(step, value)``: a model calls it to let the pruner judge its learning curve."""

WINDOWS = "windows"
"""``ModelSpec.input`` of a model that learns from :class:`Windows` (the default)."""
SERIES = "series"
"""``ModelSpec.input`` of a whole-series model: it is given :class:`Histories`."""
INPUTS = (WINDOWS, SERIES)
CORE_PARAMS = ("window_size", "scaler")
"""Parameters the core reads to cut a windows model's samples: every windows model accepts
them; a whole-series model only when it declares them (it is handed unscaled histories)."""


@dataclass(frozen=True)
class Windows:
    """Samples the core has cut out of a panel and scaled; one row per sample.

    ``n`` samples, ``w`` past steps (window size), ``h`` horizon steps.
    Every array is in scaled units; ``loc`` and ``scale`` undo the scaling
    (``original = scaled * scale[:, None] + loc[:, None]``), which is the core's job.

    Training windows are every ``w + h`` stretch that lies wholly before the fold's cut-off.
    No ``window_size`` is too large for a panel: an input that reaches before its series'
    start repeats the series' first value (``observed`` counts the real steps), and a series
    too short for a full window gives its one latest sample. Where a window sits in the
    season is told by ``calendar`` (the position of each horizon step in its cycles) and by
    ``step_offset``.

    The core may hand the same windows to several fits (a study keeps its cuts for the next
    trials), so a model reads these arrays and never writes into them.
    """

    x: np.ndarray
    """(n, w) past target values, oldest first."""
    y: np.ndarray | None
    """(n, h) the target over the horizon; None when forecasting past the data."""
    seasonal: np.ndarray
    """(n, h) the target one season (or whole seasons) before each horizon step; NaN where
    the history is too short."""
    features: np.ndarray
    """(n, h, f) known-in-advance feature columns at each horizon step."""
    calendar: np.ndarray
    """(n, h, c) sin/cos pairs of the position of each horizon step in its cycles, column
    pairs in this order: sub-hourly data hour, day, year (c=6); hourly day, week, year (c=6);
    daily day of week, year (c=4); weekly and longer the year (c=2)."""
    series: np.ndarray
    """(n,) integer index of the series each sample belongs to."""
    loc: np.ndarray
    """(n,) scaling offset."""
    scale: np.ndarray
    """(n,) scaling factor (> 0)."""
    step_offset: np.ndarray | None = None
    """(n,) position of the first horizon step within its series (0 = the series' first
    time point); ``step_offset % task.season_length`` is its place in the season, counted
    from the series' start."""
    observed: np.ndarray | None = None
    """(n,) how many of the ``w`` input steps lie inside the series; the steps before them
    repeat the series' first value (None: all of them)."""

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def horizon(self) -> int:
        return int(self.seasonal.shape[1])

    @property
    def window_size(self) -> int:
        return int(self.x.shape[1])


@dataclass(frozen=True)
class Histories:
    """The whole history of each series, ragged, for a whole-series model; one entry per series.

    Series ``i`` is ``values[offsets[i]:offsets[i + 1]]``: every history lies in one flat
    array, oldest first, without padding (like Nixtla mlforecast's ``GroupedArray``). Values
    are in the data's own units (nothing is scaled). A forecast covers the ``h`` steps right
    after the end of each history, at ``future_times``. A history may be as short as one value
    (a series that starts late, a validation cut early in a short series): the model forecasts
    it all the same (the contract suite checks 1 and 2 values, less than a season, and a panel
    of one series). Nothing is windowed or scaled for it, so ``window_size`` and ``scaler``
    mean nothing to it unless it declares them (``ModelSpec.extra_params``).
    """

    values: np.ndarray
    """(t,) the target of every history, series after series, oldest first."""
    offsets: np.ndarray
    """(n + 1,) where each series starts in ``values`` (``offsets[-1] == t``)."""
    times: np.ndarray
    """(t,) datetime64[ns] time of each value."""
    past_features: np.ndarray
    """(t, f) the known-in-advance features at each value's time."""
    features: np.ndarray
    """(n, h, f) the known-in-advance features over each forecast horizon."""
    future_times: np.ndarray
    """(n, h) datetime64[ns] times of the horizon steps."""
    series: np.ndarray
    """(n,) integer index of each series in the panel."""
    season_length: int
    """Steps in one season of the data (52 weekly, 12 monthly, 4 quarterly, 7 daily...)."""
    y: np.ndarray | None = None
    """(n, h) the target over each horizon: the labels of the validation histories a search
    passes to ``fit``; None otherwise (predict must not read it)."""

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def horizon(self) -> int:
        return int(self.features.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """(n,) the length of each history."""
        import numpy as np

        return np.diff(self.offsets)

    def history(self, i: int) -> np.ndarray:
        """The values of series ``i`` (a view, oldest first)."""
        return self.values[int(self.offsets[i]) : int(self.offsets[i + 1])]


@dataclass(frozen=True)
class TaskInfo:
    """What a model may know about the task beyond its own hyperparameters."""

    horizon: int
    season_length: int
    n_series: int
    n_features: int = 0
    n_calendar: int = 0
    feature_names: tuple[str, ...] = ()
    seed: int = 42
    device: str = "cpu"
    """"cpu", "cuda" or "mps": already resolved by the core (never "auto")."""
    n_threads: int = 1
    """Cores this model may use (the core divides the machine among parallel trials)."""


@runtime_checkable
class ForecasterProtocol(Protocol):
    """Structural form of the contract, for plugins that do not subclass :class:`Forecaster`."""

    def fit(
        self, train: Windows, valid: Windows | None = None, report: ReportFn | None = None
    ) -> Any: ...

    def predict(self, windows: Windows) -> np.ndarray: ...


class Forecaster:
    """Base class of a model: built with its hyperparameters and the task, then fit and predict.

    ``fit`` learns from ``train`` windows; ``valid`` (when given) may drive early stopping and
    ``report(step, value)`` (when given) lets the core prune a weak trial. ``predict`` returns
    an array of shape ``(len(windows), horizon)`` in the same scaled units as ``windows``.
    """

    supports_pruning: bool = False
    """True when ``fit`` calls ``report`` (the contract suite then checks that it does)."""
    uses_features: bool | None = None
    """Whether forecasts depend on the feature columns; None: ``mlf predict`` finds out by
    probing when future feature values are missing."""

    def __init__(self, params: Mapping[str, Any], task: TaskInfo) -> None:
        self.params = dict(params)
        self.task = task

    def fit(
        self, train: Windows, valid: Windows | None = None, report: ReportFn | None = None
    ) -> Forecaster:
        raise NotImplementedError

    def predict(self, windows: Windows) -> np.ndarray:
        raise NotImplementedError

    def refit_params(self) -> dict[str, Any]:
        """Parameters a refit on train + valid should use (what early stopping chose, e.g.
        ``{"n_estimators": 212}``); JSON values the factory accepts. Empty by default."""
        return {}


class SeriesForecaster(Forecaster):
    """Base class of a whole-series model (``ModelSpec(input="series")``).

    ``fit(train, valid=None, report=None)`` gets :class:`Histories` up to the fold's cut-off;
    ``valid``, when given, is the same histories with ``y``, the labels of the horizon after
    them (what the trial is scored on). ``predict(histories)`` returns ``(len(histories),
    horizon)`` forecasts of the steps after each history's end, in the data's own units.
    A local model (one model per series, fit on its history) may do all its work in
    ``predict``, so that it forecasts any history it is given (``mlf predict`` passes the
    whole data).
    """

    def fit(
        self, train: Histories, valid: Histories | None = None, report: ReportFn | None = None
    ) -> SeriesForecaster:
        raise NotImplementedError

    def predict(self, histories: Histories) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class ModelSpec:
    """Cheap metadata a plugin registers for one model; building it imports nothing heavy.

    ``factory`` is ``"package.module:Class"`` or a callable; it is called as
    ``factory(params, task)`` and returns a :class:`Forecaster`.
    ``space`` is a path to a YAML file or ``"package:resource.yaml"``.
    ``requires`` lists import names that must be installed; ``install`` is the pip command
    that brings them (defaults to ``pip install <missing>``). ``input`` says what the model
    is given: ``"windows"`` (:class:`Windows`) or ``"series"`` (:class:`Histories`).

    The parameters a model accepts are the names its shipped ``space`` gives (under
    ``params`` or ``fixed``), the names in ``extra_params`` (read by the factory but not in the
    shipped space) and, for a windows model, ``window_size`` and ``scaler`` (read by the core
    to cut its windows, :data:`CORE_PARAMS`). A space, ``--set`` or the
    contract suite's ``params`` naming any other parameter is refused (a misspelling would
    otherwise be passed on and silently ignored).
    """

    name: str
    summary: str
    factory: str | Callable[..., Any]
    space: Any
    family: str = "other"
    requires: tuple[str, ...] = ()
    install: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    input: str = WINDOWS
    extra_params: tuple[str, ...] = ()
