"""A refit model with everything needed to forecast again: windowing, scaling, the task.

Saved as a folder: ``model.pkl`` (this object, pickled) and ``mlf_model.json`` (the same
facts, readable without unpickling).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..models.contract import SERIES, WINDOWS, TaskInfo

if TYPE_CHECKING:
    from ..ensembles.intervals import ConformalScores

PICKLE = "model.pkl"
META = "mlf_model.json"
WHOLE_HISTORY = "whole history"
"""``SavedModel.trained_on`` of a model fitted on every step of the data (the default)."""
TRAIN_VALID = "train + valid"
"""``SavedModel.trained_on`` of the refit scored on the test window (``--no-final-refit``)."""


@dataclass
class SavedModel:
    """The refit forecaster of a study and the data settings it was trained with."""

    model_name: str
    plugin: str
    plugin_version: str | None
    params: dict[str, Any]
    task: TaskInfo
    columns: dict[str, Any]
    freq: str
    series_ids: list[str]
    window_size: int
    scaler: str
    forecaster: Any
    study_name: str = ""
    data_fingerprint: str = ""
    test_metrics: dict[str, float] = field(default_factory=dict)
    mlf_version: str = ""
    input: str = WINDOWS
    """What the forecaster is given: ``"windows"`` or ``"series"`` (whole histories)."""
    conformal: ConformalScores | None = None
    """Scaled validation residuals per horizon step: the model's prediction intervals."""
    members: list[tuple[float, SavedModel]] = field(default_factory=list)
    """An ensemble's weighted members (``forecaster`` is then None)."""
    trained_on: str = TRAIN_VALID
    """What the forecaster was fitted on: :data:`WHOLE_HISTORY` or :data:`TRAIN_VALID` (then
    the test window was never seen). ``test_metrics`` are the train + valid refit's either way."""

    @property
    def horizon(self) -> int:
        return self.task.horizon

    def metadata(self) -> dict[str, Any]:
        skip = ("forecaster", "task", "conformal", "members")
        meta = {k: v for k, v in vars(self).items() if k not in skip}
        meta["task"] = asdict(self.task)
        meta["intervals"] = self.conformal is not None
        meta["members"] = [
            {"model": m.model_name, "study_name": m.study_name, "weight": w}
            for w, m in self.members
        ]
        return meta

    def save(self, folder: str | Path) -> Path:
        """Write the model into ``folder`` (created) and return it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / PICKLE, "wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        (folder / META).write_text(json.dumps(self.metadata(), indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> SavedModel:
        with open(Path(folder) / PICKLE, "rb") as fh:
            model = pickle.load(fh)
        if not isinstance(model, cls):
            raise TypeError(f"{folder} does not hold an mlf model")
        return model

    def model_inputs(self, panel):
        """What the forecaster predicts from for the ``horizon`` steps past the end of every
        series of ``panel``: :class:`Windows` or, for a whole-series model, :class:`Histories`."""
        if self.input == SERIES:
            from ..data.histories import make_histories

            return make_histories(panel, panel.lengths, self.horizon)
        from ..data.windows import make_windows

        return make_windows(
            panel, panel.lengths, self.window_size, self.horizon, mode="eval", scaler=self.scaler
        )

    def original_units(self, raw, inputs):
        """The forecaster's (n, h) output on ``inputs`` in the data's units."""
        if self.input == SERIES:
            return raw
        from ..data.windows import inverse_scale

        return inverse_scale(raw, inputs)
