"""The Forecaster the PyTorch plugins share; imports no torch (the training loop does)."""

from __future__ import annotations

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
