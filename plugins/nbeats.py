"""N-BEATS (Oreshkin et al. 2019): stacks of fully connected blocks with doubly residual links.

Each block reads what the blocks before it left unexplained of the scaled past window (the
*backcast residual*), passes it through an MLP and projects the result on two bases: one over
the past window (the backcast, subtracted from the block's input) and one over the horizon
(the block's partial forecast, summed over all blocks). ``stacks`` lists the stacks, written
``"trend-seasonality"``:

* ``identity`` (the paper's *generic* stack): the basis is the identity, the MLP outputs the
  backcast and the forecast values directly;
* ``trend``: a polynomial basis of degree ``n_polynomials`` (``t^0 .. t^p``);
* ``seasonality``: a Fourier basis, ``cos`` and ``sin`` of ``n_harmonics`` frequencies per
  cycle of the horizon, up to the Nyquist frequency.

``"trend-seasonality"`` is the paper's *interpretable* configuration: the forecast is the sum
of a trend and a seasonal component. Time is one axis over window and horizon (negative over
the past window), so a block's backcast and forecast continue each other.

With ``residual`` (the default) the summed forecast is a correction to the seasonal naive
value and the last layer of every block starts at zero (an untrained model is the seasonal
naive). Training loop shared with the other neural models (``_torch_training``); torch is
imported only when a model is fit or loaded.
"""

from __future__ import annotations

from mlforecast_cli.plugins._neural import TORCH_INSTALL, NeuralForecaster
from mlforecast_cli.plugins._params import TRAINING_LOOP_PARAMS

from mlforecast_cli import ModelSpec, hookimpl

STACK_TYPES = ("identity", "trend", "seasonality")


def parse_stacks(value) -> list[str]:
    """``"trend-seasonality"`` or ``["trend", "seasonality"]`` → ``["trend", "seasonality"]``."""
    items = value.replace(",", "-").split("-") if isinstance(value, str) else list(value)
    stacks = [str(s).strip().lower() for s in items if str(s).strip()]
    if not stacks or any(s not in STACK_TYPES for s in stacks):
        raise ValueError(
            f"nbeats: stacks {value!r} is not a list of {', '.join(STACK_TYPES)}; "
            'write it like "trend-seasonality" or "identity-identity"'
        )
    return stacks


def time_axes(window_size: int, horizon: int, unit: float):
    """(past, future) time: ``(-w .. -1) / unit`` and ``(0 .. h-1) / unit``."""
    import numpy as np

    return np.arange(-window_size, 0) / unit, np.arange(horizon) / unit


def trend_basis(window_size: int, horizon: int, degree: int):
    """(backcast, forecast) polynomial bases, shapes ``(degree+1, w)`` and ``(degree+1, h)``.

    Time is in units of the longer of window and horizon, so every value lies in [-1, 1].
    """
    import numpy as np

    past, future = time_axes(window_size, horizon, max(window_size, horizon))
    powers = np.arange(degree + 1)[:, None]
    return past[None, :] ** powers, future[None, :] ** powers


