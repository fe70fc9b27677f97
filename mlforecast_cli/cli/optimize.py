"""`mlf optimize`: search each model's space, track every trial, refit the best, score on test.

This module parses the flags, loops over the models and prints; the work is in the core
(:mod:`mlforecast_cli.optimize`): see docs/architecture.md.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from ..errors import MlfError, UsageError
from ..optimize.budget import UNCAPPED_TRIALS
from ..search.metrics import DEFAULT_METRIC
from ..trials.reference import REFERENCE_HEADER
from .cluster import ClusterOpt, check_cluster, on_cluster
from .data_options import (
    DataChoice,
    DataOpt,
    DatasetOpt,
    FeatureOpt,
    FreqOpt,
    IdOpt,
    TargetOpt,
    TimeOpt,
    load_data,
)
from .invocation import invocation
from .options import METRICS_TEXT, TrackingUriOpt, WideOpt
from .output import (
    console,
    err_console,
    error_line,
    print_json,
    print_table,
    say,
    show_tracebacks,
    warning_line,
    with_ratio_text,
)

if TYPE_CHECKING:
    from ..optimize.budget import RunBudget
    from ..optimize.ensemble_run import EnsembleOutcome
    from ..optimize.plan import OptimizeConfig
    from ..optimize.study_run import ModelOutcome, StudyRun


def optimize(
    models: Annotated[
        list[str] | None,
        typer.Argument(
            help="Models to search (default: every ready model but the slow lstm, tcn, "
            "transformer and arima, which are named to be searched)."
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            min=1,
            metavar="N",
            help=f"Trials to add per model (default {DEFAULT_TRIALS}; with --time-limit, as "
            "many as the time allows).",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0, metavar="SECONDS", help="Stop a model's search after SECONDS."
        ),
    ] = None,
    time_limit: Annotated[
        str | None,
        typer.Option(
            "--time-limit",
            metavar="DURATION",
            help="Time for the whole run (90s, 30m, 2h), shared among its models and the "
            "ensemble: each model's search stops in time for its refit.",
        ),
    ] = None,
    ensemble: Annotated[
        bool,
        typer.Option(
            "--ensemble/--no-ensemble",
            help="End a run of several models with their ensemble (as 'mlf ensemble').",
        ),
    ] = True,
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    target: TargetOpt = None,
    time_col: TimeOpt = None,
    id_col: IdOpt = None,
    feature: FeatureOpt = None,
    freq: FreqOpt = None,
    horizon: Annotated[
        int | None,
        typer.Option(
            "--horizon", min=1, metavar="STEPS", help="Steps to forecast (dataset default)."
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            metavar="NAME",
            help=f"Metric the search minimises: {METRICS_TEXT} (default {DEFAULT_METRIC}).",
        ),
    ] = None,
    cv_windows: Annotated[
        int, typer.Option("--cv-windows", min=1, metavar="K", help="Rolling validation windows.")
    ] = 1,
    ape_cap: Annotated[
        float,
        typer.Option(
            "--ape-cap",
            min=0,
            metavar="PCT",
            help="With MAPE, every model selects on each point's error capped at PCT percent "
            "(100: the error of forecasting zero); 0, the default, selects on the plain MAPE.",
        ),
    ] = 0.0,
    ensemble_windows: Annotated[
        int,
        typer.Option(
            "--ensemble-windows",
            min=1,
            metavar="K",
            help="Windows each study keeps forecasts on for 'mlf ensemble' to weigh members "
            "(--cv-windows plus older ones, fitted once more).",
        ),
    ] = 3,
    space_file: Annotated[
        Path | None,
        typer.Option("--space", metavar="FILE", help="Search-space YAML replacing the model's."),
    ] = None,
    assignments: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override one space key (repeatable)."),
    ] = None,
    study_name: Annotated[
        str | None, typer.Option("--study-name", metavar="NAME", help="Study to create or resume.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage", metavar="URL", help="Optuna storage URL (default .mlf/ journal)."
        ),
    ] = None,
    n_jobs: Annotated[
        int, typer.Option("--n-jobs", min=1, metavar="N", help="Trials run at once.")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Sampler and model seed.")] = 42,
    experiment: Annotated[
        str | None, typer.Option("--experiment", metavar="NAME", help="MLflow experiment.")
    ] = None,
    tracking_uri: TrackingUriOpt = None,
    device: Annotated[
        str,
        typer.Option(
            "--device", metavar="NAME", help="Where torch models run: auto, cpu, cuda or mps."
        ),
    ] = "auto",
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print only the final table.")] = False,
    wide: WideOpt = False,
    cluster: ClusterOpt = None,
    plots: Annotated[
        Path | None,
        typer.Option(
            "--plots",
            metavar="DIR",
            help="Also save each study's plots (PNG) in DIR/<study name>/.",
        ),
    ] = None,
    no_final_refit: Annotated[
        bool,
        typer.Option(
            "--no-final-refit",
            help="Save the model refit on train + valid for 'mlf predict' (default: refit the "
            "best once more on the whole history after the test, and save that).",
        ),
    ] = False,
) -> None:
    """Search hyperparameters with Optuna, track every trial in MLflow, refit and test the best."""
    from ..services.threads import limit_native_threads

    budget = run_budget(time_limit, ensemble)  # the user's clock starts with the command
    limit_native_threads(n_jobs)  # before NumPy or a model library starts its thread pools
    from ..models.registry import get_registry
    from ..optimize.plan import OptimizeConfig, check_assignments, select_models
    from ..optimize.study_run import StudyRun
    from ..search.metrics import check_metric
    from ..services.storage import check_storage_url
    from ..trials.optuna_study import StudySettings

    if metric is not None:
        check_metric(metric)
    check_storage_url(storage)
    address = check_cluster(cluster)
    chosen = select_models(get_registry(), models)
    entries = chosen.entries
    choice = load_data(dataset, data, target, time_col, id_col, feature, freq)
    horizon = horizon or choice.default_horizon
    if horizon is None:
        raise UsageError(f"--horizon is needed for --data {data}: how many steps to forecast")
    config = OptimizeConfig(
        study=StudySettings(
            horizon=horizon,
            cv_windows=cv_windows,
            ape_cap=ape_cap or None,
            ensemble_windows=ensemble_windows,
            storage=storage,
            seed=seed,
            n_jobs=n_jobs,
            device=device,
            metric=metric,
            study_name=study_name,
        ),
        data_name=choice.name,
        experiment=experiment or choice.experiment,
        trials=trials or (UNCAPPED_TRIALS if budget else DEFAULT_TRIALS),  # the time ends it
        timeout=timeout,
        time_limit=budget.limit if budget else None,
        ensemble=ensemble,
        space_file=space_file,
        assignments=tuple(assignments or ()),
        tracking_uri=tracking_uri,
        plots_dir=plots,
        final_refit=not no_final_refit,
        command=shlex.join(["mlf", *invocation()]),
    )
    several = len(entries) + len(chosen.broken) > 1
    if several:
        check_assignments(entries, config.assignments)
    runs = [StudyRun.plan(entry, config, choice.panel, several=several) for entry in entries]
    for error in chosen.broken.values():
        warning_line(f"{error}; it is left out, the other models run")
    show_tracebacks(chosen.broken.values())
    header = plan_line(runs, config, explicit_trials=trials is not None)
    with on_cluster(address, [entry.name for entry in entries]):
        outcomes = _run(runs, header, quiet=quiet or json_output, budget=budget)
        combined = run_ensemble(runs, outcomes, config)
    if json_output:
        print_json(_run_document(runs, outcomes, combined, choice, chosen.broken))
    else:
        _print_leaderboard(outcomes, runs[0].config.metric, wide=wide)
        if combined is not None:
            _print_ensemble(combined, outcomes)
    _exit_for_failures(outcomes, chosen.broken)


def _run_document(runs, outcomes, combined, choice, broken: dict[str, MlfError]) -> dict:
    """The whole run as one --json document: models (the broken ones too), the models left out
    for time, the ensemble."""
    config = runs[0].run
    horizon = runs[0].config.horizon
    document = _document(outcomes, config.experiment, choice, horizon, runs[0].config.metric)
    document["models"] += [_broken_model(name, e) for name, e in broken.items()]
    document["time_limit"] = config.time_limit
    document["left_out"] = [r.entry.name for r in runs if r.outcome is None]  # no time
    document["ensemble"] = None if combined is None else _ensemble_document(combined)
    return document


DEFAULT_TRIALS = 20


def run_budget(time_limit: str | None, ensemble: bool) -> RunBudget | None:
    """The run's :class:`RunBudget` from ``--time-limit`` (None without one)."""
    if time_limit is None:
        return None
    from ..optimize.budget import RunBudget, parse_duration

    try:
        seconds = parse_duration(time_limit)
    except ValueError:
        raise UsageError(
            f"--time-limit {time_limit!r} is not a duration: give seconds or a number with h, "
            "m or s, such as 90s, 30m, 2h or 1h30m"
        ) from None
    if seconds <= 0:
        raise UsageError(f"--time-limit {time_limit!r} must be more than 0, such as 30m")
    return RunBudget(seconds, ensemble=ensemble)


