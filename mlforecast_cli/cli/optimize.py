"""`mlf optimize`: search each model's space, track every trial, refit the best, score on test."""

from __future__ import annotations

import contextlib
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import MlfError, UsageError, first_line
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
from .options import TrackingUriOpt
from .output import console, err_console, print_json, print_table

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
REFERENCE = "seasonal_naive"


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the running trial fails, runs are closed) but exit 143."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@dataclass
class ModelOutcome:
    """What one model's study gave, for the leaderboard and --json."""

    model: str
    study_name: str
    counts: dict[str, int] = field(default_factory=dict)
    best_value: float | None = None
    best_params: dict[str, Any] | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    parent_run_id: str | None = None
    seconds: float = 0.0
    error: str | None = None
    tracking_seconds: float = 0.0
    naive_fallback: int | None = None


def optimize(
    models: Annotated[
        list[str] | None, typer.Argument(help="Models to search (default: every ready model).")
    ] = None,
    trials: Annotated[int, typer.Option("--trials", min=1, help="Trials to add per model.")] = 20,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="Stop a model's search after SECONDS.")
    ] = None,
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    target: TargetOpt = None,
    time_col: TimeOpt = None,
    id_col: IdOpt = None,
    feature: FeatureOpt = None,
    freq: FreqOpt = None,
    horizon: Annotated[
        int | None, typer.Option("--horizon", min=1, help="Steps to forecast (dataset default).")
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option("--metric", help="mape|smape|mae|rmse|mase|wape|wmae (default mape)."),
    ] = None,
    cv_windows: Annotated[
        int, typer.Option("--cv-windows", min=1, help="Rolling validation windows.")
    ] = 1,
    space_file: Annotated[
        Path | None, typer.Option("--space", help="Search-space YAML replacing the model's.")
    ] = None,
    assignments: Annotated[
        list[str] | None, typer.Option("--set", help="Override one space key: KEY=VALUE.")
    ] = None,
    study_name: Annotated[
        str | None, typer.Option("--study-name", help="Study to create or resume.")
    ] = None,
    storage: Annotated[
        str | None, typer.Option("--storage", help="Optuna storage URL (default .mlf/ journal).")
    ] = None,
    n_jobs: Annotated[int, typer.Option("--n-jobs", min=1, help="Trials run at once.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Sampler and model seed.")] = 42,
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="MLflow experiment.")
    ] = None,
    tracking_uri: TrackingUriOpt = None,
    device: Annotated[str, typer.Option("--device", help="auto|cpu|cuda|mps.")] = "auto",
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print only the final table.")] = False,
    plots: Annotated[
        Path | None,
        typer.Option("--plots", help="Also save each study's plots (PNG) in DIR/<study name>/."),
    ] = None,
    worker: Annotated[bool, typer.Option("--worker", hidden=True)] = False,
    until_total: Annotated[int | None, typer.Option("--until-total", hidden=True)] = None,
    tracking_fd: Annotated[int | None, typer.Option("--tracking-fd", hidden=True)] = None,
) -> None:
    """Search hyperparameters with Optuna, track every trial in MLflow, refit and test the best."""
    from ..registry import get_registry
    from ..threads import limit_native_threads

    limit_native_threads(n_jobs)
    from ..space import METRIC_NAMES

    if metric is not None and metric not in METRIC_NAMES:
        raise UsageError(f"--metric {metric!r} is not one of {', '.join(METRIC_NAMES)}")
    registry = get_registry()
    if models:
        entries = [registry.get(name) for name in dict.fromkeys(models)]
        for entry in entries:
            if entry.missing():
                raise UsageError(
                    f"model '{entry.name}' needs {', '.join(entry.missing())}: "
                    f"{entry.install_hint()}"
                )
            if entry.space_error:
                raise UsageError(f"model '{entry.name}' has an invalid space: {entry.space_error}")
    else:
        entries = [e for e in registry.models.values() if e.ready]
        if not entries:
            raise UsageError("no model is ready: run 'mlf list-models' to see what is missing")

    choice = load_data(dataset, data, target, time_col, id_col, feature, freq)
    horizon = horizon or choice.default_horizon
    if horizon is None:
        raise UsageError(f"--horizon is needed for --data {data}: how many steps to forecast")
    plans = [
        _plan(
            entry,
            choice,
            horizon,
            metric,
            cv_windows,
            space_file,
            assignments,
            study_name,
            storage,
            n_jobs,
            seed,
            device,
            len(entries) > 1,
        )
        for entry in entries
    ]
    experiment = experiment or choice.experiment
    from ..tracking import MlflowTracker

    quiet = quiet or json_output
    outcomes: list[ModelOutcome] = []
    board = None
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    if not quiet:
        from ..progress import ProgressBoard

        board = ProgressBoard(console=err_console if json_output else console)
        board.__enter__()
    from . import workers

    worker_options = [
        "--quiet",
        "--worker",
        "--n-jobs",
        str(n_jobs),
        "--horizon",
        str(horizon),
        "--cv-windows",
        str(cv_windows),
        "--experiment",
        experiment,
        "--device",
        device,
        *workers.data_options(dataset, data, target, time_col, id_col, feature),
        *(["--freq", freq] if freq else []),
        *(["--space", str(space_file.resolve())] if space_file else []),
        *(arg for a in assignments or () for arg in ("--set", a)),
        *(["--timeout", str(timeout)] if timeout is not None else []),
    ]
    tracker = None
    try:
        for entry, config in plans:
            tracker = MlflowTracker(
                experiment=experiment,
                tracking_uri=tracking_uri,
                metric=config.metric,
                worker=worker,
                writer_fd=tracking_fd,
                workers=0 if worker else config.n_jobs - 1,
            )
            outcomes.append(
                _run_one(
                    entry,
                    config,
                    choice,
                    tracker,
                    board,
                    trials,
                    timeout,
                    plots_dir=plots,
                    worker=worker,
                    worker_options=worker_options,
                    until_total=until_total,
                )
            )
    except KeyboardInterrupt as exc:
        if tracker is not None and tracker.parent_run_id:
            tracker.close("KILLED")
        if board is not None:
            board.__exit__(None, None, None)
            board = None
        names = " ".join(e.name for e, _ in plans)
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        err_console.print(
            f"[yellow]{what}:[/] finished trials are kept; run the same command to resume "
            f"(mlf optimize {names} ...)"
        )
        code = EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        raise typer.Exit(code) from None
    finally:
        if tracker is not None and not tracker.closed:  # an error: no half-open writer or run
            with contextlib.suppress(Exception):
                tracker.close("FAILED" if tracker.parent_run_id else None)
        if board is not None:
            board.__exit__(None, None, None)

    if json_output:
        print_json(_document(outcomes, experiment, choice, horizon))
    else:
        _print_leaderboard(outcomes, plans[0][1].metric)
    failed = [o for o in outcomes if o.error]
    if failed:
        for o in failed:
            err_console.print(f"[red]error:[/] {o.model}: {o.error}", highlight=False)
        raise typer.Exit(1)


