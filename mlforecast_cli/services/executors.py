"""Where per-series work runs: one place that decides, for every whole-series plugin.

A whole-series plugin (``ets``, ``theta``, ``arima``, a third party's) cuts its series into
chunks and maps a function over them through :func:`series_executor`; the core decides
where that runs. By default a :class:`LocalPool` of spawned processes on this machine (made
once per process, so each worker imports the model library once); with ``--cluster`` a
:class:`DaskExecutor` on a Dask cluster, where each distinct history array is sent to the
workers once (``scatter``) and every later chunk of every trial refers to it.

Dask is imported only when a cluster is asked for.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import MlfError, ServiceLost, UsageError, debug_enabled, first_line, one_line

CHUNKS_PER_WORKER = 4
"""Chunks per worker: enough for an uneven chunk not to hold the others up."""
CLUSTER_ENV = "MLF_CLUSTER"
"""The environment variable that ``--cluster`` falls back to."""
LOCAL = "local"
"""``--cluster local[:N]``: a Dask ``LocalCluster`` of N processes on this machine."""


class ExecutorUnavailable(RuntimeError):
    """The executor cannot run work (a local pool whose processes cannot start): the caller
    runs it in-process instead."""


class ClusterWorkLost(MlfError):
    """A trial's chunks were lost on the cluster (workers died again and again, or a chunk
    killed every worker that ran it): the trial fails with this reason, the study goes on."""


RESEND = 2
"""Times a :class:`DaskExecutor` sends a call's histories again after they died with a
worker, before the call fails."""
WORKER_WAIT_S = 60.0
"""Seconds a :class:`DaskExecutor` waits for a worker when the cluster has none left (workers
restarting) before the cluster counts as lost."""


def chunk_bounds(offsets: Any, chunks: int) -> list[tuple[int, int]]:
    """``(first, end)`` series ranges cutting the ragged histories ``offsets`` into about
    ``chunks`` pieces of equal total length (equal work for a per-series model)."""
    import numpy as np

    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    chunks = max(1, min(n, int(chunks)))
    cuts = np.searchsorted(offsets[1:], np.linspace(0, offsets[-1], chunks + 1)[1:-1])
    bounds = np.unique(np.concatenate([[0], cuts + 1, [n]]))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def run_chunk(fn: Callable[..., Any], values, offsets, first: int, end: int, args: tuple) -> Any:
    """``fn(values, offsets, *args)`` on series ``first..end-1`` of the ragged histories (on
    whichever process the executor chose)."""
    import numpy as np

    offsets = np.asarray(offsets, dtype=np.int64)
    a, b = int(offsets[first]), int(offsets[end])
    return fn(values[a:b], offsets[first : end + 1] - a, *args)


class SeriesExecutor:
    """Runs a function over chunks of ragged series histories; see :func:`series_executor`."""

    remote: bool = False
    """True when the work leaves this process's machine share (a cluster): worth using for
    any panel large enough to chunk, with no timing probe first."""

    @property
    def workers(self) -> int:
        """Processes (or threads) that run chunks at once."""
        raise NotImplementedError

    def map_series(self, fn: Callable[..., Any], values, offsets, *args: Any) -> list[Any]:
        """``fn(values_chunk, offsets_chunk, *args)`` for each chunk of the histories
        (``values[offsets[i]:offsets[i + 1]]`` is series ``i``), results in series order.
        ``fn`` must be importable by name (a module-level function). Raises
        :class:`ExecutorUnavailable` when the work cannot be started."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor holds (processes, a cluster connection)."""


