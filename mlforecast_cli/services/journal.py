"""An Optuna journal backend on a local file: appends under an ``flock``, without ``fsync``.

Optuna's ``JournalFileBackend`` calls ``fsync`` on every append (about 4 ms here), and a
trial appends for every parameter, user attribute and *reported step*: a LightGBM trial that
reports 300 rounds spent over a second in ``fsync``. A plain ``write`` is already durable
against a killed process (the kernel holds the data); only a power loss can drop the last
appends, and a torn last line is ignored on reading. Several processes on one machine share
the file safely: every append is one ``write`` under an exclusive lock.

Optuna re-reads the journal before most reads of a study (every ``should_prune`` too), so the
file stays open and a read costs one ``fstat`` when nothing was appended since the last one.
An append that fails part-way (a full disk) is cut off again: the file never holds half a line
before a whole one, which would make it unreadable.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optuna.storages.journal import BaseJournalBackend


class LocalJournalBackend(BaseJournalBackend):
    """Journal lines in ``path``; process-safe on one machine (POSIX ``flock``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        self._offsets: list[int] = [0]
        """Byte offset of log number i (every one read so far, and where the next starts)."""
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int:
        """The open file (reopened in a forked child, which must not share the offset)."""
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
            self._pid = os.getpid()
        return self._fd

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append ``logs`` whole or not at all: a write that fails part-way (a full disk) is
        cut off again, so the journal stays readable; the ``OSError`` is raised. A journal file
        removed or replaced since it was opened raises ``FileNotFoundError`` rather than
        writing into a file no one will read."""
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        fd = self._descriptor()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            self._check_same_file(fd)
            size = os.fstat(fd).st_size
            try:
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _check_same_file(self, fd: int) -> None:
        try:
            same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            raise FileNotFoundError(
                errno.ENOENT, "the journal file was removed or replaced", str(self.path)
            )

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        fd = self._descriptor()
        start = min(log_number_from, len(self._offsets) - 1)
        position = self._offsets[start]
        size = os.fstat(fd).st_size
        if size <= position:
            return
        data = os.pread(fd, size - position, position)
        complete = data.rfind(b"\n") + 1  # a last line without "\n" is still being written
        number = start
        begin = 0
        while begin < complete:
            end = data.index(b"\n", begin) + 1
            if number + 1 == len(self._offsets):
                self._offsets.append(position + end)
            if number >= log_number_from:
                yield json.loads(data[begin:end])
            number += 1
            begin = end

    def close(self) -> None:
        """Close the file (it reopens on the next use)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:
        try:  # noqa: SIM105 (at shutdown `contextlib` and `os` may already be gone)
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fd"] = None
        return state
