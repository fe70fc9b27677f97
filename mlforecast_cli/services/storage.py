"""Where studies live: the on-disk default, or any Optuna storage URL.

The default is an Optuna journal file under the project folder (``.mlf/`` in the working
directory, or ``MLF_HOME``): no server, safe for several local processes (file lock), and the
cheapest per trial of the on-disk storages measured (``benchmarks/overhead.py``).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from ..errors import UsageError, first_line

JOURNAL_FILE = "optuna.journal"


def project_dir() -> Path:
    """The folder that holds mlf's local state (``MLF_HOME`` or ``./.mlf``)."""
    return Path(os.environ.get("MLF_HOME") or ".mlf")


def default_storage_url() -> str:
    return f"journal:///{(project_dir() / JOURNAL_FILE).resolve()}"


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


def check_storage_url(url: str | None) -> None:
    """Refuse a ``--storage`` value that no storage reads, before anything is started."""
    if url is None or url in ("memory", ":memory:") or _journal_path(url) is not None:
        return
    if "://" not in url:
        raise UsageError(
            f"--storage {url!r} is not a storage URL: use sqlite:///FILE.db, "
            "postgresql://USER:PASSWORD@HOST:PORT/DB, journal:///FILE.journal or memory"
        )


def open_storage(url: str | None):
    """An Optuna storage for ``url``; None means the default journal file.

    Accepts ``journal:///path`` (or a path ending in ``.journal``), ``memory``, and every
    RDB URL Optuna takes (``sqlite:///...``, ``postgresql://...``, ``mysql://...``).
    """
    import optuna

    url = url or default_storage_url()
    if url in ("memory", ":memory:"):
        return optuna.storages.InMemoryStorage()
    check_storage_url(url)
    journal_path = _journal_path(url)
    try:
        if journal_path is not None:
            from optuna.storages.journal import JournalStorage

            from .journal import LocalJournalBackend

            return JournalStorage(LocalJournalBackend(journal_path))
        return _rdb_storage(url)
    except UsageError:
        raise
    except ImportError as exc:
        driver = {"postgresql": '"psycopg[binary]"', "mysql": "pymysql"}.get(
            url.split(":", 1)[0].split("+", 1)[0], "the database driver"
        )
        raise UsageError(
            f"cannot open the study storage {redact(url)}: its database driver is not "
            f'installed; pip install {driver} (or pip install "mlforecast-cli[postgres]")'
        ) from exc
    except Exception as exc:
        first = first_line(exc, type(exc).__name__)
        raise UsageError(
            f"cannot open the study storage {redact(url)}: {first}; check the URL, that the "
            "server is running and the credentials, or leave out --storage for the local default"
        ) from exc


def _rdb_storage(url: str, attempts: int = 5):
    """Optuna's RDB storage; retried when workers race to create the schema of a new database."""
    import warnings

    import optuna

    from .rdb import QuietHeartbeatRDBStorage

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for attempt in range(attempts):
        try:
            return QuietHeartbeatRDBStorage(
                url, engine_kwargs=_engine_kwargs(url), heartbeat_interval=60, grace_period=180
            )
        except Exception as exc:
            racing = any(s in str(exc) for s in ("duplicate key", "already exists"))
            if not racing or attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _journal_path(url: str) -> Path | None:
    if url.startswith("journal://"):
        return Path(url[len("journal://") :])
    if "://" not in url and url.endswith(".journal"):
        return Path(url)
    return None


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
