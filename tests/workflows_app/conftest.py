"""Fixtures of the engine's tests: a Redis of the test's own and beats on it (the recovery tests),
and the default named queues."""
from __future__ import annotations

import pytest

from tests.support.processes import OwnRedis
from tests.workflows_app.recovery_support import TEST_DB, Beat
from workflows_app import queues


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, for its subprocesses (REDIS_URL=own_redis.url); its
    client() reads the database those processes use."""
    server = OwnRedis(tmp_path, db=TEST_DB, socket_timeout=5).start()
    yield server
    server.kill()


@pytest.fixture
def beats(tmp_path):
    """Start a beat on a Redis (`beats(url)`); every beat started is stopped at the end of the test."""
    started: list[Beat] = []

    def start(redis_url: str) -> Beat:
        beat = Beat(redis_url, tmp_path / f"beat-{len(started)}.log").start()
        started.append(beat)
        return beat

    yield start
    for beat in started:
        beat.stop()


@pytest.fixture
def default_queues(db, redis_test_client):
    """The named queues every installation has (events, dead letters, the plugins' own)."""
    queues.ensure_default_queues()
