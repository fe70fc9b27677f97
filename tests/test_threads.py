"""Native thread pools are sized for --n-jobs before NumPy or a model library loads."""

from __future__ import annotations

import os

import pytest

from mlforecast_cli.services.threads import (
    THREAD_VARIABLES,
    limit_native_threads,
    threads_per_trial,
)


@pytest.fixture
def clean_env(monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_workers_share_the_cores(clean_env, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert threads_per_trial(1) == 8
    assert threads_per_trial(3) == 2
    assert threads_per_trial(16) == 1
    limit_native_threads(4)
    assert all(os.environ[name] == "2" for name in THREAD_VARIABLES)


def test_one_job_and_the_users_choice_are_left_alone(clean_env, monkeypatch):
    limit_native_threads(1)
    assert not any(name in os.environ for name in THREAD_VARIABLES)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    limit_native_threads(2)
    assert os.environ["OMP_NUM_THREADS"] == "3"
