"""Study storage: the local journal backend, URL handling and clear errors."""

from __future__ import annotations

import multiprocessing

import optuna
import pytest

from mlforecast_cli.errors import UsageError
from mlforecast_cli.services.journal import LocalJournalBackend
from mlforecast_cli.services.storage import default_storage_url, open_storage, redact


def _worker(path: str, n: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="shared", storage=open_storage(f"journal://{path}"))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=n)


def test_processes_share_one_journal_study(tmp_path):
    path = tmp_path / "shared.journal"
    optuna.create_study(study_name="shared", storage=open_storage(f"journal://{path}"))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(path), 15)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    study = optuna.load_study(study_name="shared", storage=open_storage(f"journal://{path}"))
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 45
    assert sorted(t.number for t in trials) == list(range(45))
    assert all(t.state.name == "COMPLETE" for t in trials)


def test_torn_last_line_is_ignored_and_reads_resume(tmp_path):
    backend = LocalJournalBackend(tmp_path / "j.journal")
    backend.append_logs([{"a": 1}, {"a": 2}])
    with open(tmp_path / "j.journal", "ab") as fh:
        fh.write(b'{"a": 3')
    assert list(backend.read_logs(0)) == [{"a": 1}, {"a": 2}]
    assert list(backend.read_logs(1)) == [{"a": 2}]
    assert list(backend.read_logs(2)) == []


def test_default_is_a_journal_under_mlf_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLF_HOME", str(tmp_path / "home"))
    assert default_storage_url() == f"journal:///{tmp_path / 'home' / 'optuna.journal'}"
    storage = open_storage(None)
    optuna.create_study(storage=storage, study_name="s")
    assert (tmp_path / "home" / "optuna.journal").exists()


def test_sqlite_and_memory_urls(tmp_path):
    assert isinstance(open_storage("memory"), optuna.storages.InMemoryStorage)
    assert isinstance(open_storage(f"sqlite:///{tmp_path}/o.db"), optuna.storages.RDBStorage)


@pytest.mark.parametrize(
    "url", ["not a url", "postgresql://user:hunter2@127.0.0.1:9/nothing", "nosuchdb://x/y"]
)
def test_bad_storage_is_a_usage_error_without_the_password(url):
    with pytest.raises(UsageError) as info:
        open_storage(url)
    assert "hunter2" not in str(info.value)
    assert "\n" not in str(info.value)


def test_redact():
    assert redact("postgresql://me:pw@host:5432/db") == "postgresql://me:***@host:5432/db"
    assert redact("sqlite:///x.db") == "sqlite:///x.db"


def test_an_open_reader_sees_what_another_process_appends(tmp_path):
    writer = LocalJournalBackend(tmp_path / "j.journal")
    reader = LocalJournalBackend(tmp_path / "j.journal")
    writer.append_logs([{"a": 1}])
    assert list(reader.read_logs(0)) == [{"a": 1}]
    assert list(reader.read_logs(1)) == []  # nothing new: the file size says so
    writer.append_logs([{"a": 2}, {"a": 3}])
    assert list(reader.read_logs(1)) == [{"a": 2}, {"a": 3}]
    assert list(reader.read_logs(0)) == [{"a": 1}, {"a": 2}, {"a": 3}]
    reader.close()
    assert list(reader.read_logs(2)) == [{"a": 3}]  # reopens on use


def test_a_heartbeat_on_a_lost_database_prints_no_traceback(tmp_path, monkeypatch):
    """The study's own thread reports a lost database once; the heartbeat thread stays quiet."""
    import threading

    import sqlalchemy
    from optuna.storages._heartbeat import HeartbeatThread

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=storage)
    trial_id = study.ask()._trial_id
    with storage.engine.begin() as connection:
        connection.execute(sqlalchemy.text("DROP TABLE trial_heartbeats"))
    with pytest.raises(optuna.exceptions.StorageInternalError):
        optuna.storages.RDBStorage.record_heartbeat(storage, trial_id)
    raised = []
    monkeypatch.setattr(threading, "excepthook", raised.append)
    beat = HeartbeatThread(trial_id, storage)
    beat.start()
    beat.join()
    assert raised == []
