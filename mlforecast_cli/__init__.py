"""mlf: find the best forecasting model and hyperparameters for a sales panel.

The public API for plugin authors and library users. Importing it loads nothing heavy.
"""

from __future__ import annotations

import sys

from .errors import DataError, MlfError, PluginError, SpaceError, UnknownModelError, UsageError
from .models.contract import (
    Forecaster,
    ForecasterProtocol,
    Histories,
    ModelSpec,
    ReportFn,
    SeriesForecaster,
    TaskInfo,
    Windows,
)
from .models.hookspecs import hookimpl
from .models.registry import ModelEntry, Registry, get_model, get_models, get_registry
from .services.executors import ExecutorUnavailable, SeriesExecutor, series_executor

__version__ = "0.1.0"

MOVED = {
    "baseline": "models.baseline",
    "contract": "models.contract",
    "hookspecs": "models.hookspecs",
    "registry": "models.registry",
    "metrics": "search.metrics",
    "space": "search.space",
    "panel": "data.panel",
    "split": "data.split",
    "windows": "data.windows",
    "series": "data.histories",
    "runner": "trials.fit",
    "scoring": "trials.scoring",
    "storage": "services.storage",
}
"""Plugin-facing modules that moved in 0.2 (old name → new): importing an old name still
works, with a DeprecationWarning, until 0.3."""


class _MovedModules:
    """Import hook for :data:`MOVED`: the old module name gives the new module's names."""

    def find_spec(self, name: str, path=None, target=None):
        import importlib.util

        old = name.removeprefix(f"{__name__}.")
        if name == old or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        import importlib
        import warnings

        new = f"{__name__}.{MOVED[module.__name__.removeprefix(f'{__name__}.')]}"
        warnings.warn(
            f"{module.__name__} moved to {new}; the old name goes in mlf 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        target = importlib.import_module(new)
        module.__dict__.update({k: v for k, v in vars(target).items() if not k.startswith("__")})


sys.meta_path.append(_MovedModules())

__all__ = [
    "DataError",
    "ExecutorUnavailable",
    "Forecaster",
    "ForecasterProtocol",
    "Histories",
    "MlfError",
    "ModelEntry",
    "ModelSpec",
    "PluginError",
    "Registry",
    "ReportFn",
    "SeriesExecutor",
    "SeriesForecaster",
    "SpaceError",
    "TaskInfo",
    "UnknownModelError",
    "UsageError",
    "Windows",
    "__version__",
    "get_model",
    "get_models",
    "get_registry",
    "hookimpl",
    "series_executor",
]
