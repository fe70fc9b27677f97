"""Errors a user can cause (exit 2), failures outside their input (exit 1), and a service or
disk lost mid-way (exit 3: what was finished is kept; the same command resumes).

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


class ServiceLost(MlfError):
    """A service or disk mlf writes to failed mid-way (the study storage, the MLflow tracking
    store, a full disk). Exit code 3: what was finished is kept; rerun the same command once
    it is back."""

    exit_code = 3


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
