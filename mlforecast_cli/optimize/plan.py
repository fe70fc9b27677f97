"""Planning an `mlf optimize` run: :class:`OptimizeConfig`, built once from the flags and
checked when it is made; the models to run; and each model's study config and split, planned
before anything is written."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MlfError, UnknownModelError, UsageError
from ..trials.optuna_study import DEVICES, StudySettings

if TYPE_CHECKING:
    from ..data.panel import Panel
    from ..data.split import Split
    from ..models.registry import ModelEntry, Registry
    from ..search.space import SearchSpace
    from ..trials.optuna_study import StudyConfig

CHILD_RUNS = ("auto", "process", "inline")
CHILD_RUNS_ENV = "MLF_CHILD_RUNS"
"""``inline``: write MLflow child runs in the trial's process instead of a writer process;
``process``: always a writer process; ``auto`` (the default): see :func:`child_runs_for`."""
INLINE_TRIALS = 10
"""``auto``: a study of at most this many trials in one process writes its child runs inline.
The writer process costs more to start (its own MLflow import: 2–3 s of CPU, the wait for it
at the end) than it takes off such a study's trials (15–30 ms each)."""
PLOTS_ENV = "MLF_PLOTS"
"""``0``: draw and log no study plots (tests that do not look at them)."""


def _child_runs_default() -> str:
    return os.environ.get(CHILD_RUNS_ENV) or "auto"


def _plots_default() -> bool:
    return os.environ.get(PLOTS_ENV, "1") != "0"


@dataclass(frozen=True)
class OptimizeConfig:
    """One `mlf optimize` run: the :class:`StudySettings` every model's study shares, and the
    few settings of the run itself; checked when made."""

    study: StudySettings
    data_name: str
    """Dataset name or data file stem (part of the default study name)."""
    experiment: str
    trials: int = 20
    timeout: float | None = None
    time_limit: float | None = None
    """Seconds for the whole run (``--time-limit``), shared among its models and the ensemble."""
    ensemble: bool = True
    """End a run of several models with their ensemble (``--no-ensemble``: not)."""
    space_file: Path | None = None
    assignments: tuple[str, ...] = ()
    tracking_uri: str | None = None
    plots_dir: Path | None = None
    """Also copy each study's plots to ``plots_dir/<study name>/``."""
    command: str = ""
    """The command line, recorded on each parent run (``mlf.command``)."""
    child_runs: str = field(default_factory=_child_runs_default)
    """``process`` (a writer process), ``inline`` or ``auto`` (:func:`child_runs_for`); default
    from ``MLF_CHILD_RUNS``."""
    draw_plots: bool = field(default_factory=_plots_default)
    """Draw and log the study plots; ``MLF_PLOTS=0`` turns them off."""
    final_refit: bool = True
    """After the test, fit the tested configuration on the whole history and save that as
    the model `mlf predict` uses (``--no-final-refit``: save the train + valid refit)."""

    def __post_init__(self) -> None:
        if not isinstance(self.trials, int) or self.trials < 1:
            raise UsageError(f"--trials {self.trials!r} must be a whole number of at least 1")
        if self.timeout is not None and self.timeout < 0:
            raise UsageError(f"--timeout {self.timeout} must not be negative")
        if self.time_limit is not None and self.time_limit <= 0:
            raise UsageError(
                f"--time-limit {self.time_limit:g}s must be more than 0: give a duration such "
                "as 90s, 30m or 2h"
            )
        if self.child_runs not in CHILD_RUNS:
            raise UsageError(
                f"{CHILD_RUNS_ENV}={self.child_runs!r} is not one of {', '.join(CHILD_RUNS)}"
            )
        object.__setattr__(self, "assignments", tuple(self.assignments))


@dataclass(frozen=True)
class ModelChoice:
    """The models to search, and the named ones that cannot run, each with why."""

    entries: list[ModelEntry]
    broken: dict[str, MlfError] = field(default_factory=dict)
    """Model name → why it cannot run (its plugin failed, a library is missing, its space is
    invalid); the error's ``exit_code`` is what the command exits with because of it."""


PLAIN_RUN_LEAVES_OUT = ("lstm", "tcn", "transformer", "arima")
"""Built-in models a plain `mlf optimize` (no model named) leaves out: on a CPU one of their
trials costs minutes where the others' cost seconds, and they lead no benchmark that pays for
it (docs/benchmarks.md, docs/stats.md); name them to search them."""


def select_models(registry: Registry, names: Sequence[str] | None) -> ModelChoice:
    """The models to search: ``names``, or every ready model outside
    :data:`PLAIN_RUN_LEAVES_OUT`.

    A named model that cannot run (see :attr:`ModelChoice.broken`) is set aside so that the
    others run; when none of them can, the first one's error is raised. An unknown name is a
    typo, refused at once (:class:`UnknownModelError`)."""
    if not names:
        ready = [e for e in registry.models.values() if e.ready]
        entries = [e for e in ready if e.name not in PLAIN_RUN_LEAVES_OUT] or ready
        if not entries:
            raise UsageError("no model is ready: run 'mlf list-models' to see what is missing")
        return ModelChoice(entries)
    entries: list[ModelEntry] = []
    broken: dict[str, MlfError] = {}
    for name in dict.fromkeys(names):
        try:
            entry = registry.get(name)
        except UnknownModelError:
            raise
        except MlfError as exc:  # its plugin failed to load, or two plugins claim the name
            broken[name] = exc
            continue
        problem = not_ready(entry)
        if problem is None:
            entries.append(entry)
        else:
            broken[name] = problem
    if not entries:
        raise next(iter(broken.values()))
    return ModelChoice(entries, broken)


