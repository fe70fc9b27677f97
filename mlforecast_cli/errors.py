"""Errors a user can cause (exit 2) and failures outside their input (exit 1).

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; the message
says what is wrong, where, and how to fix it.
"""

from __future__ import annotations


class MlfError(Exception):
    """Base of every error mlf reports to a user without a traceback."""

    exit_code = 1


class UsageError(MlfError):
    """Bad input from the user: a flag, a file, a name. Exit code 2."""

    exit_code = 2


class DataError(UsageError):
    """The data file or its column mapping is unusable."""


class SpaceError(UsageError):
    """A search-space file or override is invalid."""


class PluginError(MlfError):
    """A plugin is broken (failed import, duplicate name, bad spec)."""


class UnknownModelError(UsageError):
    """No installed model has that name."""


def first_line(exc: BaseException, default: str = "", *, typed: bool = False) -> str:
    """The first line of ``exc``'s message (``default`` when it has none): one-line errors.

    ``typed`` puts the exception's class in front: ``ValueError: bad value``."""
    lines = str(exc).strip().splitlines()
    line = lines[0] if lines else default
    if typed:
        return f"{type(exc).__name__}: {line}".rstrip(": ")
    return line


def one_line(value: object, limit: int = 200) -> str:
    """``value`` as text on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    return " ".join(str(value).split())[:limit]


DEBUG_ENV = "MLF_DEBUG"
"""Set (and not ``0``), or ``mlf --debug``: show tracebacks, not only one-line errors."""
TRACEBACK_LIMIT = 10_000
"""Characters of a traceback kept with a failed trial (its last ones: where it was raised)."""


def debug_enabled() -> bool:
    """Whether tracebacks are shown (``MLF_DEBUG``; ``mlf --debug`` sets it for its command)."""
    import os

    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def where(exc: BaseException) -> str:
    """``path:line`` where ``exc`` was raised (the innermost frame; a SyntaxError's own line);
    the path relative to the working folder or to the ``sys.path`` entry that holds it."""
    import traceback

    if isinstance(exc, SyntaxError) and exc.filename:
        filename, line = exc.filename, exc.lineno
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        if not frames:
            return ""
        filename, line = frames[-1].filename, frames[-1].lineno
    return f"{short_path(filename)}:{line}"


def short_path(filename: str) -> str:
    """``filename`` relative to the nearest folder that holds it among the working folder and
    the ``sys.path`` entries (``plugins/mine.py``, ``lightgbm/basic.py``), else as it is."""
    import os
    import sys

    path = os.path.abspath(filename)
    roots = {os.path.abspath(p) for p in (os.getcwd(), *sys.path) if p}
    for root in sorted(roots, key=len, reverse=True):
        if path.startswith(root.rstrip(os.sep) + os.sep):
            return os.path.relpath(path, root)
    return filename


def described(exc: BaseException) -> str:
    """``ValueError: bad value (plugin.py:12)``: the first line of ``exc`` with its type and
    where it was raised, for one-line errors about other people's code."""
    at = where(exc)
    return first_line(exc, typed=True) + (f" ({at})" if at else "")


def traceback_text(exc: BaseException, limit: int | None = TRACEBACK_LIMIT) -> str:
    """``exc``'s traceback as Python prints it (with its causes), its last ``limit``
    characters (None: all of it)."""
    import traceback

    text = "".join(traceback.format_exception(exc))
    return text if limit is None or len(text) <= limit else "...\n" + text[-limit:]