def _plan(
    entry,
    choice: DataChoice,
    horizon,
    metric,
    cv_windows,
    space_file,
    assignments,
    study_name,
    storage,
    n_jobs,
    seed,
    device,
    several,
):
    """Validate everything about one model's study before anything is written."""
    from ..data import split_panel
    from ..runner import StudyConfig, _min_train, resolve_device
    from ..space import build_pruner, build_sampler, load_space

    space = load_space(space_file) if space_file else entry.load_space()
    if assignments:
        space = space.override(assignments)
    if metric is not None:
        space = space.override([f"optimizer.metric={metric}"])
    build_sampler(space, seed=seed)
    build_pruner(space)
    metric = space.metric
    if metric == "wmae" and choice.panel.weights is None:
        raise UsageError("--metric wmae needs a weight column: the data has none; use mae")
    split_panel(choice.panel, horizon, cv_windows, min_train=_min_train(space))
    name = study_name or f"{entry.name}-{choice.name}-h{horizon}-{metric}"
    if study_name and several:
        name = f"{study_name}-{entry.name}"
    if cv_windows > 1 and not study_name:
        name += f"-cv{cv_windows}"
    from .. import __version__

    config = StudyConfig(
        model=entry.name,
        study_name=name,
        horizon=horizon,
        space=space,
        metric=metric,
        cv_windows=cv_windows,
        storage=storage,
        seed=seed,
        device=resolve_device(device, entry),
        n_jobs=n_jobs,
        extra={
            "data": choice.name,
            "plugin": entry.plugin.name,
            "plugin_version": entry.plugin.version,
            "mlf_version": __version__,
        },
    )
    return entry, config


