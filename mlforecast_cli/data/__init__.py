"""Reading a panel and cutting it: tables, the validated :class:`Panel`, frequency and season,
calendar features, the train/valid/test split, windows and whole-series histories.

The names below are importable from here (``from mlforecast_cli.data import split_panel``),
loaded on first use so that importing one module of the package loads no other.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "read_table": "tables",
    "Columns": "panel",
    "Panel": "panel",
    "load_panel": "panel",
    "future_rows": "panel",
    "infer_freq": "frequency",
    "season_length_for": "frequency",
    "future_times": "frequency",
    "calendar_features": "calendar_features",
    "Fold": "split",
    "Split": "split",
    "split_panel": "split",
    "SCALERS": "windows",
    "actuals": "windows",
    "inverse_scale": "windows",
    "labels": "windows",
    "make_windows": "windows",
    "make_histories": "histories",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
