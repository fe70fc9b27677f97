"""`--cluster ADDRESS` (or ``MLF_CLUSTER``): the per-series work of a command on Dask."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from ..services.executors import CLUSTER_ENV

ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        metavar="ADDRESS",
        envvar=CLUSTER_ENV,
        show_envvar=False,
        help="Run the per-series work of whole-series models on a Dask cluster: its scheduler "
        f"(tcp://HOST:8786), or local[:N] to start N processes here (env {CLUSTER_ENV}).",
    ),
]


def check_cluster(value: str | None, n_jobs: int = 1) -> str | None:
    """The checked ``--cluster`` address (None: none asked); refused with ``--n-jobs`` > 1."""
    from ..errors import UsageError
    from ..services.executors import cluster_address

    address = cluster_address(value or "")
    if address is not None and n_jobs > 1:
        raise UsageError(
            f"--cluster with --n-jobs {n_jobs}: trials do not run on the cluster yet, only each "
            "trial's per-series work; pass --n-jobs 1 (the cluster's workers share the series)"
        )
    return address


@contextmanager
def on_cluster(address: str | None, models: Iterable[str] = ()) -> Iterator[None]:
    """Inside the block, per-series work runs on the cluster at ``address`` (none: locally),
    once its workers are checked for mlf and the libraries of ``models``."""
    if address is None:
        yield
        return
    from ..models.registry import get_registry
    from ..services.executors import connect_cluster, use_executor

    known = get_registry().models
    packages: list[str] = []
    for name in models:
        if name in known:
            packages += [p for p in known[name].spec.requires if p not in packages]
    with use_executor(connect_cluster(address, packages)):
        yield
