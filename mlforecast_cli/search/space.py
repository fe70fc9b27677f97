"""Search spaces: YAML files in Optuna's distribution vocabulary, validated and overridable.

A space file holds ``params`` (searched, ``{type: int|float|categorical, low, high, step,
log, choices, history_share}``), ``fixed`` (passed to the model as is), an optional
``optimizer`` block (metric, direction, sampler, pruner, ``first_trial``: param values the
study tries first) and an optional ``description``. Every invalid space
raises :class:`~mlforecast_cli.errors.SpaceError` with a one-line message naming the file,
the key, the fault and the fix.

Optuna is imported only inside the functions that build Optuna objects.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import importlib.resources
import inspect
import math
import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from mlforecast_cli.errors import SpaceError
from mlforecast_cli.search.metrics import DEFAULT_METRIC, METRIC_NAMES

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler
    from optuna.trial import BaseTrial

__all__ = [
    "DEFAULT_OPTIMIZER",
    "METRIC_NAMES",
    "Param",
    "SearchSpace",
    "build_pruner",
    "build_sampler",
    "did_you_mean",
    "load_space",
    "parse_space",
]

DIRECTIONS = ("minimize", "maximize")
DEFAULT_OPTIMIZER: dict[str, Any] = {
    "metric": DEFAULT_METRIC,
    "direction": "minimize",
    "sampler": {"type": "TPESampler", "n_startup_trials": 10, "seed": 42},
    "pruner": {"type": "MedianPruner", "n_startup_trials": 5, "n_warmup_steps": 10},
}

PARAM_TYPES = ("int", "float", "categorical")
TOP_LEVEL_KEYS = ("params", "fixed", "optimizer", "description")
OPTIMIZER_KEYS = ("metric", "direction", "sampler", "pruner", "first_trial")
_NUMERIC_KEYS = ("low", "high", "step", "log", "history_share")
_PARAM_KEYS = ("type", "low", "high", "step", "log", "choices", "history_share")
_RANGE = re.compile(r"^\s*(\S+?)\s*\.\.\s*(\S+?)\s*$")


# --------------------------------------------------------------------------- messages


def _fail(source: str, key: str, fault: str) -> NoReturn:
    """Raise a one-line SpaceError: ``SOURCE: KEY: FAULT``."""
    message = f"{source}: {key}: {fault}" if key else f"{source}: {fault}"
    raise SpaceError(message.replace("\r", " ").replace("\n", " "))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(word: str, options: Sequence[str]) -> str:
    """``"did you mean 'x'? "`` for the closest option, or ``""``."""
    close = difflib.get_close_matches(str(word).lower(), [o.lower() for o in options], 1, 0.6)
    if not close:
        return ""
    match = next(o for o in options if o.lower() == close[0])
    return f"did you mean '{match}'? "


def _type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


# --------------------------------------------------------------------------- numbers


def _parse_number(text: str) -> int | float | None:
    """A number-like string (``"1e-3"``, ``"10"``) as a number; None if it is not one."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _number(value: Any, source: str, key: str, *, integer: bool) -> int | float:
    """Validate a numeric field (low/high/step); int for int params, float otherwise."""
    if isinstance(value, bool):
        _fail(source, key, f"is a bool ({str(value).lower()}), not a number; write a number")
    if isinstance(value, str):
        parsed = _parse_number(value)
        if parsed is None:
            _fail(source, key, f"expected a number, got the string {_short(value)}")
        value = parsed
    if not isinstance(value, int | float):
        _fail(source, key, f"expected a number, got a {_type_name(value)} {_short(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        _fail(source, key, f"must be a finite number, got {value}")
    if not integer:
        return float(value)
    if isinstance(value, float):
        if not value.is_integer():
            _fail(
                source,
                key,
                f"{value} is not a whole number but the param has type: int; "
                "use whole numbers or type: float",
            )
        return int(value)
    return value


EXHAUSTIVE_MAX = 32
"""The most configurations a finite space may hold to be searched exhaustively."""


# --------------------------------------------------------------------------- Param


@dataclass(frozen=True)
class Param:
    """One searched parameter, in Optuna's vocabulary."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple | None = None
    history_share: float | None = None
    """``high`` is at most this share of the panel's median history before validation
    (:meth:`SearchSpace.fitted_to_history`): a window no longer than the data it reads."""

    def distribution(self) -> BaseDistribution:
        """The matching ``optuna.distributions`` object."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.type == "int":
            step = 1 if self.step is None else int(self.step)
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=step)
        if self.type == "float":
            step = None if self.step is None else float(self.step)
            return FloatDistribution(float(self.low), float(self.high), log=self.log, step=step)
        return CategoricalDistribution(list(self.choices or ()))

    def suggest(self, trial: BaseTrial) -> Any:
        """Ask ``trial`` for a value via the matching ``trial.suggest_*`` method."""
        if self.type == "int":
            step = 1 if self.step is None else int(self.step)
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.log
            )
        if self.type == "float":
            step = None if self.step is None else float(self.step)
            return trial.suggest_float(
                self.name, float(self.low), float(self.high), step=step, log=self.log
            )
        return trial.suggest_categorical(self.name, list(self.choices or ()))

    def count(self) -> int | None:
        """How many values this param can take; None for a continuous range."""
        if self.type == "categorical":
            return len(self.choices or ())
        if self.type == "int":
            step = 1 if self.step is None else int(self.step)
            return (int(self.high) - int(self.low)) // step + 1
        if self.step is None:
            return None
        return int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1

    def values(self) -> tuple | None:
        """Every value this param can take, in order; None for a continuous range."""
        count = self.count()
        if count is None:
            return None
        if self.type == "categorical":
            return tuple(self.choices or ())
        if self.type == "int":
            step = 1 if self.step is None else int(self.step)
            return tuple(int(self.low) + i * step for i in range(count))
        step = Decimal(str(self.step))
        return tuple(float(Decimal(str(self.low)) + i * step) for i in range(count))

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this param can take."""
        if self.type == "categorical":
            return any(type(value) is type(c) and value == c for c in self.choices or ())
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return self.low <= value <= self.high and (self.type == "float" or value == int(value))

    def to_dict(self) -> dict[str, Any]:
        """The YAML spec of this param (``step`` and ``log`` only when set)."""
        if self.type == "categorical":
            return {"type": "categorical", "choices": list(self.choices or ())}
        spec: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high}
        if self.step is not None:
            spec["step"] = self.step
        if self.log:
            spec["log"] = True
        if self.history_share is not None:
            spec["history_share"] = self.history_share
        return spec

    def fitted_to_history(self, points: float) -> Param:
        """This param with ``high`` lowered to ``history_share`` of ``points`` (a whole step
        above ``low``, never under it); itself when it has no share or the range fits."""
        if self.history_share is None:
            return self
        cap = self.history_share * points
        if cap >= self.high:
            return self
        step = self.step or (1 if self.type == "int" else None)
        if step is None:
            return replace(self, high=max(self.low, cap))
        steps = max(0, math.floor((cap - self.low) / step + 1e-9))
        high = self.low + steps * step
        return replace(self, high=int(high) if self.type == "int" else high)


def _parse_param(name: str, spec: Any, source: str) -> Param:
    where = f"params.{name}"
    if not isinstance(spec, Mapping):
        _fail(
            source,
            where,
            f"expected a mapping like {{type: float, low: 0.01, high: 0.3}}, "
            f"got a {_type_name(spec)} {_short(spec)}; to pass a constant, put it under fixed:",
        )
    for key in spec:
        if key not in _PARAM_KEYS:
            _fail(
                source,
                f"{where}.{key}",
                f"unknown key; {did_you_mean(str(key), _PARAM_KEYS)}"
                f"valid keys: {', '.join(_PARAM_KEYS)}",
            )
    if "type" not in spec:
        _fail(
            source,
            f"{where}.type",
            f"missing; add type: one of {', '.join(PARAM_TYPES)} (e.g. type: float)",
        )
    ptype = spec["type"]
    if ptype not in PARAM_TYPES:
        _fail(
            source,
            f"{where}.type",
            f"unknown type {_short(ptype)}; {did_you_mean(str(ptype), PARAM_TYPES)}"
            f"use one of {', '.join(PARAM_TYPES)}",
        )
    if ptype == "categorical":
        return _parse_categorical(name, spec, source)
    return _parse_numeric(name, ptype, spec, source)


def _parse_categorical(name: str, spec: Mapping, source: str) -> Param:
    where = f"params.{name}"
    for key in _NUMERIC_KEYS:
        if key in spec:
            _fail(
                source,
                f"{where}.{key}",
                f"'{key}' applies to type: int or float, not categorical; remove it",
            )
    if "choices" not in spec:
        _fail(source, f"{where}.choices", "missing; a categorical param needs choices: [a, b]")
    choices = spec["choices"]
    if not isinstance(choices, list | tuple):
        _fail(
            source,
            f"{where}.choices",
            f"expected a list like [a, b], got a {_type_name(choices)} {_short(choices)}",
        )
    if not choices:
        _fail(source, f"{where}.choices", "is empty; give at least one value, e.g. [a, b]")
    seen: list[Any] = []
    for index, choice in enumerate(choices):
        if choice is not None and not isinstance(choice, bool | int | float | str):
            _fail(
                source,
                f"{where}.choices[{index}]",
                f"{_short(choice)} is a {_type_name(choice)}; Optuna choices must be "
                "scalars (null, bool, int, float or string); put structured values under "
                "fixed: and choose among their names",
            )
        if isinstance(choice, float) and math.isnan(choice):
            _fail(source, f"{where}.choices[{index}]", "NaN cannot be a choice; remove it")
        if choice in seen:
            _fail(
                source,
                f"{where}.choices[{index}]",
                f"{_short(choice)} repeats an earlier choice; list each value once",
            )
        seen.append(choice)
    return Param(name=name, type="categorical", choices=tuple(choices))


def _parse_numeric(name: str, ptype: str, spec: Mapping, source: str) -> Param:
    where = f"params.{name}"
    integer = ptype == "int"
    if "choices" in spec:
        _fail(
            source,
            f"{where}.choices",
            f"'choices' applies to type: categorical, not {ptype}; remove it or "
            "use type: categorical",
        )
    for key in ("low", "high"):
        if key not in spec or spec[key] is None:
            _fail(source, f"{where}.{key}", f"missing; a type: {ptype} param needs low and high")
    low = _number(spec["low"], source, f"{where}.low", integer=integer)
    high = _number(spec["high"], source, f"{where}.high", integer=integer)
    if low > high:
        _fail(source, where, f"low {low} is greater than high {high}; swap them")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        _fail(source, f"{where}.log", f"expected true or false, got {_short(log)}")
    step = spec.get("step")
    if step is not None:
        step = _number(step, source, f"{where}.step", integer=integer)
        if step <= 0:
            _fail(source, f"{where}.step", f"must be greater than 0, got {step}")
    if log:
        if low <= 0:
            _fail(
                source,
                f"{where}.low",
                f"is {low} but log: true needs low > 0; raise low or remove log",
            )
        if step is not None and not (integer and step == 1):
            _fail(
                source,
                f"{where}.step",
                "cannot be combined with log: true (Optuna forbids it); remove step or log",
            )
    if step is not None:
        span, unit = Decimal(str(high)) - Decimal(str(low)), Decimal(str(step))
        if span % unit != 0:
            nearest = Decimal(str(low)) + (span // unit) * unit
            other = nearest + unit
            high_d = Decimal(str(high))
            if other - high_d < high_d - nearest:
                nearest, other = other, nearest
            fmt = (lambda d: str(int(d))) if integer else (lambda d: repr(float(d)))
            _fail(
                source,
                f"{where}.step",
                f"high - low = {fmt(span)} is not a multiple of step {fmt(unit)}; "
                f"the nearest valid high is {fmt(nearest)} (or {fmt(other)})",
            )
    share = spec.get("history_share")
    if share is not None:
        ok = isinstance(share, int | float) and not isinstance(share, bool) and 0 < share <= 1
        if not ok:
            _fail(
                source,
                f"{where}.history_share",
                f"expected a share between 0 and 1 of the median series' history (e.g. 0.5), "
                f"got {_short(share)}",
            )
        share = float(share)
    return Param(name=name, type=ptype, low=low, high=high, step=step, log=log, history_share=share)


# --------------------------------------------------------------------------- SearchSpace


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: searched ``params``, ``fixed`` values, ``optimizer`` block."""

    params: Mapping[str, Param]
    fixed: Mapping[str, Any]
    optimizer: Mapping[str, Any]
    source: str
    description: str = field(default="")

    @property
    def metric(self) -> str:
        """The metric the study optimises (one of :data:`METRIC_NAMES`)."""
        return self.optimizer["metric"]

    @property
    def direction(self) -> str:
        """``"minimize"`` or ``"maximize"``."""
        return self.optimizer["direction"]

    @property
    def n_params(self) -> int:
        """How many parameters are searched."""
        return len(self.params)

    @property
    def searchable(self) -> bool:
        """False when nothing is searched: every trial would run the same configuration."""
        return bool(self.params)

    @property
    def size(self) -> int | None:
        """How many configurations the space holds; None when a range is continuous."""
        counts = [param.count() for param in self.params.values()]
        return None if None in counts else math.prod(counts)

    @property
    def searched_exhaustively(self) -> bool:
        """Whether each configuration is tried once (see :meth:`exhaustive`)."""
        return self.size is not None and self.optimizer["sampler"].get("type") in (
            "BruteForceSampler",
            "BruteForce",
        )

    def exhaustive(self, trials: int) -> SearchSpace:
        """This space searched by trying each configuration once, in a seeded random order
        (Optuna's ``BruteForceSampler``, which stops the study when none is left), when it
        holds at most ``trials`` and at most :data:`EXHAUSTIVE_MAX` of them and its sampler is
        the default TPE, which repeats configurations of a small finite space (theta's 10 ran
        255 trials in a timed run). A larger space keeps TPE, whose model of the space pays
        when only part of it can be tried. Otherwise the space itself."""
        size = self.size
        sampler = dict(self.optimizer["sampler"])
        if size is None or size > min(trials, EXHAUSTIVE_MAX):
            return self
        if sampler.get("type") not in ("TPESampler", "TPE"):
            return self
        exhaustive = {"type": "BruteForceSampler", "seed": sampler.get("seed")}
        return replace(self, optimizer={**self.optimizer, "sampler": exhaustive})

    def fitted_to_history(self, points: float) -> SearchSpace:
        """This space with each ``history_share`` range's ``high`` lowered to that share of
        ``points``, the panel's median history before validation (:meth:`Param.fitted_to_history`):
        on short series a long window reads mostly padding, and 20 trials spread over it
        search less of what the data can hold (docs/trees.md, "Windows no longer than the
        history")."""
        params = {name: p.fitted_to_history(points) for name, p in self.params.items()}
        if params == dict(self.params):
            return self
        return replace(self, params=params)

    def distributions(self) -> dict[str, BaseDistribution]:
        """Each searched param as an Optuna distribution."""
        return {name: param.distribution() for name, param in self.params.items()}

    def first_trial(self) -> dict[str, Any]:
        """The values ``optimizer.first_trial`` asks to try first, for the params still searched
        whose range holds them (an override can take a param out of the search)."""
        wanted = self.optimizer.get("first_trial") or {}
        return {k: v for k, v in wanted.items() if k in self.params and self.params[k].contains(v)}

    def suggest(self, trial: BaseTrial) -> dict[str, Any]:
        """Suggest every searched param on ``trial``; returns them merged with the fixed values."""
        values = {name: param.suggest(trial) for name, param in self.params.items()}
        values.update(copy.deepcopy(dict(self.fixed)))
        return values

    def check_declared(self, declared: Collection[str], model: str, source: str = "") -> None:
        """Raise a one-line SpaceError for the first name under ``params``, ``fixed`` or
        ``optimizer.first_trial`` that is not in ``declared`` (what ``model`` accepts), with
        the closest declared name; ``source`` names where it came from (default the file)."""
        first = self.optimizer.get("first_trial") or {}
        names = [
            *((f"params.{k}", k) for k in self.params),
            *((f"fixed.{k}", k) for k in self.fixed),
            *((f"optimizer.first_trial.{k}", k) for k in first),
        ]
        for where, name in names:
            if name not in declared:
                known = sorted(declared)
                _fail(
                    source or self.source,
                    "" if source else where,
                    f"model '{model}' has no parameter {name!r}; {did_you_mean(name, known)}"
                    f"its parameters: {', '.join(known)} (see mlf show-space {model})",
                )

    def to_dict(self) -> dict[str, Any]:
        """The effective space as plain data (a fresh copy): ``parse_space`` reads it back."""
        data: dict[str, Any] = {}
        if self.description:
            data["description"] = self.description
        data["params"] = {name: param.to_dict() for name, param in self.params.items()}
        data["fixed"] = copy.deepcopy(dict(self.fixed))
        data["optimizer"] = copy.deepcopy(dict(self.optimizer))
        return data

    def fingerprint(self) -> str:
        """A short hash of what a trial of this space means (searched params and fixed
        values; not the optimizer block): two spaces with the same fingerprint search the same."""
        import hashlib
        import json

        data = {k: v for k, v in self.to_dict().items() if k in ("params", "fixed")}
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:8]

    def to_yaml(self) -> str:
        """The effective space as YAML, ready to save and pass back with ``--space``."""
        data = self.to_dict()
        data["params"] = {name: _Flow(spec) for name, spec in data["params"].items()}
        optimizer = data["optimizer"]
        for key in ("sampler", "pruner"):
            if isinstance(optimizer.get(key), dict):
                optimizer[key] = _Flow(optimizer[key])
        source = " ".join(self.source.splitlines())
        header = f"# search space (from {source}); edit and pass back with --space FILE\n"
        options = {"Dumper": _Dumper, "sort_keys": False, "default_flow_style": None}
        text = yaml.dump(data, allow_unicode=True, width=100, **options)
        if any(char in text for char in "\x85\u2028\u2029"):
            # PyYAML writes these line breaks raw with allow_unicode and misreads them back
            text = yaml.dump(data, allow_unicode=False, width=100, **options)
        return header + text

    def override(self, assignments: Sequence[str], source: str = "--set") -> SearchSpace:
        """Apply ``KEY=VALUE`` assignments (the CLI's ``--set``) and re-validate.

        The value is YAML. For a searched param: a scalar fixes it, ``low..high`` changes the
        range, a list makes it categorical, a mapping with ``type`` replaces its spec and one
        without updates it. For a fixed (or new) key: ``low..high`` or a mapping with ``type``
        searches it, a list searches it unless the current value is a list, anything else
        replaces it. Dotted keys set into the file's structure (``optimizer.metric=mae``,
        ``optimizer.pruner.n_warmup_steps=3``, ``params.lr.high=0.5``).
        """
        if isinstance(assignments, str):
            assignments = [assignments]
        space = self
        for assignment in assignments:
            space = space._apply(assignment, source)
        return space

    def _apply(self, assignment: str, source: str) -> SearchSpace:
        text = str(assignment)
        if "=" not in text:
            _fail(
                f"{source} {text!r}",
                "",
                "missing '='; write KEY=VALUE, e.g. window_size=10..20 or optimizer.metric=mae",
            )
        key, raw = (part.strip() for part in text.split("=", 1))
        if not key:
            _fail(f"{source} {text!r}", "", "empty key; write KEY=VALUE, e.g. window_size=10")
        label = f"{source} {key}"
        data = self.to_dict()
        params, fixed = data["params"], data["fixed"]
        if key not in params and key not in fixed and ("." in key or key in TOP_LEVEL_KEYS):
            _override_path(data, key, _load_value(raw, label), label)
        else:
            bounds = _parse_range(raw)
            value = None if bounds else _load_value(raw, label)
            assignment = _Assignment(key, raw, bounds, value, label)
            if key in params:
                _override_param(params, fixed, assignment)
            else:
                _override_fixed(params, fixed, key, bounds, value)
        result = parse_space(data, label)
        if key.split(".")[0] == "optimizer":
            build_sampler(result)
            build_pruner(result)
        return replace(result, source=self.source)


