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
        "(tcp://HOST:8786), or local[:N] to start N processes here; with --n-jobs N, N-1 of "
        f"the trials at a time run there too (env {CLUSTER_ENV}).",
    ),
]


def check_cluster(value: str | None) -> str | None:
    """The checked ``--cluster`` address (None: none asked)."""
    from ..services.executors import cluster_address

    return cluster_address(value or "")


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
