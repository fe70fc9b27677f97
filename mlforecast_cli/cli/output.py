"""Console output shared by the commands: tables or JSON, and one-line messages.

Text that comes from users, plugins, files or errors can hold brackets (``mlforecast-cli[trees]``,
``[a, b]``, a path): it is printed as is, never read as Rich markup. Messages are soft-wrapped:
a long line stays one line (the terminal folds it), so it can be copied and grepped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.text import Text


class MessageConsole(Console):
    """A Rich console on which a printed string is one line (soft-wrapped) unless told
    otherwise; tables and progress bars lay out to the terminal's width as usual."""

    def print(self, *objects: Any, soft_wrap: bool | None = None, **kwargs: Any) -> None:
        if soft_wrap is None and objects and all(isinstance(o, str | Text) for o in objects):
            soft_wrap = True
        super().print(*objects, soft_wrap=soft_wrap, **kwargs)


console = MessageConsole(highlight=False)
err_console = MessageConsole(stderr=True, highlight=False)


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
    only the ``shrink`` columns are cut short (with an ellipsis) on a narrow terminal.
    A cell is printed as text; pass a ``rich.text.Text`` to style it."""
    from rich.table import Table

    cells = [[_text(row.get(key)) for key in columns] for row in rows]
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


def _text(value: Any) -> Text:
    return value.copy() if isinstance(value, Text) else Text(_cell(value))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def error_line(message: str) -> None:
    """Print ``message`` as one error line on stderr, as is (no markup)."""
    _line("error: ", "bold red", message)


def warning_line(message: str) -> None:
    """Print ``message`` as one warning line on stderr, as is (no markup)."""
    _line("warning: ", "yellow", message)


def say(message: str) -> None:
    """Print ``message`` as one line on stdout, as is (no markup)."""
    console.print(Text(message.replace("\n", " ")))


def _line(label: str, style: str, message: str) -> None:
    err_console.print(Text.assemble((label, style), message.replace("\n", " ")))


def show_tracebacks(problems: Iterable[BaseException | str], heading: str = "") -> None:
    """With ``--debug`` (or ``MLF_DEBUG=1``), print each traceback (an exception's, or one
    kept as text) on stderr as Python writes it; otherwise nothing."""
    from ..errors import debug_enabled, traceback_text

    if not debug_enabled():
        return
    for problem in problems:
        text = problem if isinstance(problem, str) else traceback_text(problem, limit=None)
        if heading:
            err_console.print(Text(heading, style="bold"))
        err_console.print(Text(text.rstrip("\n")), soft_wrap=True, highlight=False)


def with_ratio_text(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` for a table: the reference marked, ``vs_reference`` as ``0.82`` (2 decimals)."""
    from ..tracking.leaderboard import model_label

    ratio = row.get("vs_reference")
    return {
        **row,
        "model": model_label(row["model"]),
        "vs_reference": None if ratio is None else f"{ratio:.2f}",
    }