def plan_line(runs: list[StudyRun], config: OptimizeConfig, *, explicit_trials: bool) -> str:
    """What the run will do and for about how long, said before it starts."""
    from ..optimize.budget import duration_text

    names = ", ".join(run.entry.name for run in runs)
    what = f"{len(runs)} model{'s' if len(runs) > 1 else ''} ({names})"
    if config.time_limit is None or explicit_trials:
        what += f", {config.trials} trial{'s' if config.trials > 1 else ''} each at most"
    if config.ensemble and len(runs) > 1:
        what += ", then their ensemble"
    if config.time_limit is None:
        return (
            f"mlf optimize: {what}; no time limit (--time-limit 30m ends the whole run, "
            "ensemble included, within 30 minutes)"
        )
    return (
        f"mlf optimize: {what}; within {duration_text(config.time_limit)} in all: each model "
        "gets an equal share of the time left when it starts, its search stopping in time "
        "for its refit"
    )


def run_ensemble(
    runs: list[StudyRun], outcomes: list[ModelOutcome], config: OptimizeConfig
) -> EnsembleOutcome | None:
    """The ensemble of the run's models (as `mlf ensemble` builds it), when the run has
    several that finished and ``--no-ensemble`` was not given; a warning instead of it when
    it cannot be built (the models' studies stand)."""
    done = [o.model for o in outcomes if not o.error and o.test_metrics]
    if not config.ensemble or len(done) < 2:
        return None
    from ..optimize.ensemble_run import EnsembleOptions, build_ensemble

    options = EnsembleOptions(tuple(done), metric=runs[0].config.metric)
    try:
        return build_ensemble(runs[0].tracker.tracking_uri, config.experiment, options)
    except MlfError as exc:
        warning_line(f"no ensemble of this run: {exc}")
        return None


