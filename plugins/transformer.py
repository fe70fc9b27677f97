"""Transformer: an encoder over the past window, a decoder over the horizon's known inputs.

Encoder tokens are the scaled past values, decoder tokens each horizon step's known inputs
(seasonal value and mask, features, calendar); both get a sinusoidal positional encoding (the
decoder's positions continue after the window) and a series embedding. The decoder reads all
horizon steps at once (no causal mask: its inputs are known in advance, not past outputs) and
gives one correction per step over the seasonal naive forecast. ``num_encoder_layers`` and
``num_decoder_layers`` are searched. A ``d_model`` that ``nhead`` does not divide is rounded
down to a multiple of ``nhead`` (the refit and the saved parameters show the value used).
Training loop shared with lstm and tcn (``_torch_training``); torch is imported only when a
model is fit or loaded.
"""

from __future__ import annotations

from mlforecast_cli.plugins._neural import TORCH_INSTALL, NeuralForecaster
from mlforecast_cli.plugins._params import TRAINING_PARAMS

from mlforecast_cli import ModelSpec, hookimpl


def repair_heads(d_model: int, nhead: int) -> tuple[int, int]:
    """(d_model, nhead) that attention can build: d_model rounded down to a multiple of nhead."""
    nhead = max(int(nhead), 1)
    return max(int(d_model) // nhead, 1) * nhead, nhead


def build_network(params, dims):
    """The ``torch.nn.Module`` for ``params`` (see ``_torch_training`` for its inputs)."""
    import math

    import torch
    from mlforecast_cli.plugins._torch_training import setting, zero_linear
    from torch import nn

    d_model, nhead = repair_heads(params.get("d_model", 64), params.get("nhead", 4))
    dropout = float(setting(params, "dropout"))
    length = dims.window_size + dims.horizon

    def positional_encoding() -> torch.Tensor:
        position = torch.arange(length, dtype=torch.float32)[:, None]
        rate = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32) * -math.log(1e4) / d_model
        )
        table = torch.zeros(length, d_model)
        table[:, 0::2] = torch.sin(position * rate)
        table[:, 1::2] = torch.cos(position * rate)[:, : d_model // 2]
        return table

    class TransformerNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encode_past = nn.Linear(1, d_model)
            self.encode_steps = nn.Linear(dims.n_step_features, d_model)
            self.embed = nn.Embedding(max(dims.n_series, 1), d_model)
            self.register_buffer("position", positional_encoding(), persistent=False)
            self.dropout = nn.Dropout(dropout)
            self.transformer = nn.Transformer(
                d_model=d_model,
                nhead=nhead,
                num_encoder_layers=int(params.get("num_encoder_layers", 2)),
                num_decoder_layers=int(params.get("num_decoder_layers", 2)),
                dim_feedforward=int(params.get("dim_feedforward", 256)),
                dropout=dropout,
                batch_first=True,
            )
            self.out = zero_linear(d_model, 1)

        def forward(self, past, steps, series):
            w = past.shape[1]
            emb = self.embed(series)[:, None, :]
            source = self.encode_past(past) + self.position[:w] + emb
            target = self.encode_steps(steps) + self.position[w : w + steps.shape[1]] + emb
            decoded = self.transformer(self.dropout(source), self.dropout(target))
            return self.out(decoded).squeeze(-1)

    return TransformerNet()


class TransformerForecaster(NeuralForecaster):
    """Encoder-decoder transformer, trained with the shared loop (early stopping, pruning)."""

    network = "transformer"
    build_network = staticmethod(build_network)

    def __init__(self, params, task) -> None:
        super().__init__(params, task)
        if "d_model" in self.params or "nhead" in self.params:
            d_model, nhead = repair_heads(
                self.params.get("d_model", 64), self.params.get("nhead", 4)
            )
            self.params.update(d_model=d_model, nhead=nhead)

    def refit_params(self):
        """The epoch early stopping kept, and the d_model actually built."""
        if self.trainer is None:
            return {}
        return {**self.trainer.refit_params(), "d_model": int(self.params.get("d_model", 64))}


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="transformer",
            summary="Encoder-decoder transformer with positional encoding (PyTorch)",
            family="neural",
            factory="mlforecast_cli.plugins.transformer:TransformerForecaster",
            space="mlforecast_cli.spaces:transformer.yaml",
            requires=("torch",),
            install=TORCH_INSTALL,
            extra_params=TRAINING_PARAMS,
        )
    )
