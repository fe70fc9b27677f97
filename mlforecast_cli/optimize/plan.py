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
    from ..trials.optuna_study import StudyConfig

CHILD_RUNS = ("process", "inline")
CHILD_RUNS_ENV = "MLF_CHILD_RUNS"
"""``inline``: write MLflow child runs in the trial's process instead of a writer process."""
PLOTS_ENV = "MLF_PLOTS"
"""``0``: draw and log no study plots (tests that do not look at them)."""


def _child_runs_default() -> str:
    return os.environ.get(CHILD_RUNS_ENV) or "process"


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
    """``process`` (a writer process) or ``inline``; default from ``MLF_CHILD_RUNS``."""
    draw_plots: bool = field(default_factory=_plots_default)
    """Draw and log the study plots; ``MLF_PLOTS=0`` turns them off."""

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


def plan_study(
    entry: ModelEntry, config: OptimizeConfig, panel: Panel, *, several: bool = False
) -> tuple[StudyConfig, Split]:
    """Validate everything about one model's study before anything is written: its space
    (with ``--space``/``--set``/``--metric``), sampler, pruner, name and device; and split the
    panel, the one time a study does (every step of the study takes this split)."""
    from .. import __version__
    from ..data.split import split_panel
    from ..search.space import build_pruner, build_sampler, load_space
    from ..trials.fit import min_train
    from ..trials.optuna_study import StudyConfig

    settings = config.study
    space = load_space(config.space_file) if config.space_file else entry.load_space()
    if config.assignments:
        space = space.override(list(config.assignments))
    if settings.metric is not None:
        space = space.override([f"optimizer.metric={settings.metric}"])
    build_sampler(space, seed=settings.seed)
    build_pruner(space)
    metric = space.metric
    if metric == "wmae" and panel.weights is None:
        raise UsageError("--metric wmae needs a weight column: the data has none; use mae")
    split = split_panel(
        panel, settings.horizon, settings.cv_windows, min_train=min_train(entry, space)
    )
    name = settings.study_name or f"{entry.name}-{config.data_name}-h{settings.horizon}-{metric}"
    if settings.study_name and several:
        name = f"{settings.study_name}-{entry.name}"
    if settings.cv_windows > 1 and not settings.study_name:
        name += f"-cv{settings.cv_windows}"
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