class LocalPool(SeriesExecutor):
    """A pool of ``workers`` spawned processes on this machine, kept for the process's later
    calls. Spawned, not forked: the parent may run threads (progress, tracking) that a fork
    would copy mid-lock."""

    def __init__(self, workers: int) -> None:
        self._workers = max(1, int(workers))
        self._pool: Any = None

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def started(self) -> bool:
        return self._pool is not None

    def map_series(self, fn, values, offsets, *args):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        import numpy as np

        offsets = np.asarray(offsets, dtype=np.int64)
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self._workers, mp_context=context)
        futures = []
        for a, b in chunk_bounds(offsets, self._workers * CHUNKS_PER_WORKER):
            lo, hi = int(offsets[a]), int(offsets[b])  # send each process its slice only
            part = offsets[a : b + 1] - lo
            futures.append(self._pool.submit(run_chunk, fn, values[lo:hi], part, 0, b - a, args))
        try:
            return [f.result() for f in futures]
        except BrokenProcessPool as exc:  # processes that cannot start (no importable __main__)
            self.close()
            raise ExecutorUnavailable(first_line(exc, "the process pool broke")) from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None


SCATTERED = 8
"""Distinct history arrays a :class:`DaskExecutor` keeps on the cluster (a study's folds,
its refit and ``predict``'s data: the oldest is released first)."""


class DaskExecutor(SeriesExecutor):
    """Chunks as tasks on a Dask cluster (``client``). Each distinct values/offsets array is
    scattered to the workers once and kept (:data:`SCATTERED` of them), so the trials of a
    study send only the chunk bounds and the model's configuration."""

    remote = True

    def __init__(
        self, client: Any, cluster: Any = None, address: str = "", owned: bool = True
    ) -> None:
        self.client = client
        self.owned = owned
        """Whether :meth:`close` closes ``client`` (not a Dask worker's own client)."""
        self.cluster = cluster
        """The ``LocalCluster`` this executor started (closed with it), or None."""
        self.address = address
        """The scheduler's address as the user gave it (``--cluster``), for messages."""
        self._scattered: OrderedDict[str, Any] = OrderedDict()
        self.scattered_bytes = 0
        """Bytes sent to the workers by :meth:`share` so far."""

    @property
    def workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def share(self, array) -> Any:
        """A future of ``array`` on the cluster, scattered the first time its content is seen."""
        import numpy as np

        data = np.ascontiguousarray(array)
        key = hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest() + str(data.dtype)
        if key in self._scattered:
            self._scattered.move_to_end(key)
            return self._scattered[key]
        future = self.client.scatter(data, broadcast=True, hash=False)
        self.scattered_bytes += data.nbytes
        self._scattered[key] = future
        while len(self._scattered) > SCATTERED:
            self._scattered.popitem(last=False)[1].release()
        return future

    def map_series(self, fn, values, offsets, *args):
        """See :meth:`SeriesExecutor.map_series`. A worker killed mid-task costs only time:
        Dask runs its chunks again on the others, and when the histories were lost with it
        (Dask keeps one copy of data no task waits for) they are sent again and the chunks
        run again, :data:`RESEND` times at most; then :class:`ClusterWorkLost`. Raises
        :class:`~mlforecast_cli.errors.ServiceLost` (exit 3) when the scheduler is lost, or
        when no worker is left for :data:`WORKER_WAIT_S`."""
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        for attempt in range(RESEND + 1):
            try:
                return self._map(fn, values, offsets, args)
            except ServiceLost:
                raise
            except Exception as exc:
                if self.client.status != "running":  # whatever Dask raised: no scheduler
                    self._forget()
                    # a cancelled future names it; a closed stream (the same loss, whichever
                    # of the two surfaces first) does not: one line either way
                    reason = getattr(exc, "reason", None) or "scheduler-connection-lost"
                    raise self.lost(reason) from exc
                if isinstance(exc, KilledWorker):
                    raise ClusterWorkLost(
                        f"a chunk of this trial killed every Dask worker that ran it ({exc}): "
                        "too little memory on the workers?"
                    ) from exc
                if not isinstance(exc, CancelledError):
                    raise  # the model's own error, raised on a worker
                self._forget()  # the histories died with a worker: send them again
                if attempt == RESEND:
                    raise ClusterWorkLost(
                        f"the Dask workers running this trial died {RESEND + 1} times "
                        f"({one_line(exc, 120) or type(exc).__name__})"
                    ) from exc
        raise AssertionError("unreachable")

    def _map(self, fn, values, offsets, args: tuple) -> list[Any]:
        self._wait_for_workers()
        values_f, offsets_f = self.share(values), self.share(offsets)
        futures = [
            self.client.submit(run_chunk, fn, values_f, offsets_f, a, b, args, pure=False)
            for a, b in chunk_bounds(offsets, self.workers * CHUNKS_PER_WORKER)
        ]
        return self.client.gather(futures)

    def _wait_for_workers(self) -> None:
        try:  # asks the scheduler (the client's own list lags by seconds)
            self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except TimeoutError as exc:
            raise self.lost(f"no worker left for {WORKER_WAIT_S:.0f} s") from exc

    def lost(self, reason: str) -> ServiceLost:
        """The error for this cluster lost mid-way (exit 3)."""
        return ServiceLost(
            f"lost the Dask cluster {self.address} ({one_line(reason, 120)}): the finished "
            "trials are kept in the study storage; rerun the same command once the scheduler "
            "and its workers are back to resume"
        )

    def _forget(self) -> None:
        for future in self._scattered.values():
            future.release()
        self._scattered.clear()

    def close(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):  # a lost scheduler: nothing to release there
            self._forget()
        if self.owned:
            with contextlib.suppress(Exception):
                self.client.close(timeout=5)
        if self.cluster is not None:
            self.cluster.close()


