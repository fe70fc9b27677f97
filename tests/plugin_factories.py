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


def write_distribution(
    root: Path, dist: str, module: str, source: str, version="1.0", entry: str | None = None
) -> Path:
    """A minimal installed distribution (dist-info with an mlf entry point ``entry``, by
    default the module's name) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[mlf]\n{entry or module} = {module}\n")
    return root


CURVE_SPACE = textwrap.dedent(
    """
    params:
      quality: {type: int, low: 0, high: 9}
    fixed:
      window_size: 8
      scaler: window
      steps: 20
    optimizer:
      sampler: {type: RandomSampler, seed: 3}
      pruner: {type: MedianPruner, n_startup_trials: 2, n_warmup_steps: 2}
    """
)


class CurveModel(MeanModel):
    """Reports a flat learning curve at ``quality + 1``: high quality values are bad trials."""

    supports_pruning = True

    def fit(self, train, valid=None, report=None):
        for step in range(int(self.params.get("steps", 20))):
            if report is not None:
                report(step, float(self.params["quality"] + 1))
        return self

    def predict(self, windows):
        mean = windows.x.mean(axis=1, keepdims=True)
        return np.repeat(mean, windows.horizon, axis=1) * (1 + 0.01 * self.params["quality"])


class FlakyModel(MeanModel):
    """Raises for ``mode == "raise"``, predicts NaN for ``mode == "nan"``, else works."""

    def fit(self, train, valid=None, report=None):
        if self.params["mode"] == "raise":
            raise ValueError("flaky model exploded\nwith a second line")
        return self

    def predict(self, windows):
        out = super().predict(windows)
        return out * np.nan if self.params["mode"] == "nan" else out


class InterruptingModel(MeanModel):
    """Behaves like Ctrl-C during the fit of its third trial."""

    fits = 0

    def fit(self, train, valid=None, report=None):
        type(self).fits += 1
        if type(self).fits == 3:
            raise KeyboardInterrupt
        return self


def spec_plugin(name: str, factory, space_text: str, tmp_path: Path):
    """A plugin object registering ``factory`` as model ``name`` with the given space."""
    space = tmp_path / f"{name}.yaml"
    space.write_text(space_text)

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(
                ModelSpec(
                    name=name, summary="test model", family="other", factory=factory, space=space
                )
            )

    return Plugin()
