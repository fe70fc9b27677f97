"""`mlf list-models` and `mlf show-space`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from ..models.registry import get_model, get_registry
from .options import JsonTableOpt
from .output import console, print_json, print_table, show_tracebacks, warning_line


def list_models(
    json_output: JsonTableOpt = False,
) -> None:
    """List every installed model, its plugin and whether it is ready to run."""
    registry = get_registry()
    rows = []
    for entry in registry.models.values():
        space_error = entry.space_error
        rows.append(
            {
                "name": entry.name,
                "family": entry.spec.family,
                "summary": entry.spec.summary,
                "plugin": entry.plugin.name,
                "distribution": entry.plugin.dist,
                "version": entry.plugin.version,
                "params": None if space_error else entry.load_space().n_params,
                "status": entry.status,
            }
        )
    show_tracebacks(registry.exceptions)
    if json_output:
        print_json({"models": rows, "problems": registry.problems})
        return
    for row in rows:
        row["plugin"] = _plugin_cell(row)
        if row["status"] == "ready":
            row["status"] = Text(row["status"], style="green")
    print_table(
        rows,
        ["name", "family", "plugin", "params", "status", "summary"],
        headers={"params": "searched"},
        wrap=("status",),
        shrink=("summary",),
    )
    for problem in registry.problems:
        warning_line(problem)


def _plugin_cell(row: dict) -> str:
    if row["distribution"] and row["version"]:
        return f"{row['distribution']} {row['version']}"
    return row["plugin"]


def show_space(
    model: Annotated[str, typer.Argument(help="Model name (see 'mlf list-models').")],
    space: Annotated[
        Path | None,
        typer.Option("--space", metavar="FILE", help="Use this YAML file instead of the model's."),
    ] = None,
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override one key: KEY=VALUE, KEY=LOW..HIGH, KEY=\\[a, b] (repeatable).",
        ),
    ] = None,
) -> None:
    """Print the effective search space of MODEL as YAML, ready to copy and edit."""
    entry = get_model(model)
    effective = entry.effective_space(space, assignments or ())
    console.print(effective.to_yaml(), end="", markup=False, highlight=False, soft_wrap=True)