class _Flow(dict):
    """A mapping dumped in YAML flow style (``{type: int, low: 1, high: 9}``)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Flow,
    lambda dumper, data: dumper.represent_mapping(
        "tag:yaml.org,2002:map", list(data.items()), flow_style=True
    ),
)


# --------------------------------------------------------------------------- overrides


def _parse_range(raw: str) -> tuple[int | float, int | float] | None:
    """``"10..20"`` / ``"1e-3..1e-1"`` as two numbers; None if ``raw`` is not a range."""
    match = _RANGE.match(raw)
    if not match:
        return None
    low, high = _parse_number(match.group(1)), _parse_number(match.group(2))
    if low is None or high is None:
        return None
    return low, high


def _load_value(raw: str, label: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        _fail(label, "", f"the value {raw!r} is not valid YAML ({problem}); quote it")


@dataclass(frozen=True)
class _Assignment:
    """One ``KEY=VALUE`` of ``--set``: the raw text, read as a range or as YAML."""

    key: str
    raw: str
    bounds: tuple | None
    """``(low, high)`` when the value is ``LOW..HIGH``."""
    value: Any
    """The value read as YAML (None for a range)."""
    label: str
    """Where it came from, for messages (``--set KEY``)."""


def _override_param(params: dict, fixed: dict, assignment: _Assignment) -> None:
    """Apply ``assignment`` to the searched param it names (see :meth:`SearchSpace.override`)."""
    key, raw, bounds, value, label = (
        assignment.key,
        assignment.raw,
        assignment.bounds,
        assignment.value,
        assignment.label,
    )
    spec = params[key]
    if bounds is not None:
        if spec["type"] == "categorical":
            _fail(
                label,
                f"params.{key}",
                f"is categorical, so low..high does not apply; give a list, e.g. {key}=[a, b]",
            )
        spec["low"], spec["high"] = bounds
        spec.pop("history_share", None)  # the user's range is searched as given
    elif isinstance(value, list | tuple):
        params[key] = {"type": "categorical", "choices": list(value)}
    elif isinstance(value, Mapping):
        params[key] = dict(value) if "type" in value else {**spec, **value}
    else:
        del params[key]
        fixed[key] = _fixed_value(spec["type"], key, raw, value, label)


def _fixed_value(ptype: str, key: str, raw: str, value: Any, label: str) -> Any:
    """A scalar fixing a searched param; must be a number for int/float params."""
    if ptype == "categorical":
        return value
    if isinstance(value, str) and _parse_number(value) is not None:
        value = _parse_number(value)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and isinstance(value, float):
        ok = math.isfinite(value) and (ptype == "float" or value.is_integer())
    if not ok:
        example = "10" if ptype == "int" else "0.05"
        _fail(
            label,
            f"params.{key}",
            f"is a type: {ptype} param, so fixing it needs a {'whole ' * (ptype == 'int')}"
            f"number, got {raw!r}; e.g. {key}={example}, or {key}=LOW..HIGH for a new range",
        )
    return int(value) if ptype == "int" else float(value)


def _override_fixed(params: dict, fixed: dict, key: str, bounds: tuple | None, value: Any) -> None:
    current = fixed.get(key)
    if bounds is not None:
        kind = "int" if all(isinstance(b, int) for b in bounds) else "float"
        fixed.pop(key, None)
        params[key] = {"type": kind, "low": bounds[0], "high": bounds[1]}
    elif isinstance(value, Mapping) and "type" in value:
        fixed.pop(key, None)
        params[key] = dict(value)
    elif isinstance(value, list | tuple) and key in fixed and not isinstance(current, list):
        del fixed[key]
        params[key] = {"type": "categorical", "choices": list(value)}
    else:
        fixed[key] = value


def _override_path(data: dict, key: str, value: Any, label: str) -> None:
    parts = key.split(".")
    if parts[0] not in TOP_LEVEL_KEYS or not all(parts):
        _fail(
            label,
            key,
            "unknown dotted key; dotted keys set into the optimizer block "
            "(e.g. optimizer.metric=mae, optimizer.pruner.n_warmup_steps=3); "
            "a model parameter is set without dots",
        )
    is_block = parts[0] == "optimizer" and len(parts) == 2 and parts[1] in ("sampler", "pruner")
    if is_block and isinstance(value, str):
        value = {"type": value}
    if parts[0] == "optimizer" and len(parts) == 3 and parts[1] in ("sampler", "pruner"):
        block = data["optimizer"].get(parts[1])
        if parts[2] == "type" and isinstance(block, dict) and block.get("type") != value:
            kept = {"seed": block["seed"]} if "seed" in block and parts[1] == "sampler" else {}
            data["optimizer"][parts[1]] = {"type": value, **kept}
            return
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            _fail(
                label,
                ".".join(parts[: depth + 1]),
                f"is a {_type_name(node)}, not a mapping, so {key} cannot be set inside it",
            )
    node[parts[-1]] = value


# --------------------------------------------------------------------------- parsing


def parse_space(data: Any, source: str) -> SearchSpace:
    """Validate loaded YAML ``data`` into a :class:`SearchSpace`; ``source`` names it in errors."""
    source = str(source)
    if data is None:
        _fail(source, "", "the space is empty; it needs at least params: or fixed:")
    if not isinstance(data, Mapping):
        _fail(
            source,
            "",
            f"expected a mapping with params:, fixed:, optimizer:, got a {_type_name(data)}",
        )
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            hint = did_you_mean(str(key), TOP_LEVEL_KEYS) or (
                "model parameters go under params: (searched) or fixed: (constant); "
            )
            _fail(
                source,
                str(key),
                f"unknown top-level key; {hint}valid keys: {', '.join(TOP_LEVEL_KEYS)}",
            )
    description = data.get("description") or ""
    if not isinstance(description, str):
        _fail(source, "description", f"expected a string, got a {_type_name(description)}")

    raw_params = data.get("params") or {}
    if not isinstance(raw_params, Mapping):
        _fail(
            source,
            "params",
            f"expected a mapping of name: {{type: ..., ...}}, got a {_type_name(raw_params)}",
        )
    raw_fixed = data.get("fixed") or {}
    if not isinstance(raw_fixed, Mapping):
        _fail(source, "fixed", f"expected a mapping of name: value, got a {_type_name(raw_fixed)}")

    params: dict[str, Param] = {}
    for name, spec in raw_params.items():
        _check_name(name, "params", source)
        if name == "horizon":
            _fail(
                source,
                "params.horizon",
                "the horizon is a property of the task, never searched; remove it and use "
                "--horizon",
            )
        params[name] = _parse_param(name, spec, source)
    fixed: dict[str, Any] = {}
    for name, value in raw_fixed.items():
        _check_name(name, "fixed", source)
        if name in params:
            _fail(
                source,
                f"fixed.{name}",
                f"is also under params; a value is either searched or fixed, remove "
                f"params.{name} or fixed.{name}",
            )
        fixed[name] = copy.deepcopy(value)
    optimizer = _parse_optimizer(data.get("optimizer"), source)
    return SearchSpace(params, fixed, optimizer, source, description)


def _check_name(name: Any, section: str, source: str) -> None:
    if not isinstance(name, str) or not name:
        _fail(source, f"{section}.{name}", "names must be non-empty strings; quote the key")


def _parse_optimizer(block: Any, source: str) -> dict[str, Any]:
    optimizer = copy.deepcopy(DEFAULT_OPTIMIZER)
    if block is None:
        return optimizer
    if not isinstance(block, Mapping):
        _fail(
            source,
            "optimizer",
            f"expected a mapping (metric, direction, sampler, pruner), got a {_type_name(block)}",
        )
    for key, value in block.items():
        if key == "ape_cap":
            _fail(
                source,
                "optimizer.ape_cap",
                "the MAPE cap is one rule for every model of a run, not a space's; remove it "
                "and pass mlf optimize --ape-cap PCT (default 100, 0 for the plain MAPE)",
            )
        if key not in OPTIMIZER_KEYS:
            _fail(
                source,
                f"optimizer.{key}",
                f"unknown key; {did_you_mean(str(key), OPTIMIZER_KEYS)}"
                f"valid keys: {', '.join(OPTIMIZER_KEYS)}",
            )
        optimizer[key] = copy.deepcopy(value)
    metric = optimizer["metric"]
    if not isinstance(metric, str) or metric.lower() not in METRIC_NAMES:
        _fail(
            source,
            "optimizer.metric",
            f"unknown metric {_short(metric)}; "
            f"{did_you_mean(str(metric), METRIC_NAMES)}use one of {', '.join(METRIC_NAMES)}",
        )
    optimizer["metric"] = metric.lower()
    direction = optimizer["direction"]
    if not isinstance(direction, str) or direction.lower() not in DIRECTIONS:
        _fail(
            source,
            "optimizer.direction",
            f"must be minimize or maximize, got {_short(direction)}",
        )
    optimizer["direction"] = direction.lower()
    for key, example in (("sampler", "TPESampler"), ("pruner", "MedianPruner")):
        spec = optimizer[key]
        disable = "; {type: NopPruner} disables pruning" if key == "pruner" else ""
        if not isinstance(spec, Mapping):
            _fail(
                source,
                f"optimizer.{key}",
                f"expected a mapping like {{type: {example}, ...}}, got {_short(spec)}{disable}",
            )
        if not isinstance(spec.get("type"), str) or not spec["type"]:
            _fail(
                source,
                f"optimizer.{key}.type",
                f"missing; name an Optuna {key} class, e.g. type: {example}{disable}",
            )
        for arg in spec:
            if not isinstance(arg, str):
                _fail(source, f"optimizer.{key}.{arg}", "argument names must be strings")
        optimizer[key] = dict(spec)
    first = optimizer.get("first_trial")
    if first is not None:
        if not isinstance(first, Mapping) or not all(isinstance(k, str) for k in first):
            _fail(
                source,
                "optimizer.first_trial",
                f"expected a mapping of param: value (tried first), got {_short(first)}",
            )
        optimizer["first_trial"] = dict(first)
    return optimizer


# --------------------------------------------------------------------------- loading


def load_space(ref: Any) -> SearchSpace:
    """Read and validate a space from a path, a Traversable or a ``"package:file.yaml"`` string."""
    if isinstance(ref, str) and not os.path.exists(ref):
        match = re.fullmatch(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(.+)", ref)
        if match and len(match.group(1)) > 1:
            return _load_resource(match.group(1), match.group(2), ref)
    if isinstance(ref, str | os.PathLike):
        path = Path(ref)
        source = str(ref)
        if not path.exists():
            _fail(source, "", "file not found; check the path (or give package.module:file.yaml)")
        if path.is_dir():
            _fail(source, "", "is a directory; give the path of a YAML file")
        return _parse_text(_read(path, source), source)
    if hasattr(ref, "read_text") and hasattr(ref, "is_file"):
        source = str(ref)
        if not ref.is_file():
            _fail(source, "", "resource not found; check the package and file name")
        return _parse_text(_read(ref, source), source)
    _fail(
        _short(ref),
        "",
        f"cannot load a space from a {_type_name(ref)}; give a path or package.module:file.yaml",
    )


def _load_resource(package: str, name: str, source: str) -> SearchSpace:
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        _fail(source, "", f"package {package!r} is not installed; check the name")
    except TypeError:
        _fail(source, "", f"{package!r} is not a package; name the package holding the YAML")
    resource = root.joinpath(*name.split("/"))
    if not resource.is_file():
        _fail(source, "", f"package {package!r} has no resource {name!r}; check the file name")
    return _parse_text(_read(resource, source), source)


def _read(resource: Any, source: str) -> str:
    try:
        return resource.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        _fail(source, "", "is not a UTF-8 text file; give a YAML file")
    except OSError as exc:
        _fail(source, "", f"cannot be read ({exc.strerror or exc}); check its permissions")


def _parse_text(text: str, source: str) -> SearchSpace:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        _fail(source, where, f"invalid YAML: {problem}; fix the syntax there")
    if data is None:
        _fail(source, "", "the file is empty; it needs at least params: or fixed:")
    return parse_space(data, source)


# --------------------------------------------------------------------------- Optuna objects


def build_sampler(space: SearchSpace, seed: int | None = None) -> BaseSampler:
    """The Optuna sampler of ``optimizer.sampler``; ``seed`` overrides the block's seed."""
    import optuna

    spec = dict(space.optimizer["sampler"])
    sampler_cls = _find_class(
        optuna.samplers, optuna.samplers.BaseSampler, spec, "optimizer.sampler", space
    )
    if seed is not None and "seed" in inspect.signature(sampler_cls).parameters:
        spec["seed"] = seed  # a sampler without a seed (none in Optuna today) ignores it
    return _build(optuna.samplers, optuna.samplers.BaseSampler, spec, "optimizer.sampler", space)