def _exit_for_failures(outcomes: list[ModelOutcome], broken: dict[str, MlfError]) -> None:
    """One error line per model that could not run or whose study failed, then the exit code
    the worst of them gives alone: 2 for a model that is not ready, 1 for a broken plugin or
    a failed study (the other models have run)."""
    codes = []
    for error in broken.values():
        error_line(str(error))
        codes.append(error.exit_code)
    for o in outcomes:
        if o.error:
            error_line(f"{o.model}: {o.error}")
            codes.append(1)
    if codes:
        raise typer.Exit(max(codes))


def _broken_model(name: str, error: MlfError) -> dict:
    """A model that could not run, as --json lists it beside the others."""
    return {"model": name, "study_name": None, "trials": None, "error": str(error)}


def _run(
    runs: list[StudyRun], header: str, *, quiet: bool, budget: RunBudget | None
) -> list[ModelOutcome]:
    """Run each model's study with a progress board headed by ``header``, each within its
    share of ``budget``; Ctrl-C / SIGTERM end the command with a hint to resume (exit 130 /
    143)."""
    import signal
    import threading

    from ..optimize.budget import duration_text
    from ..optimize.workers import Terminated, exit_code, raise_terminated

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, raise_terminated)
        # Ctrl-C ends the study even when the parent started mlf with SIGINT ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
    board = None
    if not quiet:
        from ..views.progress import ProgressBoard

        class HeadedBoard(ProgressBoard):
            """Says the run's plan above the first bar: once the first study and its MLflow
            run are open, so that a store that cannot be used gives its one error line alone."""

            said = False

            def add(self, *args, **kwargs):
                if not self.said:
                    self.progress.console.print(Text(header))
                    self.said = True
                return super().add(*args, **kwargs)

        board = HeadedBoard(console=console)
    outcomes = []
    try:
        for k, run in enumerate(runs):
            if budget is not None and k > 0 and budget.spent():
                names = ", ".join(r.entry.name for r in runs[k:])
                warning_line(
                    f"--time-limit {duration_text(budget.limit)} is spent: {names} left out "
                    "(give more time, or name fewer models)"
                )
                break
            if budget is not None:
                run.time_share = budget.share(len(runs) - k)
            outcome = run.execute(board)
            if budget is not None:
                budget.record(run.fixed_seconds, None if outcome.error else run.comparable_best())
            for warning in outcome.warnings:
                warning_line(warning)
            for failure in outcome.failures:
                more = (
                    f" (and {failure.count - 1} more with this reason)" if failure.count > 1 else ""
                )
                show_tracebacks(
                    [failure.traceback or failure.reason],
                    heading=f"{run.entry.name}: trial {failure.trials[0]}{more} failed:",
                )
            outcomes.append(outcome)
    except KeyboardInterrupt as exc:
        if board is not None:
            board.__exit__(None, None, None)
            board = None
        names = " ".join(run.entry.name for run in runs)
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        err_console.print(
            f"[yellow]{what}:[/] finished trials are kept; run the same command to resume "
            f"(mlf optimize {names} ...)"
        )
        raise typer.Exit(exit_code(exc)) from None
    finally:
        if board is not None:
            board.__exit__(None, None, None)
    return outcomes


