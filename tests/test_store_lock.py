"""Opening a local MLflow SQLite store: serialised between openers, no lock file left."""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor

from mlforecast_cli.services.mlflow_store import connect


def test_connecting_to_a_store_leaves_no_lock_file(mlflow_uri, tmp_path, monkeypatch):
    """Openers of one SQLite store take turns on a lock file in the temp folder; once they
    are done the temp folder is as clean as before (it kept one file per store)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with ThreadPoolExecutor(4) as pool:
        clients = list(pool.map(lambda _: connect(mlflow_uri), range(8)))
    assert all(c.search_experiments() for c in clients)
    assert list(temp.iterdir()) == []
