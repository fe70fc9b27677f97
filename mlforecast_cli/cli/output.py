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
    optional: Sequence[str] = (),
    wide: bool = False,
) -> None:
    """Print ``rows`` as a Rich table, one line per row except in the ``wrap`` columns (which
    wrap only when the table would not fit otherwise).

    On a narrow terminal (80 columns when piped) the ``optional`` columns are shown only where
    they fit whole, in their order, and a caption names those left out (``wide`` shows them
    all); only the ``shrink`` columns are cut short (with an ellipsis). No other cell is ever
    cut: a table that cannot fit is printed at its own width and the terminal folds it.
    A cell is printed as text; pass a ``rich.text.Text`` to style it."""
    from rich.table import Table

    cells = [[_text(row.get(key)) for key in columns] for row in rows]
    names = [(headers or {}).get(key, key) for key in columns]
    natural = {
        key: max([len(name)] + [r[i].cell_len for r in cells])
        for i, (key, name) in enumerate(zip(columns, names, strict=True))
    }
    least = {
        key: _longest_word([names[i]] + [r[i].plain for r in cells]) if key in wrap else w
        for i, (key, w) in enumerate(natural.items())
    }
    shown = fit_columns(columns, natural, console.width, optional=() if wide else optional)
    left_out = [names[columns.index(key)] for key in columns if key not in shown]
    fixed = sum(natural[key] for key in shown if key not in shrink)
    room = console.width - fixed - 3 * len(shown) - 1
    share = room // max(1, len([key for key in shown if key in shrink]))
    keep = [columns.index(key) for key in shown if key not in shrink or share >= 10]
    for row in cells:
        for i in keep:
            if columns[i] in shrink:
                row[i].truncate(max(share, 1), overflow="ellipsis")
    caption = f"more columns with --wide: {', '.join(left_out)}" if left_out else None
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for i in keep:
        table.add_column(names[i], no_wrap=columns[i] not in wrap, overflow="ellipsis")
    for row in cells:
        table.add_row(*(row[i] for i in keep))
    width = console.width
    if wide or table_width([least[columns[i]] for i in keep]) > width:
        width = max(width, table_width([natural[columns[i]] for i in keep]))
    _print_at(table, width)


def _print_at(renderable: Any, width: int) -> None:
    """Print on stdout laid out to ``width`` columns, wider than the terminal if need be."""
    terminal = console.width
    console.width = width
    try:
        console.print(renderable, crop=False)
    finally:
        console.width = terminal


def table_width(widths: Sequence[int]) -> int:
    """Columns a Rich table of cells this wide takes: a space each side and a rule between."""
    return sum(widths) + 3 * len(widths) + 1


def fit_columns(
    columns: Sequence[str], widths: Mapping[str, int], width: int, optional: Sequence[str] = ()
) -> list[str]:
    """The ``columns`` to show in ``width`` terminal columns: every one not ``optional``, then
    each optional one, in order, that still fits whole beside them."""
    shown = [key for key in columns if key not in optional]
    for key in optional:
        if table_width([widths[k] for k in [*shown, key]]) <= width:
            shown.append(key)
    return [key for key in columns if key in shown]


def _longest_word(texts: Iterable[str]) -> int:
    return max((len(word) for text in texts for word in text.split()), default=1)


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