def _print_leaderboard(outcomes: list[ModelOutcome], metric: str, *, wide: bool = False) -> None:
    from ..search.metrics import metric_label
    from ..tracking.leaderboard import outcome_rows, ranking_note
    from ..trials.optuna_study import failures_text

    label = metric_label(metric)
    rows = [with_ratio_text(row) for row in outcome_rows(outcomes, metric)]
    print_table(
        rows,
        ["model", "val", "test", "vs_reference", "trials", "naive", "time", "study"],
        headers={
            "val": f"best val {label}",
            "test": f"test {label}",
            "vs_reference": REFERENCE_HEADER,
            "naive": "naive fallback",
        },
        title="Leaderboard",
        wrap=("model",),
        optional=("naive", "study"),
        wide=wide,
    )
    say(ranking_note(metric))
    for o in outcomes:
        if o.failures:
            say(f"{o.model}: {failures_text(o.failures)}")


def _print_ensemble(combined: EnsembleOutcome, outcomes: list[ModelOutcome]) -> None:
    """The run's ensemble in one line, beside the leaderboard."""
    from ..search.metrics import metric_label
    from ..tracking.leaderboard import vs_reference

    label, metric = metric_label(combined.metric), combined.metric
    weights = ", ".join(f"{m.model} {m.weight:.2f}" for m in combined.members if m.weight > 0)
    reference = next((o.reference for o in outcomes if o.reference is not None), None)
    ratio = vs_reference(
        combined.test_metrics.get(metric), reference and reference.test_metrics.get(metric)
    )
    versus = "" if ratio is None else f", {ratio:.2f} of the reference"
    for warning in combined.warnings:
        warning_line(warning)
    val = "none (one kept window)" if combined.val is None else f"{combined.val:.4g}"
    say(
        f"ensemble ({weights}; weights on {combined.windows} windows): val {label} {val} "
        f"(cross-fitted), test {label} {combined.test_metrics.get(metric, float('nan')):.4g}"
        f"{versus}; logged as study {combined.study_name}, forecast with 'mlf predict ensemble'"
    )


def _ensemble_document(combined: EnsembleOutcome) -> dict:
    return {
        "study_name": combined.study_name,
        "run_id": combined.run_id,
        "model_uri": combined.model_uri,
        "method": combined.method,
        "metric": combined.metric,
        "val": combined.val,
        "weight_windows": combined.windows,
        "test_metrics": combined.test_metrics,
        "members": combined.rows()[:-1],
        "warnings": combined.warnings,
    }


def _document(
    outcomes: list[ModelOutcome], experiment: str, choice: DataChoice, horizon: int, metric: str
) -> dict:
    from ..tracking.leaderboard import REFERENCE, vs_reference

    recorded = next((o.reference for o in outcomes if o.reference is not None), None)
    return {
        "experiment": experiment,
        "data": choice.name,
        "horizon": horizon,
        "metric": metric,
        "reference": None
        if recorded is None
        else {
            "model": REFERENCE,
            "val_metrics": recorded.val_metrics,
            "test_metrics": recorded.test_metrics,
        },
        "models": [
            {
                "model": o.model,
                "study_name": o.study_name,
                "trials": o.counts,
                "best_value": o.best_value,
                "best_params": o.best_params,
                "test_metrics": o.test_metrics,
                "vs_reference": vs_reference(
                    o.test_metrics.get(metric), o.reference and o.reference.test_metrics.get(metric)
                ),
                "naive_fallback": o.naive_fallback,
                "mlflow_parent_run_id": o.parent_run_id,
                "seconds": round(o.seconds, 3),
                "trained_on": o.trained_on,
                "refit_seconds": _rounded(o.refit_seconds),
                "final_refit_seconds": _rounded(o.final_refit_seconds),
                "error": o.error,
                "failures": [
                    {
                        "reason": f.reason,
                        "count": f.count,
                        "trials": f.trials,
                        "traceback": f.traceback,
                    }
                    for f in o.failures
                ],
                "warnings": o.warnings,
            }
            for o in outcomes
        ],
    }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
