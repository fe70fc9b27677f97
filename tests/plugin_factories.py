"""Small plugin objects and distributions the registry and CLI tests install."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from mlforecast_cli import Forecaster, ModelSpec, hookimpl

SPACE = textwrap.dedent(
    """
    params:
      shrink: {type: float, low: 0.0, high: 1.0}
      window_size: {type: int, low: 4, high: 12}
    fixed:
      scaler: window
    """
)


class MeanModel(Forecaster):
    """Forecasts a shrunk mean of the input window (a tiny but real model)."""

    def fit(self, train, valid=None, report=None):
        return self

    def predict(self, windows):
        mean = windows.x.mean(axis=1, keepdims=True)
        return np.repeat(mean * (1 - self.params["shrink"]), windows.horizon, axis=1)


def make_plugin(name: str, space_path: Path, model_name: str | None = None):
    """A plugin object registering one MeanModel under ``model_name``."""

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(
                ModelSpec(
                    name=model_name or name,
                    summary="mean of the window",
                    family="baseline",
                    factory=MeanModel,
                    space=space_path,
                )
            )

    Plugin.__name__ = name
    return Plugin()


def write_distribution(root: Path, dist: str, module: str, source: str, version="1.0") -> Path:
    """A minimal installed distribution (dist-info with an mlf entry point) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[mlf]\n{module} = {module}\n")
    return root