def build_pruner(space: SearchSpace) -> BasePruner:
    """The Optuna pruner of ``optimizer.pruner`` (``{type: NopPruner}`` disables pruning)."""
    import optuna

    spec = dict(space.optimizer["pruner"])
    return _build(optuna.pruners, optuna.pruners.BasePruner, spec, "optimizer.pruner", space)


def _find_class(module: Any, base: type, spec: Mapping, key: str, space: SearchSpace) -> type:
    """The class ``spec["type"]`` names in ``module`` (``TPE`` finds ``TPESampler`` too)."""
    classes = {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and issubclass(obj, base) and not name.startswith("Base")
    }
    kind = "sampler" if key.startswith("optimizer.sampler") else "pruner"
    name = spec.get("type")
    cls = classes.get(name) or classes.get(f"{name}{kind.capitalize()}")
    if cls is None:
        _fail(
            space.source,
            f"{key}.type",
            f"unknown {kind} {_short(name)}; {did_you_mean(str(name), sorted(classes))}"
            f"use one of {', '.join(sorted(classes))}",
        )
    return cls


def _build(module: Any, base: type, spec: dict, key: str, space: SearchSpace) -> Any:
    import warnings

    import optuna

    source = space.source
    cls = _find_class(module, base, spec, key, space)
    spec.pop("type", None)
    accepted = inspect.signature(cls).parameters
    for arg, value in list(spec.items()):
        if arg not in accepted:
            _fail(
                source,
                f"{key}.{arg}",
                f"{cls.__name__} has no argument {arg!r}; {did_you_mean(arg, list(accepted))}"
                f"its arguments: {', '.join(accepted) or 'none'}",
            )
        if arg == "wrapped_pruner" and isinstance(value, Mapping):
            spec[arg] = _build(module, base, dict(value), f"{key}.{arg}", space)
            continue
        _check_arg(accepted[arg].annotation, value, source, f"{key}.{arg}")
    for arg, parameter in accepted.items():
        required = parameter.default is inspect.Parameter.empty and parameter.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        )
        if required and arg not in spec:
            _fail(source, f"{key}.{arg}", f"missing; {cls.__name__} needs {arg}")
    try:
        with warnings.catch_warnings():  # a sampler the user chose is no experiment to them
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**spec)
    except (TypeError, ValueError) as exc:
        _fail(source, key, f"{cls.__name__} rejected its arguments: {exc}")


def _check_arg(annotation: Any, value: Any, source: str, key: str) -> None:
    """Check scalars against simple annotations (``int``, ``float | None``, ...)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    kinds = {part.strip() for part in text.split("|")}
    if not text or not kinds <= {"int", "float", "bool", "str", "None"}:
        return
    ok = (
        (value is None and "None" in kinds)
        or (isinstance(value, bool) and "bool" in kinds)
        or (
            isinstance(value, int)
            and not isinstance(value, bool)
            and bool(kinds & {"int", "float"})
        )
        or (isinstance(value, float) and "float" in kinds)
        or (isinstance(value, str) and "str" in kinds)
    )
    if not ok:
        _fail(source, key, f"expected {text}, got {_short(value)}")
