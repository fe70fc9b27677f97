"""Console output shared by the commands: tables or JSON, and one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_json(document: Any) -> None:
    """Write ``document`` as JSON on stdout, and nothing else."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Print ``rows`` as a Rich table with the given column keys."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, key in enumerate(columns):
        table.add_column((headers or {}).get(key, key), no_wrap=i == 0)
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for key in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def error_line(message: str) -> None:
    """Print one error line on stderr (markup in ``message`` is not interpreted)."""
    from rich.text import Text

    err_console.print(
        Text.assemble(("error: ", "bold red"), message.replace("\n", " ")), soft_wrap=True
    )
