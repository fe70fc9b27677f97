"""The model contract: what the core hands a plugin's model and what it expects back.

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


@dataclass(frozen=True)
class Windows:
    """Samples the core has cut out of a panel and scaled; one row per sample.

    ``n`` samples, ``w`` past steps (window size), ``h`` horizon steps.
    Every array is in scaled units; ``loc`` and ``scale`` undo the scaling
    (``original = scaled * scale[:, None] + loc[:, None]``), which is the core's job.
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
    """(n, h, c) calendar features (sin/cos of the position in the season) at each step."""
    series: np.ndarray
    """(n,) integer index of the series each sample belongs to."""
    loc: np.ndarray
    """(n,) scaling offset."""
    scale: np.ndarray
    """(n,) scaling factor (> 0)."""
    step_offset: np.ndarray | None = None
    """(n,) position of the first horizon step within its series (for diagnostics)."""

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def horizon(self) -> int:
        return int(self.seasonal.shape[1])

    @property
    def window_size(self) -> int:
        return int(self.x.shape[1])


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


@dataclass(frozen=True)
class ModelSpec:
    """Cheap metadata a plugin registers for one model; building it imports nothing heavy.

    ``factory`` is ``"package.module:Class"`` or a callable; it is called as
    ``factory(params, task)`` and returns a :class:`Forecaster`.
    ``space`` is a path to a YAML file or ``"package:resource.yaml"``.
    ``requires`` lists import names that must be installed; ``install`` is the pip command
    that brings them (defaults to ``pip install <missing>``).
    """

    name: str
    summary: str
    factory: str | Callable[..., Any]
    space: Any
    family: str = "other"
    requires: tuple[str, ...] = ()
    install: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
