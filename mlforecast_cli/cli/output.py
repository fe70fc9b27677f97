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
    wrap: Sequence[str] = (),
    shrink: Sequence[str] = (),
) -> None:
    """Print ``rows`` as a Rich table, one line per row except in the ``wrap`` columns;
    only the ``shrink`` columns are cut short (with an ellipsis) on a narrow terminal."""
    from rich.table import Table
    from rich.text import Text

    cells = [[Text.from_markup(_cell(row.get(key))) for key in columns] for row in rows]
    names = [(headers or {}).get(key, key) for key in columns]
    widths = [max([len(n)] + [r[i].cell_len for r in cells]) for i, n in enumerate(names)]
    fixed = sum(w for w, key in zip(widths, columns, strict=True) if key not in shrink)
    room = console.width - fixed - 3 * len(columns) - 1
    share = room // max(1, len(shrink))
    keep = [i for i, key in enumerate(columns) if key not in shrink or share >= 10]
    for row in cells:
        for i, key in enumerate(columns):
            if key in shrink:
                row[i].truncate(max(share, 1), overflow="ellipsis")
    table = Table(title=title, title_justify="left")
    for i in keep:
        table.add_column(names[i], no_wrap=columns[i] not in wrap, overflow="ellipsis")
    for row in cells:
        table.add_row(*(row[i] for i in keep))
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
