"""The plugin registry: finds model plugins, loads them lazily and once, and indexes their models.

Plugins come from the ``mlf`` entry-point group (``MLF_LOAD_PLUGINS=a,b`` restricts which load;
an empty value loads none; ``DIST:NAME`` names one distribution's entry point, ``-NAME`` leaves
one out), from single-file plugins in a folder (``MLF_PLUGINS_DIR`` or ``--plugins-dir``), or
from :meth:`Registry.add_plugin`. A plugin that fails is recorded as a problem and every other
model keeps working. Plugins of different distributions never collide, even under one
entry-point name: pluggy knows each by its :attr:`PluginInfo.key`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy

from ..errors import MlfError, PluginError, UnknownModelError, UsageError, described, first_line
from . import hookspecs
from .contract import CORE_PARAMS, INPUTS, WINDOWS, ModelSpec, TaskInfo

ENTRY_POINT_GROUP = "mlf"
FAMILIES = ("baseline", "tree", "neural", "statistical", "other")


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin and where it came from."""

    name: str
    source: str
    """"entry point", "file" or "registered"."""
    dist: str | None = None
    version: str | None = None
    models: list[str] = field(default_factory=list)
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    """What was raised when it failed (its traceback is shown by ``--debug``)."""

    @property
    def label(self) -> str:
        where = " ".join(v for v in (self.dist, self.version) if v) or self.source
        return f"{self.name} ({where})"

    @property
    def key(self) -> str:
        """The name pluggy registers it under, unique across distributions and files:
        ``DIST:NAME`` for an entry point, the path for a file, the name otherwise."""
        if self.source == "entry point" and self.dist:
            return f"{dist_key(self.dist)}:{self.name}"
        if self.source == "file" and self.dist:
            return self.dist
        return self.name


@dataclass
class ModelEntry:
    """A registered model: its spec and the plugin that registered it."""

    spec: ModelSpec
    plugin: PluginInfo

    @property
    def name(self) -> str:
        return self.spec.name

    def missing(self) -> list[str]:
        """Import names in ``spec.requires`` that are not installed (nothing is imported)."""
        return [req for req in self.spec.requires if not _installed(req)]

    def install_hint(self) -> str:
        return self.spec.install or "pip install " + " ".join(self.missing())

    @cached_property
    def space_error(self) -> str | None:
        """Why the search space does not load, or None when it does."""
        try:
            self.load_space()
        except MlfError as exc:
            return str(exc)
        return None

    @property
    def status(self) -> str:
        """``ready``, or what stops the model with the command that fixes it."""
        missing = self.missing()
        if missing:
            return f"missing {', '.join(missing)}: {self.install_hint()}"
        if self.space_error:
            return f"invalid space: {self.space_error}"
        return "ready"

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def load_space(self):
        """The model's default search space (a :class:`~.search.space.SearchSpace`)."""
        from ..search.space import load_space

        return load_space(self.spec.space)

    @cached_property
    def declared_params(self) -> frozenset[str]:
        """Every parameter the model accepts: its shipped space's names, its spec's
        ``extra_params`` and, for a windows model, the core's ``window_size`` and ``scaler``."""
        shipped = self.load_space()
        core = CORE_PARAMS if self.spec.input == WINDOWS else ()
        return frozenset([*shipped.params, *shipped.fixed, *self.spec.extra_params, *core])

    def effective_space(self, space_file: Any = None, assignments: Sequence[str] = ()):
        """The space a study of this model searches: ``space_file`` (or the shipped space)
        with ``assignments`` (``--set KEY=VALUE``) applied; a name the model does not declare
        (:attr:`declared_params`) is refused with one line and the closest name."""
        from ..search.space import load_space

        space = load_space(space_file) if space_file else self.load_space()
        space.check_declared(self.declared_params, self.name)
        for assignment in assignments:
            space = space.override([assignment])
            key = str(assignment).split("=", 1)[0].strip()
            space.check_declared(self.declared_params, self.name, source=f"--set {key}")
        return space

    def factory(self) -> Callable[..., Any]:
        factory = self.spec.factory
        if callable(factory):
            return factory
        module_name, _, attr = factory.partition(":")
        try:
            module = importlib.import_module(module_name)
            obj = module
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:  # a broken model module is the plugin's fault, not the user's
            raise PluginError(
                f"model '{self.name}' of plugin {self.plugin.label}: cannot import factory "
                f"'{factory}': {described(exc)}"
            ) from exc
        return obj

    def create(self, params: Mapping[str, Any], task: TaskInfo):
        """Build a fresh model instance for ``params``."""
        return self.factory()(dict(params), task)


