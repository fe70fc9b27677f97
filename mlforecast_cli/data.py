"""The data layer's public names in one place, for plugins and scripts.

The layer is split by concept: :mod:`.tables` (reading files), :mod:`.panel` (columns, the
validated panel), :mod:`.frequency` (frequency, season length, future times),
:mod:`.calendar_features`, :mod:`.split` (train | valid | test) and :mod:`.windows` (scaled
samples for window models).
"""

from __future__ import annotations

from .calendar_features import calendar_features
from .frequency import future_times, infer_freq, season_length_for
from .panel import Columns, Panel, load_panel
from .split import Fold, Split, split_panel
from .tables import read_table
from .windows import SCALERS, inverse_scale, labels, make_windows

__all__ = [
    "SCALERS",
    "Columns",
    "Fold",
    "Panel",
    "Split",
    "calendar_features",
    "future_times",
    "infer_freq",
    "inverse_scale",
    "labels",
    "load_panel",
    "make_windows",
    "read_table",
    "season_length_for",
    "split_panel",
]
