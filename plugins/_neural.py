"""The Forecaster the PyTorch plugins share; imports no torch (the training loop does)."""

from __future__ import annotations

from typing import Any

from mlforecast_cli import Forecaster

TORCH_INSTALL = 'pip install "mlforecast-cli[torch]"'
"""How to install what the PyTorch plugins need (their ModelSpec.install)."""


class NeuralForecaster(Forecaster):
    """Fits and predicts through the shared training loop (early stopping, pruning per epoch).

    A subclass sets ``network`` (its name in messages) and ``build_network`` (a staticmethod
    that builds the torch module, see ``_torch_training.NeuralTrainer``).
    """

    supports_pruning = True
    network = ""
    build_network = None

    def __init__(self, params, task) -> None:
        super().__init__(params, task)
        self.trainer = None

    def fit(self, train, valid=None, report=None):
        from mlforecast_cli.plugins._torch_training import NeuralTrainer

        self.trainer = NeuralTrainer(self.network, self.build_network, self.params, self.task)
        self.trainer.fit(train, valid, report)
        return self

    def predict(self, windows):
        if self.trainer is None:
            raise RuntimeError(f"{self.network}: call fit before predict")
        return self.trainer.predict(windows)

    def refit_params(self):
        return self.trainer.refit_params() if self.trainer is not None else {}


def parse_sizes(where: str, value: Any, example: str) -> list[int]:
    """``"32-64-128"``, ``[32, 64, 128]`` or ``64`` → ``[32, 64, 128]`` / ``[64]``: positive
    whole numbers, one per layer or stack; ``where`` names the model and parameter in the
    error (``"tcn: num_channels"``), ``example`` shows the form."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, str):
        items = [v for v in value.replace(",", "-").replace(" ", "-").split("-") if v]
    else:
        items = list(value)
    try:
        sizes = [int(v) for v in items]
    except (TypeError, ValueError):
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ValueError(
            f'{where} {value!r} is not a list of positive whole numbers; write it like "{example}"'
        )
    return sizes
