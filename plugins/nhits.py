"""N-HiTS (Challu et al. 2022): N-BEATS blocks that each see the input at one rate and forecast
a coarse sketch of the horizon, interpolated to every step.

Stack ``i`` has ``n_blocks`` blocks; each block

1. **pools** what earlier blocks left unexplained of the scaled past window with a kernel of
   ``n_pool_kernel_size[i]`` steps (max or average, ``pooling_mode``; multi-rate sampling: a
   large kernel makes a block look at the slow part of the signal) and the horizon's known
   per-step inputs (seasonal value and mask, position, features, calendar) with the same kernel;
2. runs an MLP to the backcast (``window_size`` values, subtracted from the block's input, as
   in N-BEATS) and ``max(horizon // n_freq_downsample[i], 1)`` forecast **knots**: the
   *expressiveness ratio* of the stack, few knots for a smooth, low-frequency forecast;
3. **interpolates** the knots to the ``horizon`` steps (``interpolation``: linear or nearest).

The block forecasts add up, so the first stacks (large kernels and ratios) give the coarse
shape and the last ones (kernel and ratio 1) the detail: hierarchical interpolation. The two
lists are written ``"8-4-1"``, one entry per stack, and must be as long as each other.

With ``residual`` (the default) the summed forecast is a correction to the seasonal naive
value and the last layer of every block starts at zero. Training loop shared with the other
neural models (``_torch_training``); torch is imported only when a model is fit or loaded.
"""

from __future__ import annotations

from mlforecast_cli.plugins._neural import TORCH_INSTALL, NeuralForecaster, parse_sizes
from mlforecast_cli.plugins._params import TRAINING_LOOP_PARAMS

from mlforecast_cli import ModelSpec, hookimpl

POOLING = ("max", "avg")
INTERPOLATION = ("linear", "nearest")


def stack_plan(params) -> tuple[list[int], list[int]]:
    """(pool kernels, downsample frequencies) per stack, checked."""
    kernels = parse_sizes(
        "nhits: n_pool_kernel_size", params.get("n_pool_kernel_size", "2-2-1"), "2-2-1"
    )
    freqs = parse_sizes(
        "nhits: n_freq_downsample", params.get("n_freq_downsample", "4-2-1"), "4-2-1"
    )
    if len(kernels) != len(freqs):
        raise ValueError(
            f"nhits: n_pool_kernel_size {'-'.join(map(str, kernels))} and n_freq_downsample "
            f"{'-'.join(map(str, freqs))} must list as many stacks as each other"
        )
    for option, allowed in (("pooling_mode", POOLING), ("interpolation", INTERPOLATION)):
        value = params.get(option, allowed[0])
        if value not in allowed:
            raise ValueError(f"nhits: {option} {value!r} is not one of {', '.join(allowed)}")
    return kernels, freqs


def n_knots(horizon: int, downsample: int) -> int:
    """Forecast coefficients of a block whose stack has expressiveness ratio ``1/downsample``."""
    return max(horizon // max(int(downsample), 1), 1)


def build_network(params, dims):
    """The ``torch.nn.Module`` for ``params`` (see ``_torch_training`` for its inputs)."""
    import math

    import torch
    from mlforecast_cli.plugins._torch_training import setting, zero_linear
    from torch import nn
    from torch.nn import functional as F

    kernels, freqs = stack_plan(params)
    n_blocks = max(int(params.get("n_blocks", 1)), 1)
    units = int(params.get("mlp_units", 256))
    layers = max(int(params.get("mlp_layers", 2)), 1)
    dropout = float(setting(params, "dropout"))
    residual = bool(setting(params, "residual"))
    pooling = params.get("pooling_mode", "max")
    mode = params.get("interpolation", "linear")
    w, h, k = dims.window_size, dims.horizon, dims.n_step_features

    class Block(nn.Module):
        def __init__(self, kernel: int, downsample: int) -> None:
            super().__init__()
            pool = nn.MaxPool1d if pooling == "max" else nn.AvgPool1d
            self.pool = pool(kernel, stride=kernel, ceil_mode=True)
            self.knots = n_knots(h, downsample)
            size = math.ceil(w / kernel) + k * math.ceil(h / kernel)
            mlp: list[nn.Module] = []
            for _ in range(layers):
                mlp += [nn.Linear(size, units), nn.ReLU()]
                if dropout > 0:
                    mlp.append(nn.Dropout(dropout))
                size = units
            self.mlp = nn.Sequential(*mlp)
            out = w + self.knots
            self.theta = zero_linear(units, out) if residual else nn.Linear(units, out)

        def forward(self, x, steps):
            """x (n, w), steps (n, k, h) → backcast (n, w), forecast (n, h)."""
            pooled = self.pool(x[:, None, :]).flatten(1)
            future = self.pool(steps).flatten(1)
            theta = self.theta(self.mlp(torch.cat((pooled, future), dim=1)))
            return theta[:, :w], interpolate(theta[:, w:])

    def interpolate(knots):
        """(n, knots) → (n, h)."""
        if knots.shape[1] == h:
            return knots
        if mode == "linear":
            return F.interpolate(knots[:, None, :], size=h, mode="linear", align_corners=True)[:, 0]
        return F.interpolate(knots[:, None, :], size=h, mode="nearest")[:, 0]

    class NHITSNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stacks = nn.ModuleList(
                nn.ModuleList(Block(kernel, freq) for _ in range(n_blocks))
                for kernel, freq in zip(kernels, freqs, strict=True)
            )

        def components(self, past, steps):
            """(n, stacks, h): each stack's share of the forecast."""
            x, steps = past[..., 0], steps.transpose(1, 2)
            parts = []
            for blocks in self.stacks:
                total = x.new_zeros(x.shape[0], h)
                for block in blocks:
                    back, fore = block(x, steps)
                    x = x - back
                    total = total + fore
                parts.append(total)
            return torch.stack(parts, dim=1)

        def forward(self, past, steps, series):
            return self.components(past, steps).sum(dim=1)

    return NHITSNet()


class NHITSForecaster(NeuralForecaster):
    """N-HiTS, trained with the shared loop (early stopping, pruning)."""

    network = "nhits"
    build_network = staticmethod(build_network)

    def __init__(self, params, task) -> None:
        super().__init__(params, task)
        stack_plan(self.params)  # fail early, clearly


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="nhits",
            summary="N-HiTS: multi-rate pooling, hierarchically interpolated forecasts (PyTorch)",
            family="neural",
            factory="mlforecast_cli.plugins.nhits:NHITSForecaster",
            space="mlforecast_cli.spaces:nhits.yaml",
            requires=("torch",),
            install=TORCH_INSTALL,
            extra_params=TRAINING_LOOP_PARAMS,
        )
    )