class Registry:
    """Loads plugins once and answers which models exist."""

    def __init__(
        self,
        *,
        entry_points: bool = True,
        only: Iterable[str] | None = None,
        plugins_dir: str | Path | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self._use_entry_points = entry_points
        self._selection = None if only is None else [n.strip() for n in only if n.strip()]
        chosen = set(self._selection or ())
        self._skip = {plugin_key(n[1:]) for n in chosen if n.startswith("-")}
        wanted = {plugin_key(n) for n in chosen if not n.startswith("-")}
        self._only = None if only is None or (self._skip and not wanted) else wanted
        self._plugins_dir = Path(plugins_dir) if plugins_dir else None
        self._pending: list[tuple[object, PluginInfo]] = []
        self._loaded = False
        self.plugins: list[PluginInfo] = []
        self._models: dict[str, ModelEntry] = {}
        self._duplicates: dict[str, list[PluginInfo]] = {}

    def settings(self) -> dict[str, Any]:
        """The keyword arguments that build this registry again (in a worker process);
        plugins added by hand (:meth:`add_plugin`) are not part of them."""
        return {
            "entry_points": self._use_entry_points,
            "only": self._selection,
            "plugins_dir": None if self._plugins_dir is None else str(self._plugins_dir),
        }

    # ---- loading -------------------------------------------------------------------------
    def add_plugin(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object (a module or any object with hookimpls) by hand."""
        info = PluginInfo(
            name=name or getattr(plugin, "__name__", repr(plugin)), source="registered"
        )
        if self._loaded:
            self._register(plugin, info)
        else:
            self._pending.append((plugin, info))

    def load(self) -> Registry:
        """Load every plugin (once) and collect their models."""
        if self._loaded:
            return self
        self._loaded = True
        if self._use_entry_points:
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                dist = getattr(ep, "dist", None)
                if not self.selected(ep.name, dist.metadata["Name"] if dist else None):
                    continue
                info = PluginInfo(
                    name=ep.name,
                    source="entry point",
                    dist=dist.metadata["Name"] if dist else None,
                    version=dist.version if dist else None,
                )
                try:
                    plugin = ep.load()
                except Exception as exc:
                    self._fail(info, f"failed to import {ep.value}: {described(exc)}", exc)
                    continue
                self._register(plugin, info)
        if self._plugins_dir is not None:
            self._load_dir(self._plugins_dir)
        for plugin, info in self._pending:
            self._register(plugin, info)
        self._pending.clear()
        return self

    def selected(self, name: str, dist: str | None) -> bool:
        """Whether ``MLF_LOAD_PLUGINS`` lets entry point ``name`` of ``dist`` load."""
        keys = {name} | ({f"{dist_key(dist)}:{name}"} if dist else set())
        if keys & self._skip:
            return False
        return self._only is None or bool(keys & self._only)

    def _load_dir(self, folder: Path) -> None:
        if not folder.is_dir():
            raise UsageError(
                f"plugins folder {folder} does not exist: pass an existing folder to "
                "--plugins-dir or MLF_PLUGINS_DIR"
            )
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            info = PluginInfo(name=path.stem, source="file", dist=str(path))
            module_name = f"mlf_local_plugin_{path.stem}"
            try:
                spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(module_name, None)
                self._fail(info, f"failed to import {path}: {described(exc)}", exc)
                continue
            self._register(module, info)

    def _fail(self, info: PluginInfo, message: str, exc: BaseException | None = None) -> None:
        info.error = message
        info.exception = exc
        self.plugins.append(info)

    def _register(self, plugin: object, info: PluginInfo) -> None:
        try:
            self.pm.register(plugin, name=info.key)
        except Exception as exc:
            self._fail(info, f"cannot register: {described(exc)}", exc)
            return
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(plugin)
            self._fail(info, f"{first_line(exc, typed=True)} (a misspelt hook name?)", exc)
            return
        self.plugins.append(info)
        impls = [i for i in self.pm.hook.register_models.get_hookimpls() if i.plugin is plugin]
        specs: list[ModelSpec] = []
        hook_args = {"register": specs.append}
        for impl in impls:
            try:
                impl.function(**{arg: hook_args[arg] for arg in impl.argnames})
            except Exception as exc:
                info.error = f"register_models failed: {described(exc)}"
                info.exception = exc
                return
        for spec in specs:
            problem = _check_spec(spec)
            if problem:
                info.error = f"invalid model spec {getattr(spec, 'name', spec)!r}: {problem}"
                continue
            self._add_model(ModelEntry(spec=spec, plugin=info))

    def _add_model(self, entry: ModelEntry) -> None:
        name = entry.name
        entry.plugin.models.append(name)
        if name in self._duplicates:
            self._duplicates[name].append(entry.plugin)
        elif name in self._models:
            first = self._models.pop(name)
            self._duplicates[name] = [first.plugin, entry.plugin]
        else:
            self._models[name] = entry

    # ---- queries -------------------------------------------------------------------------
    @property
    def models(self) -> dict[str, ModelEntry]:
        """Models by name (duplicated names excluded: see :attr:`problems`)."""
        self.load()
        return dict(sorted(self._models.items()))

    @property
    def exceptions(self) -> list[BaseException]:
        """What the broken plugins raised, for ``--debug`` to show their tracebacks."""
        self.load()
        return [p.exception for p in self.plugins if p.exception is not None]

    @property
    def problems(self) -> list[str]:
        """One line per broken plugin or duplicated model name."""
        self.load()
        lines = [f"plugin {p.label}: {p.error}" for p in self.plugins if p.error]
        for name, owners in self._duplicates.items():
            lines.append(_duplicate_message(name, owners))
        return lines

    def get(self, name: str) -> ModelEntry:
        """The model called ``name``; a clear error naming close matches otherwise."""
        self.load()
        if name in self._models:
            return self._models[name]
        if name in self._duplicates:
            raise PluginError(_duplicate_message(name, self._duplicates[name]))
        failed = [p for p in self.plugins if p.error and not p.models]
        for plugin in failed:
            if plugin.name == name:
                raise PluginError(
                    f"model '{name}' is not available: plugin {plugin.label}: {plugin.error}; "
                    "fix or uninstall that plugin (see 'mlf plugins')"
                ) from plugin.exception
        known = sorted(self._models)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"installed: {', '.join(known)}"
        if failed:
            labels = ", ".join(p.label for p in failed)
            hint += f"; plugins that failed to load may provide it: {labels} (see 'mlf plugins')"
        raise UnknownModelError(
            f"unknown model '{name}': {hint} (run 'mlf list-models' to see every model)"
        )


def _duplicate_message(name: str, owners: list[PluginInfo]) -> str:
    who = " and ".join(p.label for p in owners)
    if any(p.source == "file" for p in owners):
        fix = "rename the model in one of them, or move a file out of the plugins folder"
    elif all(p.source == "entry point" for p in owners):
        dists = sorted({p.dist for p in owners if p.dist}, key=lambda d: d == "mlforecast-cli")
        leave_out = " or ".join(f"MLF_LOAD_PLUGINS=-{p.key}" for p in owners)
        fix = f"uninstall one ('pip uninstall {dists[0]}')" if dists else "uninstall one"
        fix += f" or leave one out with {leave_out}"
    else:
        fix = "uninstall one of them or choose which plugins load with MLF_LOAD_PLUGINS"
    return f"model name '{name}' is registered by {who}, so neither is used: {fix}"


def dist_key(dist: str) -> str:
    """A distribution name as pip compares it (``Mlf_Theta`` and ``mlf-theta`` are one)."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def plugin_key(selector: str) -> str:
    """An ``MLF_LOAD_PLUGINS`` entry (``NAME`` or ``DIST:NAME``) in :attr:`PluginInfo.key` form."""
    dist, sep, name = selector.rpartition(":")
    return f"{dist_key(dist)}:{name}" if sep else name


def _check_spec(spec: Any) -> str | None:
    if not isinstance(spec, ModelSpec):
        return "register() takes a mlforecast_cli.ModelSpec"
    if not spec.name or not spec.name.replace("_", "").replace("-", "").isalnum():
        return "the name must be letters, digits, '_' or '-'"
    if not (callable(spec.factory) or (isinstance(spec.factory, str) and ":" in spec.factory)):
        return "factory must be a callable or 'package.module:Class'"
    if spec.family not in FAMILIES:
        return f"family must be one of {', '.join(FAMILIES)}"
    if spec.space is None:
        return "a search space is required"
    extra = spec.extra_params
    if isinstance(extra, str) or not all(isinstance(n, str) and n for n in extra):
        return f"extra_params must be a tuple of parameter names, not {extra!r}"
    if spec.input not in INPUTS:
        return f"input must be one of {', '.join(INPUTS)}, not {spec.input!r}"
    return None


def _installed(import_name: str) -> bool:
    if import_name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(import_name) is not None
    except (ImportError, ValueError):
        return False


_default: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, configured from MLF_LOAD_PLUGINS and MLF_PLUGINS_DIR."""
    global _default
    if _default is None:
        only_env = os.environ.get("MLF_LOAD_PLUGINS")
        only = None if only_env is None else only_env.split(",")
        _default = Registry(only=only, plugins_dir=os.environ.get("MLF_PLUGINS_DIR") or None)
    return _default


def set_registry(registry: Registry | None) -> None:
    """Replace the process-wide registry (None: rebuild it from the environment on next use)."""
    global _default
    _default = registry


def get_models() -> dict[str, ModelEntry]:
    """Every usable model by name."""
    return get_registry().models


def get_model(name: str) -> ModelEntry:
    """The model called ``name``."""
    return get_registry().get(name)
