"""What the neural plugins share: input building, one training loop, pickling.

This module imports torch, so a plugin imports it only inside its model's methods (``fit``,
``predict``): listing models never loads it. A plugin gives :class:`NeuralTrainer` a
``build_network(params, dims)`` function returning a ``torch.nn.Module`` whose
``forward(past, steps, series)`` maps

* ``past``   (n, w, 1)  the scaled past window,
* ``steps``  (n, h, k)  per horizon step: the base value (see below), a mask saying whether the
  seasonal value was known, the relative step position, the standardised known features and
  the calendar features (``k`` is :attr:`Dims.n_step_features`),
* ``series`` (n,)       the integer series index,

to (n, h): the whole horizon at once. With ``residual`` (the default) that output is a
correction added to the base value: the seasonal value (same step one season back), or the
last observed value where the history is too short. The networks zero their last layer, so an
untrained model *is* the seasonal naive forecast and training only has to learn what differs.

The loop: mini-batches, Adam, the loss (``loss``: mae, huber, mse or mape) on scaled targets,
gradient clipping. An epoch is one pass over the training windows, or with ``steps_per_epoch``
exactly that many batches drawn with the seeded generator (see :func:`epoch_order`), so its
cost does not depend on the panel's size. After each epoch the validation error: the mean
over the validation windows (at most ``EPOCH_VALID_WINDOWS`` of them) of sum |error| /
sum |actual| in original units, scale-free, so trials with different scalers compare. It
drives early stopping (``patience`` epochs without improvement; the best weights are kept)
and is passed to ``report(epoch, error)`` so the pruner can stop the trial. A NaN or infinite
loss raises :class:`TrainingError` with a clear message (the core fails the trial).
``max_seconds`` bounds one fit's training time (checked after each batch). Without a
validation window (the refit) it trains ``epochs`` epochs; :meth:`NeuralTrainer.refit_params`
hands it the epoch early stopping kept.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from mlforecast_cli import TaskInfo, Windows
from mlforecast_cli.models.baseline import seasonal_naive

DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-3,
    "epochs": 100,
    "batch_size": 32,
    "dropout": 0.1,
    "patience": 10,
    "min_delta": 1e-4,
    "grad_clip": 1.0,
    "max_seconds": None,
    "weight_decay": 0.0,
    "loss": "mae",
    "residual": True,
    "base": "seasonal",
    "embedding_dim": 4,
    "head_size": 64,
    "steps_per_epoch": None,
    "lr_decays": 0,
    "decay_span": None,
    "valid_error": "wape",
}
"""Training settings every space may set (under ``params`` or ``fixed``); these when absent."""

LOSSES = ("huber", "mae", "mape", "mse")
VALID_ERRORS = ("wape", "mape")
MAPE_CAP = 10.0
"""An absolute percentage error counts at most 1,000 % in the ``mape`` loss (near-zero actuals)."""
N_BASE_FEATURES = 3
"""Per-step inputs before the known features: base value, seasonal mask, step position."""
PREDICT_CHUNK = 4096
EPOCH_VALID_WINDOWS = 2_000
"""Validation windows the per-epoch error is computed on: a seeded draw, the same for every
trial, when there are more. It only steers early stopping and the pruner, which compare
epochs and trials on the same draw; the study scores every window. At 10,000 windows it
cost a quarter of a 50-step N-HiTS epoch at 30,000 series."""
MANY_WEIGHTS = 1_000_000
"""Networks with at least this many weights use ``task.n_threads`` CPU threads."""
WORK_PER_STEP = 100_000_000
"""So does a step of at least this many weights × windows (see :func:`threads_for`)."""


class TrainingError(RuntimeError):
    """Training cannot go on (the loss became NaN or infinite)."""


@dataclass(frozen=True)
class Dims:
    """Sizes a network is built for."""

    window_size: int
    horizon: int
    n_step_features: int
    n_series: int


def setting(params: Mapping[str, Any], key: str) -> Any:
    """``params[key]``, else the shared default."""
    return params.get(key, DEFAULTS[key])


def epoch_order(
    n_windows: int, batch_size: int, steps: int | None, generator: torch.Generator
) -> torch.Tensor:
    """Indices of the training windows of one epoch, in the order they are trained on.

    Without ``steps`` (the default): every window once, in a seeded random order. With
    ``steps``: exactly ``steps`` batches (as neuralforecast's ``val_check_steps`` of
    ``windows_batch_size``) drawn from successive seeded permutations, so an epoch costs the
    same on a panel of 600 series as on one of 30,000: a large panel is sampled, a small one
    passed over several times.
    """
    if not steps:
        return torch.randperm(n_windows, generator=generator)
    budget = max(int(steps), 1) * batch_size
    rounds = -(-budget // n_windows)
    order = torch.cat([torch.randperm(n_windows, generator=generator) for _ in range(rounds)])
    return order[:budget]


def lr_decay(params: Mapping[str, Any], epochs: int) -> Callable[[int], float]:
    """Epoch → the factor on ``learning_rate``: halved ``lr_decays`` times at even steps over
    ``decay_span`` epochs (the searched ``epochs``; a refit keeps its search's span), as
    neuralforecast's ``num_lr_decays``; 1 throughout with no decays."""
    decays = int(setting(params, "lr_decays"))
    if decays <= 0:
        return lambda epoch: 1.0
    span = int(setting(params, "decay_span") or epochs)
    every = max(span / (decays + 1), 1.0)
    return lambda epoch: 0.5 ** min(decays, int((epoch - 1) // every))


def device_for(requested: str) -> torch.device:
    """``requested`` when this machine has it, else the CPU (a model unpickled elsewhere)."""
    if requested == "cuda" and torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if requested == "mps" and mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def threads_for(net: nn.Module, task: TaskInfo, batch_size: int = 1) -> int:
    """CPU threads for ``net``: all of ``task.n_threads`` when a step has enough work to share.

    A step's work is about weights × batch size multiply-adds. A small one is too short to
    share: with two threads on a busy two-core machine a 64-unit LSTM batch took 130-530 ms
    against 2 ms with one, and an N-HiTS step of 256 windows 34 ms against 3 ms (OpenMP
    threads wait on each other at every operation); at 1,024 windows two threads took 5 ms
    against 9 ms. Networks of at least :data:`MANY_WEIGHTS` weights always share.
    """
    n_weights = sum(p.numel() for p in net.parameters())
    share = n_weights >= MANY_WEIGHTS or n_weights * max(batch_size, 1) >= WORK_PER_STEP
    return max(1, int(task.n_threads)) if share else 1


# --------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    """Tensors of a set of windows, on one device."""

    past: torch.Tensor
    steps: torch.Tensor
    series: torch.Tensor
    base: torch.Tensor
    y: torch.Tensor | None
    loc: torch.Tensor
    scale: torch.Tensor

    def __len__(self) -> int:
        return int(self.past.shape[0])

    def take(self, index: torch.Tensor) -> Inputs:
        return Inputs(
            self.past[index],
            self.steps[index],
            self.series[index],
            self.base[index],
            None if self.y is None else self.y[index],
            self.loc[index],
            self.scale[index],
        )


def feature_stats(windows: Windows) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (floored to 1 where constant) of each known feature over ``windows``."""
    n, h, k = windows.features.shape
    f = np.asarray(windows.features, dtype=np.float64).reshape(n * h, k)
    if k == 0 or n * h == 0:
        return np.zeros(k), np.ones(k)
    mean, std = f.mean(axis=0), f.std(axis=0)
    return mean, np.where(std > 1e-8, std, 1.0)


def step_features(
    windows: Windows, stats: tuple[np.ndarray, np.ndarray], base: np.ndarray
) -> np.ndarray:
    """(n, h, k) per-step inputs: ``base`` (:func:`base_values`), seasonal mask, position,
    features, calendar."""
    seasonal = np.asarray(windows.seasonal, dtype=np.float64)
    known = np.isfinite(seasonal)
    n, h = seasonal.shape
    position = np.broadcast_to(np.arange(h) / max(h - 1, 1), (n, h))
    mean, std = stats
    features = (np.asarray(windows.features, dtype=np.float64) - mean) / std
    parts = [base[..., None], known[..., None], position[..., None], features, windows.calendar]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts], axis=-1)


BASES = ("seasonal", "level")


def base_values(windows: Windows, level_season: int = 0) -> np.ndarray:
    """(n, h), scaled: the seasonal value where known, else the last value of the window; with
    ``level_season`` (``base: level``), the seasonal values brought down to where the series'
    level fell over the last season (the trees' ``level_gap`` base: ``_tabular.level_naive``),
    so a series that collapsed is not forecast at last year's level."""
    naive = seasonal_naive(windows)
    if level_season < 2:
        return naive
    from ._tabular import level_growth

    loc = np.asarray(windows.loc, dtype=np.float64)[:, None]
    scale = np.asarray(windows.scale, dtype=np.float64)[:, None]
    unscaled = replace(windows, x=np.asarray(windows.x, dtype=np.float64) * scale + loc)
    fall = np.minimum(level_growth(unscaled, level_season), 1.0)
    known = np.isfinite(np.asarray(windows.seasonal, dtype=np.float64))
    adjusted = ((naive * scale + loc) * fall - loc) / scale
    return np.where(known, adjusted, naive)


def level_season(params: Mapping[str, Any], task: TaskInfo) -> int:
    """The season :func:`base_values` measures a fall over (``base: level``), else 0."""
    base = setting(params, "base")
    if base not in BASES:
        raise ValueError(f"base {base!r} is not one of {', '.join(BASES)}")
    return int(task.season_length) if base == "level" else 0


def build_inputs(
    windows: Windows,
    stats: tuple[np.ndarray, np.ndarray],
    device: torch.device,
    level_season: int = 0,
) -> Inputs:
    """The tensors of ``windows``; ``level_season``: see :func:`base_values`."""

    def tensor(a: np.ndarray, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype).to(device)

    base = base_values(windows, level_season)
    return Inputs(
        past=tensor(np.asarray(windows.x, dtype=np.float64)[..., None]),
        steps=tensor(step_features(windows, stats, base)),
        series=tensor(np.asarray(windows.series), dtype=torch.long),
        base=tensor(base),
        y=None if windows.y is None else tensor(np.asarray(windows.y, dtype=np.float64)),
        loc=tensor(np.asarray(windows.loc, dtype=np.float64)[:, None]),
        scale=tensor(np.asarray(windows.scale, dtype=np.float64)[:, None]),
    )


# --------------------------------------------------------------------------- shared layers


class StepHead(nn.Module):
    """Maps a context vector and each horizon step's inputs to one value per step.

    Input per step: the context, the step's features and a series embedding; a two-layer MLP
    whose last layer starts at zero (the model starts at the base forecast).
    """

    def __init__(self, context_size: int, dims: Dims, params: Mapping[str, Any]) -> None:
        super().__init__()
        size = int(setting(params, "head_size"))
        emb = int(setting(params, "embedding_dim"))
        self.embed = nn.Embedding(max(dims.n_series, 1), emb)
        self.norm = nn.LayerNorm(context_size)
        self.mlp = nn.Sequential(
            nn.Linear(context_size + dims.n_step_features + emb, size),
            nn.GELU(),
            nn.Dropout(float(setting(params, "dropout"))),
            nn.Linear(size, size),
            nn.GELU(),
            zero_linear(size, 1),
        )

    def forward(self, context: torch.Tensor, steps: torch.Tensor, series: torch.Tensor):
        h = steps.shape[1]
        context = self.norm(context)[:, None, :].expand(-1, h, -1)
        emb = self.embed(series)[:, None, :].expand(-1, h, -1)
        return self.mlp(torch.cat((context, steps, emb), dim=-1)).squeeze(-1)


def zero_linear(n_in: int, n_out: int) -> nn.Linear:
    """A linear layer with zero weights and bias (an untrained residual adds nothing)."""
    layer = nn.Linear(n_in, n_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


# --------------------------------------------------------------------------- the loop


def _loss_fn(name: str) -> Callable[[torch.Tensor, Inputs], torch.Tensor]:
    """``loss(predicted, batch)`` on the scaled targets; ``mape`` weighs each error by the
    actual value in original units (the study's default metric)."""
    name = str(name).lower()
    if name == "mape":

        def mape(predicted: torch.Tensor, batch: Inputs) -> torch.Tensor:
            actual = (batch.y * batch.scale + batch.loc).abs().clamp_min(1e-8)
            return (
                ((predicted - batch.y).abs() * batch.scale.abs() / actual)
                .clamp_max(MAPE_CAP)
                .mean()
            )

        return mape
    if name == "huber":
        plain = nn.HuberLoss(delta=1.0)
    elif name == "mae":
        plain = nn.L1Loss()
    elif name == "mse":
        plain = nn.MSELoss()
    else:
        raise ValueError(f"loss {name!r} is not one of {', '.join(LOSSES)}")
    return lambda predicted, batch: plain(predicted, batch.y)


class NeuralTrainer:
    """Builds, trains and runs one network; what a torch plugin's model delegates to.

    Picklable: the weights are kept as CPU tensors in the pickle and the network is rebuilt
    (with the plugin's ``build_network``) on load.
    """

    def __init__(
        self,
        name: str,
        build_network: Callable[[Mapping[str, Any], Dims], nn.Module],
        params: Mapping[str, Any],
        task: TaskInfo,
    ) -> None:
        self.name = name
        self.build_network = build_network
        self.params = dict(params)
        self.task = task
        self.network: nn.Module | None = None
        self.dims: Dims | None = None
        self.stats: tuple[np.ndarray, np.ndarray] | None = None
        self.level_season = 0
        """The season the base's level fall is measured over (``base: level``), else 0."""
        self.best_epoch = 0
        self.epochs_run = 0
        self.stopped = ""
        """Why training ended: "epochs", "early stopping" or "time budget"."""
        self.history: list[tuple[int, float, float | None]] = []
        """(epoch, mean training loss, validation loss or None) per epoch."""

    # ---------------------------------------------------------------- fit

    def fit(
        self,
        train: Windows,
        valid: Windows | None = None,
        report: Callable[[int, float], None] | None = None,
    ) -> NeuralTrainer:
        params, task = self.params, self.task
        if len(train) == 0:
            raise ValueError(f"{self.name}: no training windows to fit on")
        torch.manual_seed(int(task.seed))
        device = device_for(task.device)
        self.stats = feature_stats(train)
        self.dims = Dims(
            window_size=train.window_size,
            horizon=train.horizon,
            n_step_features=N_BASE_FEATURES + train.features.shape[-1] + train.calendar.shape[-1],
            n_series=max(int(task.n_series), int(np.max(train.series)) + 1),
        )
        net = self.build_network(params, self.dims).to(device)
        batch_size = max(int(setting(params, "batch_size")), 1)
        torch.set_num_threads(threads_for(net, task, batch_size))
        self.network = net
        self.level_season = level_season(params, task)
        data = build_inputs(train, self.stats, device, self.level_season)
        val = None
        if valid is not None and valid.y is not None and len(valid):
            val = build_inputs(valid, self.stats, device, self.level_season)
            val = _epoch_sample(val, int(task.seed))

        residual = bool(setting(params, "residual"))
        epochs = max(int(setting(params, "epochs")), 0 if residual else 1)
        patience = max(int(setting(params, "patience")), 1)
        min_delta = float(setting(params, "min_delta"))
        clip = float(setting(params, "grad_clip"))
        loss_fn = _loss_fn(setting(params, "loss"))
        if (kind := setting(params, "valid_error")) not in VALID_ERRORS:
            raise ValueError(f"valid_error {kind!r} is not one of {', '.join(VALID_ERRORS)}")
        lr = float(setting(params, "learning_rate"))
        optimizer = torch.optim.Adam(
            net.parameters(), lr=lr, weight_decay=float(setting(params, "weight_decay"))
        )
        decay = lr_decay(params, epochs)
        generator = torch.Generator().manual_seed(int(task.seed))
        budget = setting(params, "max_seconds")
        deadline = time.perf_counter() + float(budget) if budget else math.inf

        best_error, best_state, waited = math.inf, None, 0
        self.history, self.stopped = [], "epochs"
        if residual and val is not None:  # epoch 0: the base itself, a candidate like any epoch
            best_error = self._valid_error(val)
            if not math.isfinite(best_error):
                raise TrainingError(self._nan_message(0, "validation"))
            best_state, self.best_epoch = copy.deepcopy(net.state_dict()), 0
            self.history.append((0, math.nan, best_error))
        steps = setting(params, "steps_per_epoch")
        for epoch in range(1, epochs + 1):
            net.train()
            for group in optimizer.param_groups:
                group["lr"] = lr * decay(epoch)
            order = epoch_order(len(data), batch_size, steps, generator).to(device)
            total, count = 0.0, 0
            for start in range(0, len(order), batch_size):
                batch = data.take(order[start : start + batch_size])
                loss = loss_fn(self._forward(batch), batch)
                if not torch.isfinite(loss):
                    raise TrainingError(self._nan_message(epoch, "training"))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip > 0:
                    nn.utils.clip_grad_norm_(net.parameters(), clip)
                optimizer.step()
                total += float(loss.detach()) * len(batch)
                count += len(batch)
                if time.perf_counter() > deadline:
                    self.stopped = "time budget"
                    break
            self.epochs_run = epoch
            value = None
            if val is not None:
                value = self._valid_error(val)
                if not math.isfinite(value):
                    raise TrainingError(self._nan_message(epoch, "validation"))
            self.history.append((epoch, total / count, value))
            if value is not None:
                if value < best_error - min_delta:
                    best_error, waited, self.best_epoch = value, 0, epoch
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    waited += 1
                if report is not None:  # the error of the weights the trial keeps so far
                    report(epoch, min(value, best_error))  # may raise optuna.TrialPruned
                if waited >= patience:
                    self.stopped = "early stopping"
            if self.stopped != "epochs":
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        else:
            self.best_epoch = self.epochs_run
        net.eval()
        return self

    def _nan_message(self, epoch: int, what: str) -> str:
        lr = setting(self.params, "learning_rate")
        return (
            f"{self.name}: the {what} loss became NaN or infinite at epoch {epoch} "
            f"(learning_rate {lr}); lower learning_rate or check the data for extreme values"
        )

    def _forward(self, batch: Inputs) -> torch.Tensor:
        out = self.network(batch.past, batch.steps, batch.series)
        return out + batch.base if setting(self.params, "residual") else out

    def _valid_error(self, data: Inputs) -> float:
        """The validation error early stopping and the pruner watch, in original units.

        ``valid_error: wape`` (default): the mean over validation windows of Σ|error| /
        Σ|actual|. ``mape``: the mean absolute percentage error over every non-zero actual,
        each point capped at ``MAPE_CAP`` (the study's default metric, point by point). Both
        are scale-free, so trials with different scalers, losses or window sizes compare.
        """
        kind = setting(self.params, "valid_error")
        self.network.eval()
        sums, counts = [], []
        with torch.no_grad():  # in chunks: one pass over 30,000 windows held GBs of activations
            for start in range(0, len(data), PREDICT_CHUNK):
                part = data.take(torch.arange(start, min(start + PREDICT_CHUNK, len(data))))
                predicted = self._forward(part) * part.scale + part.loc
                actual = part.y * part.scale + part.loc
                error = (predicted - actual).abs()
                if kind == "wape":
                    sums.append(error.sum(dim=1) / actual.abs().sum(dim=1).clamp_min(1e-8))
                    counts.append(torch.ones_like(sums[-1]))
                else:
                    kept = actual != 0
                    ape = (error / actual.abs().clamp_min(1e-8)).clamp_max(MAPE_CAP)
                    sums.append((ape * kept).sum(dim=1))
                    counts.append(kept.sum(dim=1).to(ape.dtype))
        return float(torch.cat(sums).sum() / torch.cat(counts).sum().clamp_min(1))

    # ---------------------------------------------------------------- predict

    def predict(self, windows: Windows) -> np.ndarray:
        if self.network is None:
            raise RuntimeError(f"{self.name}: call fit before predict")
        device = next(self.network.parameters()).device
        self.network.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(windows), PREDICT_CHUNK):
                part = _take(windows, slice(start, start + PREDICT_CHUNK))
                data = build_inputs(part, self.stats, device, self.level_season)
                out.append(self._forward(data).double().cpu().numpy())
        if not out:
            return np.zeros((0, self.dims.horizon))
        return np.concatenate(out)

    def refit_params(self) -> dict[str, Any]:
        """The epoch early stopping kept: the refit (no validation window) trains that long;
        0 when a residual network was best untrained (its base)."""
        least = 0 if setting(self.params, "residual") else 1
        kept = {"epochs": int(max(self.best_epoch, least))}
        if int(setting(self.params, "lr_decays")) > 0:  # the same schedule, cut where it kept
            kept["decay_span"] = int(
                setting(self.params, "decay_span") or setting(self.params, "epochs")
            )
        return kept

    # ---------------------------------------------------------------- pickling

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        net = state.pop("network")
        state["weights"] = (
            None if net is None else {k: v.detach().cpu() for k, v in net.state_dict().items()}
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop("weights")
        state.setdefault("level_season", 0)  # saved before base: level
        self.__dict__.update(state)
        self.network = None
        if weights is not None:
            net = self.build_network(self.params, self.dims)
            net.load_state_dict(weights)
            self.network = net.to(device_for(self.task.device)).eval()


def _epoch_sample(data: Inputs, seed: int) -> Inputs:
    """At most :data:`EPOCH_VALID_WINDOWS` of ``data``, drawn with ``seed``, in their order."""
    if len(data) <= EPOCH_VALID_WINDOWS:
        return data
    draw = np.random.default_rng(seed).choice(len(data), EPOCH_VALID_WINDOWS, replace=False)
    return data.take(torch.from_numpy(np.sort(draw)).to(data.past.device))


def _take(windows: Windows, index) -> Windows:
    def cut(a):
        return None if a is None else a[index]

    return Windows(
        x=windows.x[index],
        y=cut(windows.y),
        seasonal=windows.seasonal[index],
        features=windows.features[index],
        calendar=windows.calendar[index],
        series=windows.series[index],
        loc=windows.loc[index],
        scale=windows.scale[index],
        step_offset=cut(windows.step_offset),
        observed=cut(windows.observed),
    )
