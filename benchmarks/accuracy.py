"""Accuracy: test MAPE, sMAPE and MASE of every ready model against seasonal_naive.

For each dataset, ``mlf optimize`` searches every model (``--trials N``, default 30), refits
the best configuration on train+valid and scores it once on the last ``horizon`` steps of each
series, which the search never saw. Data: the built-in Walmart panel (horizon 13) and the four
M4 samples in benchmarks/data with the M4 competition's horizons (weekly 13, monthly 18, daily
14, hourly 48). The baseline and tree models of one dataset run in one command, the neural
(torch) models in a second one, so their caps (``--torch-set``) reach only them.

    python benchmarks/run.py --only accuracy --trials 30
    python benchmarks/run.py --only accuracy --models lightgbm --datasets walmart,m4_daily
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import DATA_DIR, Section, fmt, run_mlf, scratch, shown, table
from memory import ready_models

REFERENCE = "seasonal_naive"


@dataclass(frozen=True)
class Dataset:
    name: str
    horizon: int
    file: str | None = None
    """CSV in benchmarks/data (columns id, date, value); None for the built-in Walmart data."""

    def args(self, folder: Path) -> tuple[list[str], str]:
        """The data flags of ``mlf optimize`` and a note on any preparation."""
        if self.file is None:
            return ["--dataset", self.name, "--horizon", str(self.horizon)], ""
        path, note = prepared(DATA_DIR / self.file, folder)
        flags = ["--data", str(path), "--target", "value", "--time-col", "date"]
        return [*flags, "--id-col", "id", "--horizon", str(self.horizon)], note


DATASETS = (
    Dataset("walmart", 13),
    Dataset("m4_weekly", 13, "m4_weekly.csv"),
    Dataset("m4_monthly", 18, "m4_monthly.csv"),
    Dataset("m4_daily", 14, "m4_daily.csv"),
    Dataset("m4_hourly", 48, "m4_hourly.csv"),
)


def prepared(path: Path, folder: Path) -> tuple[Path, str]:
    """``path``, or an aligned copy in ``folder`` when its weekly series sit on different
    weekdays (M4 weekly: W120 is dated on Wednesdays, the others on Fridays; a panel has one
    time grid). Values are never changed, only such dates moved to the common weekday."""
    import pandas as pd

    frame = pd.read_csv(path)
    dates = pd.to_datetime(frame["date"])
    steps = dates.groupby(frame["id"]).diff().dropna()
    if steps.empty or not (steps == pd.Timedelta(days=7)).all():
        return path, ""
    weekday = dates.groupby(frame["id"]).transform("first").dt.day_of_week
    common = int(weekday.mode().iloc[0])
    shift = (common - weekday) % 7
    moved = sorted(frame.loc[shift > 0, "id"].unique())
    if not moved:
        return path, ""
    frame["date"] = (dates + pd.to_timedelta(shift, unit="D")).dt.strftime("%Y-%m-%d")
    out = folder / path.name
    frame.to_csv(out, index=False)
    names = ", ".join(moved)
    day = pd.Timestamp("2024-01-01") + pd.Timedelta(days=common)  # a Monday + common
    return out, f"dates of {names} moved to the {day.day_name()} of the same week (one grid)"


def group_runs(
    dataset: Dataset, models: list[dict], opts: argparse.Namespace
) -> tuple[list[dict], list[str], str]:
    """Run the dataset's two commands; the rows of its table, the command lines and a note
    on the data's preparation."""
    plain = [m["name"] for m in models if m["family"] != "neural"]
    neural = [m["name"] for m in models if m["family"] == "neural"]
    out: list[dict] = []
    commands: list[str] = []
    with scratch("mlf-bench-acc-") as folder:
        data_args, note = dataset.args(folder)
        groups = [(plain, opts.trials, [], "")]
        if neural:
            caps = list(opts.torch_set)
            cap_note = ("capped: " + ", ".join(caps)) if caps else ""
            groups.append((neural, opts.torch_trials, caps, cap_note))
        for names, trials, sets, cap_note in groups:
            if not names:
                continue
            args = ["optimize", *names, *data_args, "--trials", str(trials)]
            args += ["--seed", str(opts.seed), "--json"]
            if opts.search_timeout:
                args += ["--timeout", f"{opts.search_timeout:g}"]
            for assignment in sets:
                args += ["--set", assignment]
            run = run_mlf(
                args, folder=_folder_ready(folder / names[0]), timeout=opts.accuracy_timeout
            )
            commands.append(shown(run.argv).replace(str(folder), "$TMP"))
            doc = run.document
            if doc is None:
                for name in names:
                    out.append({"model": name, "error": run.error_line(), "note": cap_note})
                continue
            for m in doc["models"]:
                out.append({**m, "planned": trials, "note": cap_note})
    return out, commands, note


