"""One short check of every neural model on each device: a trial, the refit, a forecast from
the saved model, and the speed-up of each over the CPU.

The device check of issue 26 (docs/neural.md, "GPU"), prepared so that a session lent a GPU
runs it in one call. It works through the library in one process, without an Optuna study or
an MLflow store (the GPU machine has PyTorch but neither of those), and gives every device
the same configuration of each model: the middle of each searched range (the geometric
middle of a log range), the first of each list of choices, the space's first trial and fixed
settings, then ``--epochs`` epochs of ``steps_per_epoch: 50`` batches for every model (the
nbeats and nhits default), no early stop and no time budget, so a device does the same work
as the CPU. For each model and device:

- **trial**: ``fit_and_score`` with the validation window (as a search's trial), its seconds,
  epochs and validation MAPE;
- **refit**: the same configuration on train + valid for all ``--epochs`` (not the epochs the
  trial kept, which may be 0 for a residual network: the devices do the same work), scored on
  the test window;
- **predict**: the refit model pickled and loaded (weights travel as CPU tensors and are put
  back on the device), then its forecast of the test window, checked equal to the refit's.

A device the machine does not have is refused in one line. Usage::

    python benchmarks/device_check.py                          # cpu, and cuda when present
    python benchmarks/device_check.py --devices cpu cuda --series 2000 --epochs 3
    python benchmarks/device_check.py --data walmart --models nhits lstm --epochs 1

On the GPU machine, which has PyTorch and nothing to download from, mlf travels as a wheel
built here (``pip wheel --no-deps -w .whl .``; docs/neural.md, "GPU" has the whole call).
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODELS = ("lstm", "tcn", "transformer", "nbeats", "nhits")
HORIZON = 13
STEPS_PER_EPOCH = 50


class Refused(Exception):
    """A request this machine cannot serve: one line, exit 2."""


def middle(space) -> dict[str, Any]:
    """One configuration of ``space``: the middle of each range, the first of each list of
    choices, then its first trial and fixed settings."""
    params: dict[str, Any] = {}
    for name, p in space.params.items():
        if p.type == "categorical":
            params[name] = p.choices[0]
            continue
        mid = math.sqrt(p.low * p.high) if p.log else (p.low + p.high) / 2
        params[name] = int(round(mid)) if p.type == "int" else float(mid)
    return {**params, **space.first_trial(), **space.fixed}


def load_panel(data: str, series: int):
    """The built-in Walmart panel, or ``series`` generated weekly sales series."""
    from mlforecast_cli.data.panel import Columns
    from mlforecast_cli.data.panel import load_panel as read
    from mlforecast_cli.datasets import load_dataset

    if data == "walmart":
        return load_dataset("walmart"), "walmart"
    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic import COLUMNS, write_panel

    with tempfile.TemporaryDirectory() as folder:
        path = write_panel(series, Path(folder) / "panel.parquet")
        columns = Columns(COLUMNS["target"], COLUMNS["time"], (COLUMNS["id"],))
        return read(path, columns), f"{series:,} generated series"


def available(device: str) -> bool:
    """Whether this machine's torch has ``device`` (the plugins' own resolution)."""
    from mlforecast_cli.plugins._torch_training import device_for

    return device_for(device).type == device


def warm_up(device: str) -> None:
    """Start ``device`` (a CUDA context takes a second or more) before anything is timed."""
    import torch

    x = torch.ones(256, 256, device=device)
    (x @ x).sum().item()


def check(entry, params: dict[str, Any], panel, split, device: str) -> dict[str, Any]:
    """The trial, the refit and the loaded model's forecast of ``entry`` on ``device``."""
    import numpy as np

    from mlforecast_cli.data.windows import make_windows
    from mlforecast_cli.trials.fit import FitOptions, fit_and_score, task_info

    search, refit_only = FitOptions(train_metrics=False), FitOptions(False, train_metrics=False)

    task = task_info(panel, HORIZON, seed=42, device=device, n_jobs=1)
    start = time.perf_counter()
    trial = fit_and_score(entry, params, task, panel, split.folds[0].train_end, search)
    trial_s = time.perf_counter() - start
    trainer = trial.model.trainer
    on = str(next(trainer.network.parameters()).device)
    start = time.perf_counter()
    kept = {**params, **trial.refit_params, "epochs": params["epochs"]}  # the same work
    refit = fit_and_score(entry, kept, task, panel, split.test_start, refit_only)
    refit_s = time.perf_counter() - start
    scaler = str(params.get("scaler", "window"))
    size = int(params["window_size"])
    windows = make_windows(panel, split.test_start, size, HORIZON, mode="eval", scaler=scaler)
    start = time.perf_counter()
    loaded = pickle.loads(pickle.dumps(refit.model))
    forecast = loaded.predict(windows)
    predict_s = time.perf_counter() - start
    same = bool(np.allclose(forecast, refit.model.predict(windows), rtol=1e-4, atol=1e-5))
    return {
        "device": on,
        "trial_s": trial_s,
        "epochs": trainer.epochs_run,
        "refit_s": refit_s,
        "predict_s": predict_s,
        "val_mape": trial.metrics.get("mape", math.nan),
        "test_mape": refit.metrics.get("mape", math.nan),
        "same_forecast": same,
    }


