"""TCN: a temporal convolutional network (Bai, Kolter & Koltun 2018) over the past window.

Residual blocks of two dilated causal convolutions (dilation 1, 2, 4, ... per block, one block
per entry of ``num_channels``); the last time step's channels, the series embedding and each
horizon step's known inputs give one correction per step over the seasonal naive forecast.
``num_channels`` is a categorical of channel lists written ``"32-64-128"``. The receptive
field is ``1 + 2 (kernel_size - 1) (2^levels - 1)`` steps. Training loop shared with lstm and
transformer (``_torch_training``); torch is imported only when a model is fit or loaded.
"""

from __future__ import annotations

from mlforecast_cli.plugins._neural import TORCH_INSTALL, NeuralForecaster, parse_sizes
from mlforecast_cli.plugins._params import TRAINING_PARAMS

from mlforecast_cli import ModelSpec, hookimpl


def receptive_field(kernel_size: int, levels: int) -> int:
    """Past steps one output of the TCN sees (two convolutions per block)."""
    return 1 + 2 * (kernel_size - 1) * (2**levels - 1)


def channel_counts(params) -> list[int]:
    """The channels of each temporal block (``num_channels``), checked."""
    return parse_sizes("tcn: num_channels", params.get("num_channels", "32-64-128"), "32-64-128")


def build_network(params, dims):
    """The ``torch.nn.Module`` for ``params`` (see ``_torch_training`` for its inputs)."""
    from mlforecast_cli.plugins._torch_training import StepHead, setting
    from torch import nn

    channels = parse_sizes(
        "tcn: num_channels", params.get("num_channels", "32-64-128"), "32-64-128"
    )
    kernel = int(params.get("kernel_size", 3))
    dropout = float(setting(params, "dropout"))

    class CausalConv(nn.Module):
        """Conv1d padded on the left only: output t sees inputs <= t."""

        def __init__(self, n_in: int, n_out: int, dilation: int) -> None:
            super().__init__()
            self.pad = (kernel - 1) * dilation
            self.conv = nn.Conv1d(n_in, n_out, kernel, dilation=dilation)
            nn.init.normal_(self.conv.weight, 0.0, 0.01)

        def forward(self, x):
            return self.conv(nn.functional.pad(x, (self.pad, 0)))

    class Block(nn.Module):
        def __init__(self, n_in: int, n_out: int, dilation: int) -> None:
            super().__init__()
            self.net = nn.Sequential(
                CausalConv(n_in, n_out, dilation),
                nn.ReLU(),
                nn.Dropout(dropout),
                CausalConv(n_out, n_out, dilation),
                nn.ReLU(),
                nn.Dropout(dropout),
            )
            self.skip = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else nn.Identity()

        def forward(self, x):
            return nn.functional.relu(self.net(x) + self.skip(x))

    class TCN(nn.Module):
        """(n, 1, w) → (n, channels[-1], w), causal."""

        def __init__(self) -> None:
            super().__init__()
            sizes = [1, *channels]
            self.blocks = nn.Sequential(
                *(Block(sizes[i], sizes[i + 1], 2**i) for i in range(len(channels)))
            )

        def forward(self, x):
            return self.blocks(x)

    class TCNNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tcn = TCN()
            self.head = StepHead(channels[-1], dims, params)

        def forward(self, past, steps, series):
            features = self.tcn(past.transpose(1, 2))
            return self.head(features[:, :, -1], steps, series)

    return TCNNet()


class TCNForecaster(NeuralForecaster):
    """Temporal convolutional network, trained with the shared loop (early stopping, pruning)."""

    network = "tcn"
    build_network = staticmethod(build_network)

    def __init__(self, params, task) -> None:
        super().__init__(params, task)
        parse_sizes(
            "tcn: num_channels", self.params.get("num_channels", "32-64-128"), "32-64-128"
        )  # fail early, clearly


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="tcn",
            summary="Temporal convolutional network: dilated causal convolutions (PyTorch)",
            family="neural",
            factory="mlforecast_cli.plugins.tcn:TCNForecaster",
            space="mlforecast_cli.spaces:tcn.yaml",
            requires=("torch",),
            install=TORCH_INSTALL,
            extra_params=TRAINING_PARAMS,
        )
    )
