"""Run mlf's benchmarks and write docs/benchmarks.md: start-up, framework overhead per trial,
parallel scaling, memory and accuracy, with the machine they ran on.

    python benchmarks/run.py --quick                 # every section, small counts (minutes)
    python benchmarks/run.py                         # the full table (hours: see README)
    python benchmarks/run.py --only startup,overhead --output /tmp/bench.md

Each section prints its table as soon as it finishes; the markdown file is rewritten after
each one, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    REPO,
    Section,
    machine_info,
    machine_markdown,
    median,
    table,
)

SECTIONS = ("startup", "overhead", "scaling", "memory", "accuracy", "peers", "scale")
DEFAULT_OUTPUT = REPO / "docs" / "benchmarks.md"
OVERHEAD_MS = 10.0
OVERHEAD_SHARE = 5.0
QUICK_TORCH_CAPS = ["epochs=3", "max_seconds=10"]
MODEL_LIBRARIES = ("lightgbm", "xgboost", "catboost", "sklearn", "torch", "plugins")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="small counts: minutes, not hours")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma list of {','.join(SECTIONS)}"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown to write")
    parser.add_argument("--seed", type=int, default=42, help="sampler and model seed (42)")
    g = parser.add_argument_group("start-up")
    g.add_argument("--repeats", type=int, help="runs per command (10; quick 5)")
    g = parser.add_argument_group("overhead")
    g.add_argument("--overhead-trials", type=int, help="trials per setup (50; quick 15)")
    g.add_argument("--overhead-rounds", type=int, help="(bare, mlf) pairs, pooled (3; quick 2)")
    g.add_argument("--overhead-model", default="lightgbm")
    g.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="cProfile the tracked run (auto: when a target is missed)",
    )
    g = parser.add_argument_group("scaling")
    g.add_argument(
        "--scaling-models",
        help="MODEL:TRIALS,... (lightgbm:300,random_forest:60; quick lightgbm:24,random_forest:6)",
    )
    g = parser.add_argument_group("memory")
    g.add_argument("--memory-trials", type=int, help="trials per model (3)")
    g = parser.add_argument_group("accuracy")
    g.add_argument("--trials", type=int, help="trials per model (30; quick 5)")
    g.add_argument("--torch-trials", type=int, help="trials per neural model (--trials; quick 2)")
    g.add_argument(
        "--torch-set",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help=f"caps for the neural models (none; quick {' '.join(QUICK_TORCH_CAPS)})",
    )
    g.add_argument("--models", nargs="+", help="models (every ready one; memory: one a family)")
    g.add_argument("--datasets", help="comma list (walmart,m4_weekly,m4_monthly,...)")
    g.add_argument(
        "--search-timeout",
        type=float,
        help="stop each model's search after SECONDS (mlf --timeout; none; quick 30)",
    )
    g.add_argument("--accuracy-timeout", type=float, help="kill an mlf command after SECONDS")
    g = parser.add_argument_group("peers")
    g.add_argument("--peers-trials", type=int, help="trials of mlf and AutoLightGBM (30; quick 5)")
    g.add_argument(
        "--peers-panels",
        default="walmart,m1_monthly,m1_quarterly",
        help="comma list of walmart,m1_monthly,m1_quarterly,seasonal_monthly,seasonal_monthly_s1"
        " (the last two generated: benchmarks/synthetic.py)",
    )
    g.add_argument(
        "--peers-models", help="comma list of mlf models (lightgbm,ets,seasonal_naive if ready)"
    )
    g.add_argument(
        "--peers",
        default="autolightgbm,autoets,seasonalnaive",
        help="comma list of autolightgbm,autoets,seasonalnaive",
    )
    g.add_argument(
        "--peers-data",
        type=Path,
        default=REPO.parent / "shared" / "datasets",
        help="folder of m1_monthly.csv, m1_quarterly.csv (../shared/datasets)",
    )
    g.add_argument("--peers-timeout", type=float, help="kill one system's run after SECONDS")
    g = parser.add_argument_group("scale")
    g.add_argument("--scale-sizes", help="comma list of series counts (100,1000,10000,30000)")
    g.add_argument("--scale-models", help="comma list of models (lightgbm,lstm)")
    g.add_argument("--scale-trials", type=int, help="trials per run (10; quick 3)")
    g.add_argument("--scale-timeout", type=float, help="kill one run after SECONDS")
    opts = parser.parse_args(argv)
    opts.peers_panels = [s.strip() for s in opts.peers_panels.split(",") if s.strip()]
    opts.peers = [s.strip() for s in opts.peers.split(",") if s.strip()]
    if opts.peers_models:
        opts.peers_models = [s.strip() for s in opts.peers_models.split(",") if s.strip()]
    if opts.scale_sizes:
        opts.scale_sizes = [int(s) for s in opts.scale_sizes.split(",") if s.strip()]
    if opts.scale_models:
        opts.scale_models = [s.strip() for s in opts.scale_models.split(",") if s.strip()]
    if opts.peers_trials is None:
        opts.peers_trials = 5 if opts.quick else 30
    opts.only = [s.strip() for s in opts.only.split(",") if s.strip()]
    unknown = [s for s in opts.only if s not in SECTIONS]
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(unknown)}; use {','.join(SECTIONS)}")
    if set(opts.only) != set(SECTIONS) and opts.output == DEFAULT_OUTPUT:
        parser.error(
            "--only runs part of the benchmarks and would replace docs/benchmarks.md with it: "
            "pass --output FILE and copy the sections you reran into the docs"
        )
    if opts.trials is None:
        opts.trials = 5 if opts.quick else 30
    if opts.torch_trials is None:
        opts.torch_trials = 2 if opts.quick else opts.trials
    if opts.torch_set is None:
        opts.torch_set = list(QUICK_TORCH_CAPS) if opts.quick else []
    if opts.quick:
        if opts.search_timeout is None:
            opts.search_timeout = 30.0
        if opts.accuracy_timeout is None:
            opts.accuracy_timeout = 1800.0
    return opts


# --------------------------------------------------------------------------- overhead
def overhead_section(opts: argparse.Namespace) -> Section:
    """Reuses benchmarks/overhead.py: the same fits, bare in-memory Optuna vs mlf's stack.

    Runs ``rounds`` pairs (bare, then mlf, each pair in a fresh folder) and pools them; the
    overhead is the median over trials of mlf's time minus bare's time for the same trial
    (same seed, same parameters), which a drifting load on a shared machine disturbs least.
    """
    import optuna
    import overhead

    started = time.perf_counter()
    trials = opts.overhead_trials or (15 if opts.quick else 50)
    rounds = opts.overhead_rounds or (2 if opts.quick else 3)
    model = opts.overhead_model
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    saved = os.environ.get("MLF_HOME")
    pairs: list[tuple[dict, dict]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="mlf-bench-overhead-") as tmp:
            for k in range(rounds):
                folder = Path(tmp) / f"round-{k + 1}"
                folder.mkdir()
                os.environ["MLF_HOME"] = str(folder / ".mlf")
                bare = overhead.run(model, trials, "memory", False, folder)
                url = f"journal:///{folder / 'optuna.journal'}"
                pairs.append((bare, overhead.run(model, trials, url, True, folder)))
            bare_gaps = [g for a, _ in pairs for g in a["gaps"]]
            mlf_gaps = [g for _, b in pairs for g in b["gaps"]]
            diffs = [
                gb - ga for a, b in pairs for ga, gb in zip(a["gaps"], b["gaps"], strict=False)
            ]
            ms = median(diffs) * 1000
            share = 100 * median(diffs) / median(mlf_gaps)
            met = ms < OVERHEAD_MS and share < OVERHEAD_SHARE
            profile_md = ""
            if opts.profile == "always" or (opts.profile == "auto" and not met):
                folder = Path(tmp) / "profile"
                folder.mkdir()
                profile_md = profile_overhead(model, trials, folder)
    finally:
        if saved is None:
            os.environ.pop("MLF_HOME", None)
        else:
            os.environ["MLF_HOME"] = saved
    rows = []
    for k, (a, b) in enumerate(pairs, start=1):
        d = median([gb - ga for ga, gb in zip(a["gaps"], b["gaps"], strict=False)])
        rows.append(
            [
                f"round {k}",
                f"{a['median_s'] * 1000:.1f}",
                f"{b['median_s'] * 1000:.1f}",
                f"{d * 1000:+.1f}",
                f"{a['wall_s'] / trials * 1000:.1f}",
                f"{b['wall_s'] / trials * 1000:.1f}",
                f"{b['tracking_writer_s'] * 1000:.1f}",
            ]
        )
    mean_bare = sum(a["wall_s"] for a, _ in pairs) / (rounds * trials)
    mean_mlf = sum(b["wall_s"] for _, b in pairs) / (rounds * trials)
    thread = sum(b["tracking_writer_s"] for _, b in pairs) / rounds
    rows.append(
        [
            "**all rounds**",
            f"**{median(bare_gaps) * 1000:.1f}**",
            f"**{median(mlf_gaps) * 1000:.1f}**",
            f"**{ms:+.1f}**",
            f"{mean_bare * 1000:.1f}",
            f"{mean_mlf * 1000:.1f}",
            f"{thread * 1000:.1f}",
        ]
    )
    verdict = "met" if met else "**missed**"
    body = "\n\n".join(
        [
            f"`benchmarks/overhead.py`'s runs: `{model}` on the built-in Walmart data, {trials} "
            f"trials per run, {rounds} rounds of (bare, mlf), each round in a fresh folder. "
            "bare = in-memory Optuna storage, no callbacks; mlf = the journal storage, MLflow "
            "tracking (SQLite store) and the Rich progress callback. Both use the same sampler "
            "seed, so trial *i* has the same parameters and fit in both. A trial's time runs "
            "from its start to the next trial's start (storage writes and callbacks included). "
            "Overhead = the median over trials of mlf − bare for the same trial; its share is "
            "of the median mlf trial. MLflow child runs are written by a writer process "
            "(mlforecast_cli/tracking/child_runs.py): its time per trial is in the last "
            "column, off the trial's path unless the cores are busy.",
            table(
                [
                    "",
                    "bare median ms/trial",
                    "mlf median ms/trial",
                    "overhead ms (paired median)",
                    "bare mean ms/trial",
                    "mlf mean ms/trial",
                    "MLflow writer ms/trial",
                ],
                rows,
                "lrrrrrr",
            ),
            f"**Overhead {ms:.1f} ms per trial, {share:.1f} % of a median trial**; target < "
            f"{OVERHEAD_MS:.0f} ms and < {OVERHEAD_SHARE:.0f} %: {verdict}. (Difference of the "
            f"medians: {(median(mlf_gaps) - median(bare_gaps)) * 1000:+.1f} ms; of the means, "
            f"which the few slow trials dominate: {(mean_mlf - mean_bare) * 1000:+.1f} ms.)",
            profile_md,
        ]
    )
    return Section(
        "overhead",
        "Framework overhead per trial",
        body,
        time.perf_counter() - started,
        {
            "trials": trials,
            "rounds": rounds,
            "overhead_ms": round(ms, 1),
            "overhead_pct": round(share, 1),
            "bare_ms": round(median(bare_gaps) * 1000, 1),
            "mlf_ms": round(median(mlf_gaps) * 1000, 1),
            "tracking_writer_ms": round(thread * 1000, 1),
            "met": met,
        },
    )


def profile_overhead(model: str, trials: int, folder: Path) -> str:
    """cProfile one more tracked run in this process (search, storage, callbacks); the child
    runs are written by the writer process, whose time is in the overhead table."""
    import cProfile
    import pstats

    import overhead

    from mlforecast_cli.services.mlflow_store import use_wal_for_sqlite

    main = cProfile.Profile()
    from mlflow.tracking import MlflowClient

    # The import and the new store's migrations happen once per run, not per trial.
    use_wal_for_sqlite()
    MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    url = f"journal:///{folder / 'profile.journal'}"
    main.enable()
    overhead.run(model, trials, url, True, folder)
    main.disable()

    def top(profile: cProfile.Profile, key: str, n: int, keep=lambda file: True) -> list:
        stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
        entries = []
        for (file, line, func), (_, calls, own, cum, _) in stats.items():
            where = f"{Path(file).parent.name}/{Path(file).name}:{line}({func})"
            if "importlib" in file or file.startswith("<frozen") or not keep(file):
                continue
            entries.append((own if key == "own" else cum, calls, own, cum, where))
        entries.sort(reverse=True)
        return [
            [f"`{w}`", str(c), f"{o / trials * 1000:.2f}", f"{cu / trials * 1000:.2f}"]
            for _, c, o, cu, w in entries[:n]
        ]

    def not_model(file: str) -> bool:
        return not any(f"{os.sep}{lib}{os.sep}" in file for lib in MODEL_LIBRARIES)

    def framework(file: str) -> bool:
        return any(f"{os.sep}{pkg}{os.sep}" in file for pkg in ("mlforecast_cli", "optuna"))

    headers = ["function", "calls", "own ms/trial", "cumulative ms/trial"]
    return "\n\n".join(
        [
            f"Profile (cProfile, one more tracked run of {trials} trials; times per trial, "
            "profiling makes them larger than above):",
            "Main thread, top entries by own time, the model library's own entries left out "
            "(they are the fit, the same in both setups):",
            table(headers, top(main, "own", 12, not_model), "lrrr"),
            "Main thread, mlf's and Optuna's functions by cumulative time:",
            table(headers, top(main, "cum", 12, framework), "lrrr"),
        ]
    )


# --------------------------------------------------------------------------- the document
def targets_table(sections: dict[str, Section]) -> str:
    rows = []
    o = sections.get("overhead")
    if o:
        s = o.summary
        rows.append(
            [
                "framework overhead per trial",
                f"< {OVERHEAD_MS:.0f} ms and < {OVERHEAD_SHARE:.0f} %",
                f"{s['overhead_ms']:.1f} ms, {s['overhead_pct']:.1f} %",
                "met" if s["met"] else "**missed**",
            ]
        )
    sc = sections.get("scaling")
    for model, s in (sc.summary.get("models", {}) if sc else {}).items():
        rows.append(
            [
                f"speed-up, --n-jobs 2 vs 1 ({model}, {s['trial_median_s']:.2f} s/trial)",
                "≥ 1.8×",
                f"{s['ratio']:.2f}× (steady {s['steady_ratio']:.2f}×)",
                "met" if s["met"] else "**missed**",
            ]
        )
    if not rows:
        return ""
    return "## Targets\n\n" + table(["target", "goal", "measured", ""], rows, "llll") + "\n"


def document(info: dict, command: str, sections: dict[str, Section], opts) -> str:
    mode = "quick" if opts.quick else "full"
    parts = [
        "# Benchmarks\n",
        f"Generated by `{command}` ({mode} run); rerun it to refresh this file. See "
        "`benchmarks/README.md` for what each section measures.\n",
        machine_markdown(info) + "\n",
    ]
    if opts.quick:
        parts.append(
            "> A quick run: few trials and capped neural models, on a machine other jobs may "
            "be using (see the load average). The figures show that everything runs; run "
            "`python benchmarks/run.py` on a quiet machine for figures to quote.\n"
        )
    targets = targets_table(sections)
    if targets:
        parts.append(targets)
    parts += [sections[k].markdown() for k in SECTIONS if k in sections]
    return "\n".join(parts)


def load_section(name: str):
    if name == "overhead":
        return overhead_section
    module = __import__(name)
    return module.section


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    words = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "benchmarks/run.py", *words])
    info = machine_info()
    print(f"{command}\n\n{machine_markdown(info)}\n", flush=True)
    sections: dict[str, Section] = {}
    output: Path = opts.output
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for name in SECTIONS:
        if name not in opts.only:
            continue
        print(f"... {name}", file=sys.stderr, flush=True)
        section = load_section(name)(opts)
        sections[name] = section
        print(section.markdown(), flush=True)
        output.write_text(document(info, command, sections, opts))
    print(f"wrote {output} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