def _run_one(
    entry,
    config,
    choice: DataChoice,
    tracker,
    board,
    trials,
    timeout,
    plots_dir=None,
    worker: bool = False,
    worker_options: list[str] | None = None,
    until_total: int | None = None,
) -> ModelOutcome:
    from .. import __version__
    from ..runner import (
        build_objective,
        create_study,
        metric_label,
        reap_dead_trials,
        refit_best,
        run_study,
    )
    from ..storage import default_storage_url, redact
    from . import invocation

    started = time.perf_counter()
    objective = build_objective(entry, choice.panel, config)
    study, created = create_study(config, choice.panel)
    panel = choice.panel
    reaped = reap_dead_trials(study)
    tracker.start(
        study,
        created=created,
        parent_params={
            "model": entry.name,
            "study_name": config.study_name,
            "data": choice.name,
            "data_fingerprint": panel.fingerprint(),
            "horizon": config.horizon,
            "metric": config.metric,
            "cv_windows": config.cv_windows,
            "seed": config.seed,
            "plugin": entry.plugin.name,
            "plugin_distribution": entry.plugin.dist,
            "plugin_version": entry.plugin.version,
            "mlf_version": __version__,
            "storage": redact(config.storage or "default"),
        },
        parent_tags={"mlf.model": entry.name, "mlf.command": shlex.join(["mlf", *invocation()])},
        space_yaml=config.space.to_yaml(),
        pending=reaped,
    )
    from . import workers

    callbacks = [tracker]
    progress = None
    if board is not None:
        progress = board.add(entry.name, trials, metric_label(config.metric), study)
        callbacks.append(progress)
    outcome = ModelOutcome(entry.name, config.study_name, parent_run_id=tracker.parent_run_id)
    # --n-jobs: every process pulls trials until the study holds `until` of them, so a process
    # that starts late (imports, data) does not leave a fixed share for the end.
    if worker:
        until = until_total
    elif config.n_jobs > 1:
        until = len(study.get_trials(deepcopy=False)) + trials
    else:
        until = None
    commands = [
        [
            "optimize",
            entry.name,
            *(worker_options or []),
            "--study-name",
            config.study_name,
            "--storage",
            config.storage or default_storage_url(),
            "--tracking-uri",
            tracker.tracking_uri,
            "--metric",
            config.metric,
            "--trials",
            str(trials),
            "--until-total",
            str(until),
            "--seed",
            str(config.seed + k),
        ]
        for k in range(1, config.n_jobs if until is not None and not worker else 1)
    ]
    procs = workers.start(commands, [tracker.worker_pipe() for _ in commands])
    tracker.release_worker_pipes()
    try:
        if progress is not None and procs:
            progress.poll()
        run_study(
            entry,
            panel,
            config,
            n_trials=trials if until is None else None,
            until_total=until,
            timeout=timeout,
            callbacks=callbacks,
            study=study,
            objective=objective,
        )
        worker_errors = workers.wait(procs)
    except KeyboardInterrupt:
        workers.stop(procs)
        workers.wait(procs)
        tracker.log_unfinished(objective.started, status="KILLED")
        tracker.close(None if worker else "KILLED")
        raise
    if progress is not None:
        progress.finish()
    tracker.flush()
    if worker:
        tracker.close(None)
        outcome.counts = _counts(study)
        return outcome
    if worker_errors:
        err_console.print(f"[yellow]warning:[/] {'; '.join(worker_errors)}", highlight=False)
    outcome.counts = _counts(study)
    status = "FINISHED"
    if outcome.counts.get("complete", 0) == 0:
        errors = [t.user_attrs.get("error") for t in study.trials if t.user_attrs.get("error")]
        outcome.error = "no trial completed" + (f"; last error: {errors[-1]}" if errors else "")
        status = "FAILED"
        tracker.log_summary(best_params=None, best_value=None, counts=outcome.counts)
    else:
        outcome.best_value = study.best_value
        try:
            refit = refit_best(entry, panel, config, study)
        except MlfError as exc:
            outcome.error = f"refit of the best trial failed: {exc}"
            status = "FAILED"
            refit = None
        outcome.best_params = refit.params if refit else None
        with tempfile.TemporaryDirectory(prefix="mlf-model-") as tmp:
            model_dir = None
            if refit is not None:
                outcome.test_metrics = refit.test_metrics
                outcome.naive_fallback = refit.naive_fallback
                model_dir = _save_model(entry, config, choice, refit, Path(tmp) / "model")
            tracker.log_summary(
                best_params=outcome.best_params or dict(study.best_params),
                best_value=outcome.best_value,
                test_metrics=outcome.test_metrics,
                train_metrics=refit.train_metrics if refit else None,
                counts=outcome.counts,
                naive_fallback=outcome.naive_fallback,
            )
            if model_dir is not None:
                try:
                    tracker.log_model(model_dir, panel=panel, requirements=_requirements(entry))
                except Exception as exc:
                    first = first_line(exc)
                    outcome.error = (
                        f"logging the model in MLflow failed: {type(exc).__name__}: {first}"
                    )
                    status = "FAILED"
            _log_plots(
                study, tracker, config, entry.name, panel, refit, Path(tmp) / "plots", plots_dir
            )
    tracker.close(status)
    if tracker.errors:
        err_console.print(
            f"[yellow]warning:[/] {len(tracker.errors)} child run(s) not written to MLflow; "
            f"first: {tracker.errors[0]}",
            highlight=False,
        )
    outcome.tracking_seconds = tracker.seconds
    outcome.seconds = time.perf_counter() - started
    return outcome