_local: LocalPool | None = None
_current: SeriesExecutor | None = None
_thread = threading.local()
"""``_thread.executor``: one thread's executor, before :data:`_current` (a trial task on a
Dask worker, beside other such tasks in the same process)."""


def series_executor(n_threads: int = 1) -> SeriesExecutor:
    """The executor per-series work runs on: the cluster's when the command was given one
    (``--cluster``), else this process's local pool of ``n_threads`` processes (the cores the
    core gave the model, ``TaskInfo.n_threads``)."""
    global _local
    current = current_executor()
    if current is not None:
        return current
    workers = max(1, min(int(n_threads), os.cpu_count() or 1))
    if _local is None or _local.workers != workers:
        if _local is not None:
            _local.close()
        else:  # a pool still open when the interpreter tears its modules down prints a traceback
            atexit.register(shutdown_local_pool)
        _local = LocalPool(workers)
    return _local


def current_executor() -> SeriesExecutor | None:
    """The executor :func:`use_executor` set for this thread or process (a cluster's), or
    None."""
    return getattr(_thread, "executor", None) or _current


def local_pool() -> LocalPool | None:
    """This process's local pool, if one was made."""
    return _local


def shutdown_local_pool() -> None:
    """Stop the local pool's processes (they also stop when the process exits)."""
    global _local
    if _local is not None:
        _local.close()
    _local = None


@contextmanager
def use_executor(executor: SeriesExecutor, *, thread: bool = False) -> Iterator[SeriesExecutor]:
    """Run this process's per-series work (``thread``: this thread's only) on ``executor``
    inside the block, then close it."""
    global _current
    if thread:
        previous, _thread.executor = getattr(_thread, "executor", None), executor
    else:
        previous, _current = _current, executor
    try:
        yield executor
    finally:
        if thread:
            _thread.executor = previous
        else:
            _current = previous
        executor.close()


# --------------------------------------------------------------------------- clusters


