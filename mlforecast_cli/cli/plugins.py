"""`mlf plugins`: every plugin, where it comes from, its models and its load errors."""

from __future__ import annotations

from typing import Annotated

import typer

from ..registry import get_registry
from .output import print_json, print_table


def plugins(
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """List the loaded plugins (entry points of group 'mlf', --plugins-dir files) and errors."""
    registry = get_registry()
    registry.load()
    rows = [
        {
            "plugin": info.name,
            "source": info.source,
            "distribution": info.dist,
            "version": info.version,
            "models": list(info.models),
            "error": info.error,
        }
        for info in registry.plugins
    ]
    if json_output:
        print_json({"plugins": rows, "problems": registry.problems})
        return
    for row in rows:
        row["models"] = ", ".join(row["models"])
        row["error"] = f"[red]{row['error']}[/]" if row["error"] else "ok"
    print_table(rows, ["plugin", "source", "distribution", "version", "models", "error"])
