"""LSTM: a recurrent encoder over the past window, a per-step head over the whole horizon.

The encoder reads the scaled past window; its last hidden state (both directions when
bidirectional), the series embedding and each horizon step's known inputs (seasonal value and
mask, features, calendar) give one correction per step over the seasonal naive forecast. The
training loop is shared with tcn and transformer (``_torch_training``); torch is imported only
when a model is fit or loaded, never when models are listed.
"""

from __future__ import annotations

from mlforecast_cli.plugins._neural import TORCH_INSTALL, NeuralForecaster
from mlforecast_cli.plugins._params import TRAINING_PARAMS

from mlforecast_cli import ModelSpec, hookimpl


def build_network(params, dims):
    """The ``torch.nn.Module`` for ``params`` (see ``_torch_training`` for its inputs)."""
    from mlforecast_cli.plugins._torch_training import StepHead, setting
    from torch import nn

    hidden = int(params.get("hidden_size", 128))
    layers = int(params.get("num_layers", 1))
    directions = 2 if bool(params.get("bidirectional", False)) else 1
    dropout = float(setting(params, "dropout"))

    class LSTMNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(
                input_size=1,
                hidden_size=hidden,
                num_layers=layers,
                batch_first=True,
                dropout=dropout if layers > 1 else 0.0,  # only between layers
                bidirectional=directions == 2,
            )
            self.head = StepHead(hidden * directions, dims, params)

        def forward(self, past, steps, series):
            _, (h_n, _) = self.lstm(past)
            # h_n: (layers * directions, n, hidden); the last layer's final state per direction
            context = h_n[-directions:].transpose(0, 1).reshape(past.shape[0], -1)
            return self.head(context, steps, series)

    return LSTMNet()


class LSTMForecaster(NeuralForecaster):
    """Long short-term memory network, trained with the shared loop (early stopping, pruning)."""

    network = "lstm"
    build_network = staticmethod(build_network)


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="lstm",
            summary="LSTM encoder, per-step head over the horizon (PyTorch)",
            family="neural",
            factory="mlforecast_cli.plugins.lstm:LSTMForecaster",
            space="mlforecast_cli.spaces:lstm.yaml",
            requires=("torch",),
            install=TORCH_INSTALL,
            extra_params=TRAINING_PARAMS,
        )
    )
