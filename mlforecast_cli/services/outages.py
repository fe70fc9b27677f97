"""A lost service or a full disk, told apart from a bug: the one-line errors (exit 3) for the
study storage and the MLflow tracking store, and what a lost disk looks like.

Optuna and MLflow re-raise a dropped connection or a failed write as an error of their own,
or lose it behind a later one (Optuna's ``UnboundLocalError`` when the storage dies while a
trial ends), so every check walks the whole chain (``__cause__`` and ``__context__``).
"""

from __future__ import annotations

import errno
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ServiceLost, first_line, one_line

DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG})
"""``OSError`` numbers of a disk that cannot take more (full, over quota, failing, read-only,
over the file-size limit)."""


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or while handling."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def lost_reason(exc: BaseException) -> str | None:
    """One line saying which service or disk went away, when ``exc``'s chain shows one: a
    refused or timed-out connection (HTTP, database), a database that dropped or cannot write
    (SQLAlchemy's ``OperationalError``, ``InterfaceError``), a full or failing disk, a file
    that vanished. None for anything else (a bug keeps its traceback)."""
    for link in chain(exc):
        if _is_lost(link):
            text = first_line(link, type(link).__name__)
            system = re.search(r"\[Errno -?\d+\] ([^'\"()\]]+)", text)  # under urllib3's wrapping
            if system is not None:
                text = system.group(1).strip()
            text = re.sub(r"^\([\w.]+\) ", "", text)  # SQLAlchemy's "(psycopg.OperationalError) "
            return one_line(f"{type(link).__name__}: {text}", 200)
    return None


def _is_lost(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return True
    if isinstance(exc, ConnectionError | TimeoutError | FileNotFoundError):
        return True
    requests = sys.modules.get("requests.exceptions")  # loaded when an exception came from it
    if requests is not None and isinstance(
        exc, requests.ConnectionError | requests.Timeout | requests.RetryError
    ):
        return True
    sqlalchemy = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy is not None:
        if isinstance(exc, sqlalchemy.OperationalError | sqlalchemy.InterfaceError):
            return True
        if isinstance(exc, sqlalchemy.DBAPIError) and exc.connection_invalidated:
            return True
    return False


@contextmanager
def storage_errors(url: str | None) -> Iterator[None]:
    """Turn a study storage lost inside the block into :func:`storage_lost`'s error."""
    try:
        yield
    except ServiceLost:
        raise
    except Exception as exc:
        reason = lost_reason(exc)
        if reason is None:
            raise
        raise storage_lost(url, reason) from exc


def storage_lost(url: str | None, reason: str) -> ServiceLost:
    """The error for a study storage lost mid-study (``url`` None: the default journal)."""
    from .storage import default_storage_url, redact

    where = redact(url or default_storage_url())
    return ServiceLost(
        f"lost the study storage {where} ({reason}): the finished trials are kept there; "
        "rerun the same command once it is back (or has free space) to resume"
    )


def tracking_lost(uri: str, reason: str, model_dir: Path | None = None) -> ServiceLost:
    """The error for an MLflow tracking store lost during a study (the search went on)."""
    from .storage import redact

    kept = f" and the refit model in {model_dir}" if model_dir is not None else ""
    return ServiceLost(
        f"lost the MLflow tracking store {redact(uri)} ({reason}): the trials are kept in the "
        f"study storage{kept}; rerun the same command once it is back to log the missing runs"
    )
