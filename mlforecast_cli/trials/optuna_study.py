"""One Optuna study of one model on one panel: what defines it, and creating or resuming it.

A study remembers what it was created for (:data:`CONFIG_ATTR`); resuming it for another
task (model, horizon, metric, folds, data or search space) is refused with a one-line error
that names what changed. (`mlf optimize` gives a study searched with ``--set``/``--space``
its own default name, so such a rerun starts a new study instead.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..search.metrics import check_metric
from ..search.space import SearchSpace, build_pruner, build_sampler
from ..services.liveness import wait_for_user_attr
from ..services.outages import storage_errors
from ..services.storage import open_storage

if TYPE_CHECKING:
    import optuna

    from ..data.panel import Panel

CONFIG_ATTR = "mlf_config"
"""Study user attribute holding what the study was created for (checked on resume)."""
SPACE_ATTR = "mlf_space"
"""Study user attribute holding the searched params and fixed values it was created with."""
CONFIG_WAIT_S = 60.0
TRIAL_STATES = ("complete", "pruned", "fail")
"""The finished states a study's trials are counted in (Optuna's names, lower case)."""


DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class StudySettings:
    """What the user sets for every study of a run (`mlf optimize`'s flags); checked when made.

    ``metric``, ``study_name`` and ``device`` are requests: None (each model's space says),
    the default name, ``auto``; :class:`StudyConfig` holds what they resolved to."""

    horizon: int
    cv_windows: int = 1
    ensemble_windows: int = 3
    """Rolling windows on which a study keeps its best configuration's forecasts for
    ensembles: the search's ``cv_windows`` and older ones fitted once more."""
    storage: str | None = None
    seed: int = 42
    n_jobs: int = 1
    device: str = "auto"
    metric: str | None = None
    study_name: str | None = None
    ape_cap: float | None = None
    """With MAPE, every study of the run selects on each point's APE capped at this percent
    (:func:`~mlforecast_cli.search.metrics.selection_score`); None (the default): on the plain
    MAPE, the metric the test reports (docs/trees.md, "one rule" for why)."""

    def __post_init__(self) -> None:
        for flag, value in (
            ("--n-jobs", self.n_jobs),
            ("--cv-windows", self.cv_windows),
            ("--ensemble-windows", self.ensemble_windows),
            ("--horizon", self.horizon),
        ):
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"{flag} {value!r} must be a whole number of at least 1")
        if self.metric is not None:
            check_metric(self.metric)
        cap = self.ape_cap
        if cap is not None and (isinstance(cap, bool) or not 0 < cap < float("inf")):
            raise UsageError(f"--ape-cap {cap!r} must be a positive number of percent (e.g. 100)")
        if self.device.lower() not in DEVICES:
            raise UsageError(f"--device {self.device!r} is not one of {', '.join(DEVICES)}")
        if self.n_jobs > 1 and self.storage in ("memory", ":memory:"):
            raise UsageError(
                f"--n-jobs {self.n_jobs} needs a study storage its processes share, and "
                "--storage memory lives in one process: leave --storage out (the journal file) "
                "or pass --n-jobs 1"
            )


@dataclass(frozen=True)
class StudyConfig:
    """Everything that defines one study of one model on one panel: the run's
    :class:`StudySettings` resolved for the model (its space, name, metric and device)."""

    model: str
    study_name: str
    space: SearchSpace
    settings: StudySettings
    device: str = "cpu"
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Free-form facts to keep with the study (data source, command line...)."""

    @classmethod
    def of(cls, model: str, study_name: str, space: SearchSpace, **settings: Any) -> StudyConfig:
        """A study config from flat settings (``horizon=``, ``metric=``, ``device=``...): the
        way a library user or a test writes one. ``metric`` overrides the space's."""
        device = settings.pop("device", "cpu")
        extra = settings.pop("extra", {})
        metric = settings.pop("metric", None)
        if metric is not None and metric != space.metric:
            space = space.override([f"optimizer.metric={metric}"])
        return cls(model, study_name, space, StudySettings(**settings), device, extra)

    @property
    def metric(self) -> str:
        return self.space.metric

    @property
    def horizon(self) -> int:
        return self.settings.horizon

    @property
    def cv_windows(self) -> int:
        return self.settings.cv_windows

    @property
    def ensemble_windows(self) -> int:
        return self.settings.ensemble_windows

    @property
    def storage(self) -> str | None:
        return self.settings.storage

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def n_jobs(self) -> int:
        return self.settings.n_jobs

    @property
    def ape_cap(self) -> float | None:
        return self.settings.ape_cap

    def with_seed(self, seed: int) -> StudyConfig:
        """The same study with another sampler seed (each worker process has its own)."""
        return replace(self, settings=replace(self.settings, seed=seed))

    def identity(self, fingerprint: str) -> dict[str, Any]:
        """What must not change when a study is resumed."""
        return {
            "model": self.model,
            "horizon": self.horizon,
            "metric": self.metric,
            "cv_windows": self.cv_windows,
            "ape_cap": self.ape_cap if self.metric == "mape" else None,
            "data_fingerprint": fingerprint,
            "space": self.space.fingerprint(),
        }


def create_study(config: StudyConfig, panel: Panel) -> tuple[optuna.Study, bool]:
    """Create or resume the study named in ``config`` (refusing one made for another task).

    Returns ``(study, created)``; ``created`` is True for exactly one of several workers
    that start the same new study at once (the storage makes creation atomic).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures are tracked, not printed
    storage = open_storage(config.storage)
    with storage_errors(config.storage):  # lost between opening it and here
        return _create_or_resume(config, panel, storage)


def _create_or_resume(config: StudyConfig, panel: Panel, storage) -> tuple[optuna.Study, bool]:
    import optuna
    from optuna.exceptions import DuplicatedStudyError

    sampler = build_sampler(config.space, seed=config.seed)
    pruner = build_pruner(config.space)
    direction = config.space.optimizer.get("direction", "minimize")
    identity = config.identity(panel.fingerprint())
    try:
        study = optuna.create_study(
            study_name=config.study_name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            direction=direction,
        )
    except DuplicatedStudyError:
        study = optuna.load_study(
            study_name=config.study_name, storage=storage, sampler=sampler, pruner=pruner
        )
    else:
        first = config.space.first_trial()
        if first:  # before anyone asks for a trial: the search starts from this configuration
            study.enqueue_trial(first, skip_if_exists=True)
        study.set_user_attr(CONFIG_ATTR, identity)
        study.set_user_attr(SPACE_ATTR, space_summary(config.space))
        for key, value in config.extra.items():
            study.set_user_attr(key, jsonable(value))
        return study, True
    stored = wait_for_user_attr(study, CONFIG_ATTR, CONFIG_WAIT_S)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, identity)
        return study, False
    # a study made before the space was part of its identity is resumed whatever its space
    changed = [
        k for k in identity if stored.get(k, identity[k] if k == "space" else None) != identity[k]
    ]
    if changed:
        what = ", ".join(
            space_change(study, config.space)
            if k == "space"
            else f"{k} {stored.get(k)!r} → {identity[k]!r}"
            for k in changed
        )
        raise UsageError(
            f"study '{config.study_name}' was created for another task ({what}): "
            "pass a new --study-name, or the original settings to resume it"
        )
    return study, False


def space_summary(space: SearchSpace) -> dict[str, Any]:
    """Each searched param's spec and each fixed value, as the study keeps them."""
    data = space.to_dict()
    return jsonable({"params": data["params"], "fixed": data["fixed"]})


def space_change(study, space: SearchSpace) -> str:
    """``search space: changed num_leaves; added max_depth``: how ``space`` differs from the
    one ``study`` was created with (a param made fixed, or fixed made searched, is changed)."""

    def flat(summary: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **{k: ("searched", v) for k, v in (summary.get("params") or {}).items()},
            **{k: ("fixed", v) for k, v in (summary.get("fixed") or {}).items()},
        }

    old = flat(study.user_attrs.get(SPACE_ATTR) or {})
    new = flat(space_summary(space))
    parts = [
        f"{label} {', '.join(names)}"
        for label, names in (
            ("changed", [k for k in new if k in old and old[k] != new[k]]),
            ("added", [k for k in new if k not in old]),
            ("removed", [k for k in old if k not in new]),
        )
        if names
    ]
    return "search space: " + ("; ".join(parts) or "changed")


def state_counts(study) -> dict[str, int]:
    """How many of the study's trials are complete, pruned and failed."""
    counts = dict.fromkeys(TRIAL_STATES, 0)
    for trial in study.get_trials(deepcopy=False):
        key = trial.state.name.lower()
        if key in counts:
            counts[key] += 1
    return counts


@dataclass
class FailureReason:
    """The study's failed trials that failed for one reason."""

    reason: str
    trials: list[int]
    traceback: str | None = None
    """The first of those trials' traceback (None: it raised nothing, or a worker died)."""

    @property
    def count(self) -> int:
        return len(self.trials)


NO_REASON = "no reason recorded"


def failure_reasons(study) -> list[FailureReason]:
    """The study's failed trials grouped by reason (the ``error`` user attribute), most
    frequent first."""
    groups: dict[str, FailureReason] = {}
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name != "FAIL":
            continue
        reason = str(trial.user_attrs.get("error") or NO_REASON)
        group = groups.setdefault(reason, FailureReason(reason, []))
        group.trials.append(trial.number)
        if group.traceback is None:
            group.traceback = trial.user_attrs.get("traceback")
    return sorted(groups.values(), key=lambda g: (-g.count, g.trials[0]))


def failures_text(failures: list[FailureReason]) -> str:
    """``7 failed: <reason> (5); <reason> (2)``."""
    total = sum(f.count for f in failures)
    return f"{total} failed: " + "; ".join(f"{f.reason} ({f.count})" for f in failures)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars made plain and tuples made lists (Optuna stores JSON)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    return value
