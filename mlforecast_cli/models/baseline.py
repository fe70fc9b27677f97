"""The seasonal naive forecast: the reference model, and the base the tree target
``seasonal_gap`` and the PyTorch models' inputs are built on. Written once, here."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from .contract import Windows


def seasonal_naive(windows: Windows) -> np.ndarray:
    """(n, h) in the windows' scaled units: the value one season back where the history has
    it, else the window's last value (the naive forecast)."""
    import numpy as np

    seasonal = np.asarray(windows.seasonal, dtype=np.float64)
    last = np.broadcast_to(np.asarray(windows.x, dtype=np.float64)[:, -1:], seasonal.shape)
    return np.where(np.isfinite(seasonal), seasonal, last)