def _folder_ready(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def dataset_table(rows: list[dict]) -> str:
    reference = next((r for r in rows if r["model"] == REFERENCE and not r.get("error")), None)
    ref_mase = (reference or {}).get("test_metrics", {}).get("mase")
    ordered = sorted(
        rows,
        key=lambda r: (r.get("error") is not None, (r.get("test_metrics") or {}).get("mase", 1e9)),
    )
    lines = []
    for r in ordered:
        t = r.get("test_metrics") or {}
        c = r.get("trials") if isinstance(r.get("trials"), dict) else {}
        mase = t.get("mase")
        if r["model"] == REFERENCE:
            versus = "reference"
        elif mase is not None and ref_mase:
            versus = f"{mase / ref_mase:.2f}"
        else:
            versus = "–"
        lines.append(
            [
                r["model"] + (" (reference)" if r["model"] == REFERENCE else ""),
                fmt(t.get("mape")),
                fmt(t.get("smape")),
                fmt(t.get("mase"), 3),
                versus,
                fmt(r.get("best_value")),
                f"{c.get('complete', 0)} / {c.get('pruned', 0)} / {c.get('fail', 0)}" if c else "–",
                fmt(r.get("seconds"), 0),
                "; ".join(x for x in (r.get("note"), r.get("error")) if x),
            ]
        )
    return table(
        [
            "model",
            "test MAPE %",
            "test sMAPE %",
            "test MASE",
            "MASE / naive",
            "best val MAPE %",
            "trials ✓ / ✂ / ✗",
            "time s",
            "note",
        ],
        lines,
        "lrrrrrlrl",
    )


def summary_table(results: dict[str, list[dict]]) -> tuple[str, dict[str, Any]]:
    """Test MASE of each model on each dataset, the best of each dataset in bold."""
    names: list[str] = []
    for rows in results.values():
        for r in rows:
            if r["model"] not in names:
                names.append(r["model"])
    names.sort(key=lambda n: (n != REFERENCE, n))
    cell: dict[tuple[str, str], float] = {}
    for ds, rows in results.items():
        for r in rows:
            mase = (r.get("test_metrics") or {}).get("mase")
            if mase is not None and not r.get("error"):
                cell[(r["model"], ds)] = mase
    best = {ds: min((v for (m, d), v in cell.items() if d == ds), default=None) for ds in results}
    lines = []
    wins: dict[str, int] = {}
    for name in names:
        row = [name]
        beats = 0
        for ds in results:
            v = cell.get((name, ds))
            ref = cell.get((REFERENCE, ds))
            if v is not None and ref is not None and name != REFERENCE and v < ref:
                beats += 1
            text = fmt(v, 3)
            row.append(f"**{text}**" if v is not None and v == best[ds] else text)
        wins[name] = beats
        row.append("–" if name == REFERENCE else f"{beats} / {len(results)}")
        lines.append(row)
    headers = ["model", *results.keys(), "beats seasonal naive"]
    return table(headers, lines, "l" + "r" * (len(headers) - 1)), {
        "mase": {f"{m}@{d}": round(v, 3) for (m, d), v in cell.items()},
        "beats_naive": wins,
    }


def section(opts: argparse.Namespace) -> Section:
    started = time.perf_counter()
    models = ready_models()
    if opts.models:
        wanted = set(opts.models) | {REFERENCE}
        models = [m for m in models if m["name"] in wanted]
    chosen = opts.datasets.split(",") if opts.datasets else [d.name for d in DATASETS]
    datasets = [d for d in DATASETS if d.name in chosen]
    results: dict[str, list[dict]] = {}
    parts: list[str] = []
    all_commands: list[str] = []
    for ds in datasets:
        t0 = time.perf_counter()
        rows, commands, note = group_runs(ds, models, opts)
        results[ds.name] = rows
        all_commands += commands
        source = "built-in" if ds.file is None else f"benchmarks/data/{ds.file}"
        parts.append(
            f"### {ds.name} (horizon {ds.horizon}, {time.perf_counter() - t0:.0f} s)\n\n"
            f"Data: {source}" + (f"; {note}." if note else ".") + "\n\n" + dataset_table(rows)
        )
        print(parts[-1] + "\n", flush=True)
    summary_md, summary = summary_table(results)
    neural = any(m["family"] == "neural" for m in models)
    caps = (
        f"Neural models: {opts.torch_trials} trials"
        + (f", capped with `--set {' --set '.join(opts.torch_set)}`" if opts.torch_set else "")
        + " (see their note)."
        if neural
        else ""
    )
    stop = (
        f" Each model's search stops after {opts.search_timeout:g} s (`--timeout`), so the "
        "slow ones ran fewer trials (see the trial counts)."
        if opts.search_timeout
        else ""
    )
    intro = (
        f"{opts.trials} trials per model (seed {opts.seed}); {caps}{stop} Test = the last "
        "`horizon` steps of every series, never seen by the search, scored once after the refit on "
        "train+valid; MAPE and sMAPE in %, MASE scaled by the in-sample seasonal naive error "
        "(lower is better everywhere). MASE / naive < 1 beats the seasonal naive forecast."
    )
    body = "\n\n".join(
        [
            intro,
            "### Test MASE, every dataset (best in bold)",
            summary_md,
            *parts,
            "Commands:\n\n" + "\n".join(f"- `{c}`" for c in all_commands),
        ]
    )
    summary["trials"] = opts.trials
    return Section("accuracy", "Accuracy", body, time.perf_counter() - started, summary)