def cluster_address(value: str | None) -> str | None:
    """``--cluster`` (or :data:`CLUSTER_ENV`), checked: a scheduler address
    (``tcp://host:8786``, ``host:8786``) or ``local[:N]``; None or empty: no cluster."""
    value = (value if value is not None else os.environ.get(CLUSTER_ENV, "")).strip()
    if not value:
        return None
    if value == LOCAL or value.startswith(LOCAL + ":"):
        count = value[len(LOCAL) + 1 :] or "1"
        if not count.isdigit() or int(count) < 1:
            raise UsageError(
                f"--cluster {value!r}: the number after 'local:' must be a whole number of at "
                "least 1 (the worker processes to start), e.g. --cluster local:4"
            )
        return value
    host = value.split("://", 1)[-1]
    if ":" not in host or not host.rsplit(":", 1)[1].isdigit():
        raise UsageError(
            f"--cluster {value!r} is not a Dask scheduler address: use tcp://HOST:PORT "
            "(e.g. tcp://10.0.0.5:8786) or local[:N] for a cluster on this machine"
        )
    return value


def connect_cluster(address: str, packages: Sequence[str] = ()) -> DaskExecutor:
    """A :class:`DaskExecutor` on the scheduler at ``address`` (``local[:N]``: a new
    ``LocalCluster`` of N single-threaded processes), after checking that every worker has
    mlf and the import names ``packages`` at this process's versions (one-line
    :class:`UsageError` naming the worker and the package when not)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise UsageError(
            f'--cluster {address} needs Dask: pip install "mlforecast-cli[dask]"'
        ) from exc
    quiet_dask_logs()
    cluster = None
    try:
        if address.startswith(LOCAL):
            count = int(address[len(LOCAL) + 1 :] or 1)
            cluster = LocalCluster(
                n_workers=count, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
        else:
            client = Client(address, timeout=15)
    except Exception as exc:
        if cluster is not None:
            cluster.close()
        raise UsageError(
            f"cannot reach the Dask scheduler {address}: {first_line(exc, type(exc).__name__)}; "
            "check the address and that 'dask scheduler' runs there"
        ) from exc
    executor = DaskExecutor(client, cluster, address)
    try:
        check_workers(client, ("mlforecast_cli", "numpy", *packages))
    except BaseException:
        executor.close()
        raise
    return executor


def quiet_dask_logs() -> None:
    """Silence Dask's own logs in this process: it logs a lost connection with tracebacks,
    which mlf says in one line (with ``MLF_DEBUG``, its errors are shown too). Dask gives its
    modules' loggers levels and handlers of their own, so each is set."""
    import logging

    level = logging.ERROR if debug_enabled() else logging.CRITICAL + 1
    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(level)


def check_workers(client: Any, packages: Sequence[str]) -> None:
    """Refuse a cluster with no worker, or whose workers lack one of ``packages`` (import
    names) or have another version of it than this process (mlf: the same version; a
    library: the same major.minor)."""
    here = module_versions(packages)
    there = client.run(module_versions, list(packages))
    if not there:
        raise UsageError(
            "the Dask cluster has no worker: start 'dask worker SCHEDULER' on each machine"
        )
    for worker, versions in sorted(there.items()):
        for name in packages:
            mine, theirs = here.get(name), versions.get(name)
            if mine is None:
                continue
            if theirs is None:
                raise UsageError(
                    f"Dask worker {worker} cannot import {name} (here {mine}): install it there "
                    "(the same 'pip install' as on this machine), then restart the worker"
                )
            if not compatible(name, mine, theirs):
                raise UsageError(
                    f"Dask worker {worker} has {name} {theirs}, this machine {mine}: install "
                    f"{name}=={mine} on the worker (or the worker's here), then restart it"
                )


def compatible(name: str, mine: str, theirs: str) -> bool:
    """Whether a worker's version of ``name`` runs our tasks: mlf itself exactly the same, a
    library the same major.minor."""
    if name == "mlforecast_cli":
        return mine == theirs
    return mine.split(".")[:2] == theirs.split(".")[:2]


def module_versions(names: Sequence[str]) -> dict[str, str]:
    """The version of each importable module in ``names`` (runs on the workers too)."""
    import importlib

    out = {}
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        out[name] = str(getattr(module, "__version__", "") or _dist_version(name))
    return out


def _dist_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name.replace("_", "-"))
    except metadata.PackageNotFoundError:
        return "unknown"
