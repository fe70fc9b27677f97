"""mlf: find the best forecasting model and hyperparameters for a sales panel.

The public API for plugin authors and library users. Importing it loads nothing heavy.
"""

from __future__ import annotations

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

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "Forecaster",
    "ForecasterProtocol",
    "Histories",
    "MlfError",
    "ModelEntry",
    "ModelSpec",
    "PluginError",
    "Registry",
    "ReportFn",
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
]
