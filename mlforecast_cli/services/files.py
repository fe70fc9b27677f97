"""Output files: refuse a path that cannot be written, and never leave half a file behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ServiceLost, UsageError
from .outages import DISK_ERRNOS


def check_output(output: Path, suffixes: Sequence[str], wrong_suffix: str) -> str:
    """The lower-cased suffix of ``output``; a one-line UsageError if it is not one of
    ``suffixes`` (``wrong_suffix`` says what to do), is a folder, or cannot be written."""
    suffix = output.suffix.lower()
    endings = " or ".join(suffixes)
    if suffix not in suffixes:
        raise UsageError(f"--output {output}: {wrong_suffix}")
    if output.is_dir():
        raise UsageError(f"--output {output} is a folder; give a file name ending {endings}")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--output {output}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK) or (
        output.exists() and not os.access(output, os.W_OK)
    ):
        raise UsageError(f"--output {output}: permission denied; choose a writable place")
    return suffix


def atomic_write(output: Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``output``, then rename it onto
    ``output``: a reader never sees half a file and a failure leaves none behind (an older
    ``output`` stays as it was). A full disk is a :class:`ServiceLost` (exit 3)."""
    output = Path(output)
    parent = output.parent if str(output.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise UsageError(f"--output {output}: cannot write there ({exc.strerror})") from exc
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, output)
    except OSError as exc:
        if exc.errno in DISK_ERRNOS:
            raise ServiceLost(
                f"--output {output}: the disk cannot take it ({exc.strerror or exc}); nothing "
                "was written: free some space or choose another place, then rerun"
            ) from exc
        raise UsageError(f"--output {output}: cannot write there ({exc.strerror or exc})") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return output


def _default_mode() -> int:
    """The mode a new file gets (0o666 less the umask), not mkstemp's private 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