def not_ready(entry: ModelEntry) -> UsageError | None:
    """Why ``entry`` cannot run here (a missing library, an invalid space), or None."""
    if entry.missing():
        return UsageError(
            f"model '{entry.name}' needs {', '.join(entry.missing())}: {entry.install_hint()}"
        )
    if entry.space_error:
        return UsageError(f"model '{entry.name}' has an invalid space: {entry.space_error}")
    return None


def model_key(assignment: str) -> str | None:
    """The model parameter a ``--set KEY=VALUE`` names, or None for a dotted or block key
    (``optimizer.metric=mae``, ``fixed={...}``)."""
    from ..search.space import TOP_LEVEL_KEYS

    key = str(assignment).split("=", 1)[0].strip()
    return None if "." in key or key in TOP_LEVEL_KEYS or "=" not in assignment else key


def check_assignments(entries: Sequence[ModelEntry], assignments: Sequence[str]) -> None:
    """With several models, each ``--set`` of a model parameter applies to the models that
    declare it; one that none of them declares is refused with the closest name."""
    import difflib

    from ..errors import SpaceError

    declared = {name for e in entries for name in e.declared_params}
    for assignment in assignments:
        key = model_key(assignment)
        if key is None or key in declared:
            continue
        close = difflib.get_close_matches(key, sorted(declared), 1, 0.6)
        owners = [e.name for e in entries if close and close[0] in e.declared_params]
        hint = f"did you mean '{close[0]}' ({', '.join(owners)})? " if close else ""
        names = ", ".join(e.name for e in entries)
        raise SpaceError(
            f"--set {key}: none of the models {names} has a parameter {key!r}; {hint}"
            "see mlf show-space MODEL"
        )


def plan_study(
    entry: ModelEntry, config: OptimizeConfig, panel: Panel, *, several: bool = False
) -> tuple[StudyConfig, Split]:
    """Validate everything about one model's study before anything is written: its space
    (with ``--space``/``--set``/``--metric``), sampler, pruner, name and device; and split the
    panel, the one time a study does (every step of the study takes this split)."""
    from .. import __version__
    from ..data.split import split_panel
    from ..search.space import build_pruner, build_sampler
    from ..trials.fit import min_train
    from ..trials.optuna_study import StudyConfig

    settings = config.study
    assignments = [
        a
        for a in config.assignments
        if not several or model_key(a) in (None, *entry.declared_params)
    ]  # with several models, a parameter is set on those that declare it
    space = entry.effective_space(config.space_file, assignments)
    if settings.metric is not None:
        space = space.override([f"optimizer.metric={settings.metric}"])
    metric = space.metric
    if metric == "wmae" and panel.weights is None:
        raise UsageError("--metric wmae needs a weight column: the data has none; use mae")
    split = split_panel(
        panel, settings.horizon, settings.cv_windows, min_train=min_train(entry, space)
    )
    space = space.fitted_to_history(split.median_history).exhaustive(config.trials)
    build_sampler(space, seed=settings.seed)
    build_pruner(space)
    name = settings.study_name or f"{entry.name}-{config.data_name}-h{settings.horizon}-{metric}"
    if settings.study_name and several:
        name = f"{settings.study_name}-{entry.name}"
    if settings.cv_windows > 1 and not settings.study_name:
        name += f"-cv{settings.cv_windows}"
    if settings.ape_cap is not None and metric == "mape" and not settings.study_name:
        name += f"-cap{settings.ape_cap:g}"  # another metric: its own study
    if not settings.study_name and (config.space_file or config.assignments):
        name += space_suffix(entry, space)
    study = StudyConfig(
        model=entry.name,
        study_name=name,
        space=space,
        settings=settings,
        device=resolve_device(settings.device, entry),
        extra={
            "data": config.data_name,
            "plugin": entry.plugin.name,
            "plugin_version": entry.plugin.version,
            "mlf_version": __version__,
        },
    )
    return study, split


def child_runs_for(run: OptimizeConfig, study: StudyConfig) -> str:
    """Where ``study``'s child runs are written: ``run.child_runs``, with ``auto`` resolved to
    ``inline`` for a study of at most :data:`INLINE_TRIALS` trials (one for a space with
    nothing to search) in one process, else ``process``."""
    if run.child_runs != "auto":
        return run.child_runs
    trials = run.trials if study.space.searchable else 1
    return "inline" if study.n_jobs == 1 and trials <= INLINE_TRIALS else "process"


def space_suffix(entry: ModelEntry, space: SearchSpace) -> str:
    """``-s1a2b3c``, the default study name's mark of a space that differs from the model's
    own (``--set``/``--space``): a rerun with another space starts its own study instead of
    mixing trials of two spaces in one; "" when it is the model's own space."""
    own = "" if entry.space_error else entry.load_space().fingerprint()
    found = space.fingerprint()
    return "" if found == own else f"-s{found[:6]}"


def resolve_device(requested: str, entry: ModelEntry) -> str:
    """``auto`` → cuda, then mps, else cpu; only models that need torch look for a GPU."""
    requested = requested.lower()
    if requested not in DEVICES:
        raise UsageError(f"--device {requested!r} is not one of {', '.join(DEVICES)}")
    if "torch" not in entry.spec.requires or requested == "cpu":
        return "cpu"
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (requested == "cuda" and not cuda) or (requested == "mps" and not mps):
        raise UsageError(
            f"--device {requested} was asked for but torch sees no {requested.upper()} "
            "device here: use --device auto or --device cpu"
        )
    return requested
