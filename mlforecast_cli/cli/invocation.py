"""The arguments of the running ``mlf`` command (recorded on MLflow runs to rerun it)."""

from __future__ import annotations

_args: list[str] = []


def record(args: list[str]) -> None:
    """Remember ``args`` as the running command's arguments."""
    _args[:] = args


def invocation() -> list[str]:
    """The arguments of the running ``mlf`` command."""
    return list(_args)