def _save_model(entry, config, choice: DataChoice, refit, folder: Path) -> Path:
    from dataclasses import asdict

    from .. import __version__
    from ..runner import DEFAULT_SCALER, DEFAULT_WINDOW_SIZE
    from ..saved_model import SavedModel

    panel = choice.panel
    saved = SavedModel(
        model_name=entry.name,
        plugin=entry.plugin.name,
        plugin_version=entry.plugin.version,
        params=refit.params,
        task=refit.task,
        columns=asdict(panel.columns),
        freq=panel.freq,
        series_ids=panel.id_labels,
        window_size=int(refit.params.get("window_size", DEFAULT_WINDOW_SIZE)),
        scaler=str(refit.params.get("scaler", DEFAULT_SCALER)),
        forecaster=refit.result.model,
        study_name=config.study_name,
        data_fingerprint=panel.fingerprint(),
        test_metrics=refit.test_metrics,
        mlf_version=__version__,
    )
    return saved.save(folder)


def _requirements(entry) -> list[str]:
    """Distributions the logged model needs besides mlf's own: the plugin's and its libraries."""
    return (
        [entry.plugin.dist, *entry.spec.requires] if entry.plugin.dist else [*entry.spec.requires]
    )


def _log_plots(study, tracker, config, model, panel, refit, folder: Path, plots_dir) -> None:
    """Draw the study's plots, log them on the parent run and copy them to ``plots_dir``."""
    import shutil

    from ..plots import study_plots

    drawn = study_plots(
        study,
        folder,
        panel=panel,
        result=refit.result if refit is not None else None,
        model=model,
        metric=config.metric,
    )
    try:
        tracker.log_plots(folder)
    except Exception as exc:
        err_console.print(f"[yellow]warning:[/] could not log the plots in MLflow: {exc}")
    if plots_dir is not None and drawn.files:
        target = Path(plots_dir) / config.study_name
        try:
            target.mkdir(parents=True, exist_ok=True)
            for path in drawn.files.values():
                shutil.copy2(path, target / path.name)
        except OSError as exc:
            err_console.print(f"[yellow]warning:[/] could not write the plots to {target}: {exc}")


def _counts(study) -> dict[str, int]:
    counts = {"complete": 0, "pruned": 0, "fail": 0}
    for trial in study.get_trials(deepcopy=False):
        key = trial.state.name.lower()
        if key in counts:
            counts[key] += 1
    return counts


def _print_leaderboard(outcomes: list[ModelOutcome], metric: str) -> None:
    from ..runner import metric_label

    label = metric_label(metric)
    ranked = sorted(
        outcomes, key=lambda o: (o.test_metrics.get(metric) is None, o.test_metrics.get(metric, 0))
    )
    rows = []
    for o in ranked:
        c = o.counts
        rows.append(
            {
                "model": o.model + (" (reference)" if o.model == REFERENCE else ""),
                "val": o.best_value,
                "test": o.test_metrics.get(metric),
                "trials": f"{c.get('complete', 0)}✓ {c.get('pruned', 0)}✂ {c.get('fail', 0)}✗",
                "naive": o.naive_fallback,
                "time": f"{o.seconds:.1f}s",
                "study": o.study_name,
            }
        )
    print_table(
        rows,
        ["model", "val", "test", "trials", "naive", "time", "study"],
        headers={"val": f"best val {label}", "test": f"test {label}", "naive": "naive fallback"},
        title="Leaderboard",
        shrink=("study",),
    )


def _document(outcomes, experiment, choice: DataChoice, horizon) -> dict:
    return {
        "experiment": experiment,
        "data": choice.name,
        "horizon": horizon,
        "models": [
            {
                "model": o.model,
                "study_name": o.study_name,
                "trials": o.counts,
                "best_value": o.best_value,
                "best_params": o.best_params,
                "test_metrics": o.test_metrics,
                "naive_fallback": o.naive_fallback,
                "mlflow_parent_run_id": o.parent_run_id,
                "seconds": round(o.seconds, 3),
                "error": o.error,
            }
            for o in outcomes
        ],
    }