def report(rows: list[dict[str, Any]], label: str, epochs: int) -> str:
    """The markdown table, each device's seconds beside the CPU's."""
    import platform

    import torch

    cpu = {r["model"]: r for r in rows if r["device"] == "cpu"}
    lines = [
        f"{label}, horizon {HORIZON}; epochs: {epochs} of {STEPS_PER_EPOCH} batches a fit; "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}"
        + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""),
        "",
        "| model | device | trial s | epochs | refit s | load + predict s | val MAPE | "
        "test MAPE | trial speed-up | refit speed-up | loaded forecast = refit's |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        base = cpu.get(r["model"])
        speed = (
            (f"{base['trial_s'] / r['trial_s']:.2f}×", f"{base['refit_s'] / r['refit_s']:.2f}×")
            if base and r["device"] != "cpu"
            else ("", "")
        )
        lines.append(
            f"| {r['model']} | {r['device']} | {r['trial_s']:.2f} | {r['epochs']} | "
            f"{r['refit_s']:.2f} | {r['predict_s']:.3f} | {r['val_mape']:.2f} | "
            f"{r['test_mape']:.2f} | {speed[0]} | {speed[1]} | "
            f"{'yes' if r['same_forecast'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, cuda if any")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--data", choices=["generated", "walmart"], default="generated")
    parser.add_argument("--series", type=int, default=2000, help="generated series")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from mlforecast_cli.data.split import split_panel
    from mlforecast_cli.models.registry import Registry

    devices = args.devices or ["cpu", *(["cuda"] if available("cuda") else [])]
    for device in devices:
        if not available(device):
            raise Refused(
                f"--devices {device}: this machine's torch has no {device} device; "
                "leave it out or run on a machine that has one"
            )
    for device in devices:
        warm_up(device)
    registry = Registry()
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        raise Refused(f"--models {unknown[0]}: not a neural model; choose from {', '.join(MODELS)}")
    panel, label = load_panel(args.data, args.series)
    split = split_panel(panel, HORIZON, 1)
    rows = []
    for model in args.models:
        entry = registry.get(model)
        fixed = {"epochs": args.epochs, "patience": args.epochs + 1, "max_seconds": None}
        params = {**middle(entry.load_space()), **fixed, "steps_per_epoch": STEPS_PER_EPOCH}
        for device in devices:
            print(f"    {model} on {device}", file=sys.stderr, flush=True)
            rows.append({"model": model, **check(entry, params, panel, split, device)})
    text = report(rows, label, args.epochs)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
