"""`mlf plugins`: every plugin, where it comes from, its models and its load errors."""

from __future__ import annotations

import os
from importlib import metadata
from typing import Any

from rich.text import Text

from ..models.registry import ENTRY_POINT_GROUP, Registry, dist_key, get_registry, plugin_key
from .options import JsonTableOpt
from .output import print_json, print_table, show_tracebacks, warning_line


def plugins(
    json_output: JsonTableOpt = False,
) -> None:
    """List the plugins, their versions, their models and load errors.

    Entry points of group 'mlf' load unless MLF_LOAD_PLUGINS=a,b names which (empty: none;
    DIST:NAME names one distribution's, -NAME leaves one out).

    Single-file plugins (*.py) load from --plugins-dir DIR or MLF_PLUGINS_DIR.
    """
    registry = get_registry()
    registry.load()
    rows = [_row(registry, info) for info in registry.plugins]
    notes = _notes(registry)
    problems = registry.problems + notes
    show_tracebacks(registry.exceptions)
    if json_output:
        print_json(
            {
                "plugins": rows,
                "problems": problems,
                "load_plugins": os.environ.get("MLF_LOAD_PLUGINS"),
                "plugins_dir": _plugins_dir(registry),
            }
        )
        return
    table, details = [], []
    for row in rows:
        models = []
        for name in row["models"]:
            status = row["model_status"][name]
            if status == "ready":
                models.append(name)
                continue
            models.append(f"{name} ({status.split(':')[0]})")
            if not status.startswith("duplicate"):  # duplicates are among the problems
                details.append(f"model {name} of plugin {row['plugin']}: {status}")
        table.append(
            {
                "plugin": row["plugin"],
                "source": row["source"],
                "distribution": " ".join(v for v in (row["distribution"], row["version"]) if v),
                "models": ", ".join(models) or "-",
                "status": Text("error: see below", style="red")
                if row["error"]
                else Text("ok", style="green"),
            }
        )
    print_table(table, ["plugin", "source", "distribution", "models", "status"])
    for problem in problems + details:
        warning_line(problem)


def _row(registry: Registry, info) -> dict[str, Any]:
    models = registry.models
    status = {}
    for name in info.models:
        entry = models.get(name)
        if entry is not None and entry.plugin is info:
            status[name] = entry.status
        else:
            status[name] = "duplicate name: see problems"
    plugin = registry.pm.get_plugin(info.key) if not info.error else None
    callers = registry.pm.get_hookcallers(plugin) if plugin is not None else None
    return {
        "plugin": info.name,
        "source": info.source,
        "distribution": info.dist,
        "version": info.version,
        "models": list(info.models),
        "model_status": status,
        "hooks": sorted(caller.name for caller in callers or ()),
        "error": info.error,
    }


def _notes(registry: Registry) -> list[str]:
    """Names in MLF_LOAD_PLUGINS that match no entry point (a typo hides a plugin)."""
    wanted = os.environ.get("MLF_LOAD_PLUGINS")
    if not wanted or not wanted.strip():
        return []
    available: set[str] = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        available |= {ep.name} | (
            {f"{dist_key(dist.metadata['Name'])}:{ep.name}"} if dist else set()
        )
    names = [name.strip() for name in wanted.split(",") if name.strip()]
    unknown = [n for n in names if plugin_key(n.removeprefix("-")) not in available]
    if not unknown:
        return []
    return [
        f"MLF_LOAD_PLUGINS names {', '.join(repr(n) for n in unknown)}, but no installed entry "
        f"point of group '{ENTRY_POINT_GROUP}' is called so; installed: "
        f"{', '.join(sorted(a for a in available if ':' not in a)) or 'none'}"
    ]


def _plugins_dir(registry: Registry) -> str | None:
    folder = getattr(registry, "_plugins_dir", None)
    return str(folder) if folder is not None else None