def seasonality_basis(window_size: int, horizon: int, harmonics: int):
    """(backcast, forecast) Fourier bases, shapes ``(2f-1, w)`` and ``(2f-1, h)``.

    ``f = max(1, harmonics * horizon // 2)`` frequencies ``0, 1/harmonics, 2/harmonics, ...``
    cycles per horizon (up to the Nyquist frequency); the constant has no ``sin`` row.
    """
    import numpy as np

    n_freq = max(1, int(harmonics) * horizon // 2)
    freq = np.arange(n_freq)[:, None] / max(int(harmonics), 1)

    def rows(t):
        angle = 2 * np.pi * freq * t[None, :]
        return np.concatenate([np.cos(angle), np.sin(angle[1:])])

    past, future = time_axes(window_size, horizon, horizon)
    return rows(past), rows(future)


def build_network(params, dims):
    """The ``torch.nn.Module`` for ``params`` (see ``_torch_training`` for its inputs)."""
    import torch
    from mlforecast_cli.plugins._torch_training import setting, zero_linear
    from torch import nn

    stacks = parse_stacks(params.get("stacks", "trend-seasonality"))
    n_blocks = max(int(params.get("n_blocks", 3)), 1)
    units = int(params.get("mlp_units", 256))
    layers = max(int(params.get("mlp_layers", 2)), 1)
    shared = bool(params.get("shared_weights", False))
    dropout = float(setting(params, "dropout"))
    residual = bool(setting(params, "residual"))
    w, h = dims.window_size, dims.horizon

    def bases(kind: str):
        if kind == "trend":
            return trend_basis(w, h, int(params.get("n_polynomials", 2)))
        if kind == "seasonality":
            return seasonality_basis(w, h, int(params.get("n_harmonics", 2)))
        return None

    class Block(nn.Module):
        """MLP → θ; backcast = θ_b · B_past, forecast = θ_f · B_future (identity: θ itself)."""

        def __init__(self, kind: str) -> None:
            super().__init__()
            basis = bases(kind)
            if basis is None:
                n_back, n_fore = w, h
                self.register_buffer("past_basis", torch.empty(0))
                self.register_buffer("future_basis", torch.empty(0))
            else:
                past, future = (torch.as_tensor(b, dtype=torch.float32) for b in basis)
                n_back, n_fore = past.shape[0], future.shape[0]
                self.register_buffer("past_basis", past)
                self.register_buffer("future_basis", future)
            self.n_back = n_back
            mlp: list[nn.Module] = []
            size = w
            for _ in range(layers):
                mlp += [nn.Linear(size, units), nn.ReLU()]
                if dropout > 0:
                    mlp.append(nn.Dropout(dropout))
                size = units
            self.mlp = nn.Sequential(*mlp)
            self.theta = (
                zero_linear(units, n_back + n_fore)
                if residual
                else nn.Linear(units, n_back + n_fore)
            )

        def forward(self, x):
            theta = self.theta(self.mlp(x))
            back, fore = theta[:, : self.n_back], theta[:, self.n_back :]
            if self.past_basis.numel():
                back, fore = back @ self.past_basis, fore @ self.future_basis
            return back, fore

    class NBEATSNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kinds = stacks
            self.stacks = nn.ModuleList()
            for kind in stacks:
                if shared:
                    block = Block(kind)
                    self.stacks.append(nn.ModuleList([block] * n_blocks))
                else:
                    self.stacks.append(nn.ModuleList(Block(kind) for _ in range(n_blocks)))

        def components(self, past):
            """(n, stacks, h): each stack's share of the forecast."""
            x = past[..., 0]
            parts = []
            for blocks in self.stacks:
                total = x.new_zeros(x.shape[0], h)
                for block in blocks:
                    back, fore = block(x)
                    x = x - back
                    total = total + fore
                parts.append(total)
            return torch.stack(parts, dim=1)

        def forward(self, past, steps, series):
            return self.components(past).sum(dim=1)

    return NBEATSNet()


class NBEATSForecaster(NeuralForecaster):
    """N-BEATS, trained with the shared loop (early stopping, pruning)."""

    network = "nbeats"
    build_network = staticmethod(build_network)

    def __init__(self, params, task) -> None:
        super().__init__(params, task)
        parse_stacks(self.params.get("stacks", "trend-seasonality"))  # fail early, clearly


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="nbeats",
            summary="N-BEATS: doubly residual MLP blocks, trend/seasonality bases (PyTorch)",
            family="neural",
            factory="mlforecast_cli.plugins.nbeats:NBEATSForecaster",
            space="mlforecast_cli.spaces:nbeats.yaml",
            requires=("torch",),
            install=TORCH_INSTALL,
            extra_params=TRAINING_LOOP_PARAMS,
        )
    )
