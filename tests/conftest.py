"""Fixtures of the whole suite: a real Celery worker on a real Redis (the suite's own server, see
nexus_project/settings/test.py), worker subprocesses, and the REST API's users and clients.

- ``celery_worker``: an in-process worker (threads pool) for the whole session; tests that use it
  need ``@pytest.mark.django_db(transaction=True)`` so the worker sees their rows.
- ``worker_process``: a factory for worker subprocesses, for tests that kill a worker.
- ``alice``, ``bob``, ``staff`` and their clients ``api_a``, ``api_b``, ``api_staff``.
- The run fails at once if ``task_always_eager`` is on: nothing here is eager.

Fixtures of one package are in that package's conftest.py; plain helpers (polling, processes, API
checks) are in tests/support/ and the packages' helper modules, imported by the tests that use them.
"""
from __future__ import annotations

import os
import threading
import time

import pytest
import redis
from django.conf import settings

from tests.support.api import client_for, make_user
from tests.support.processes import ROOT, ProcessGroup, celery_worker_command, subprocess_env


def pytest_configure(config):
    import tests.workflows_app.support  # noqa: F401 - test-only step types, also in the worker
    from nexus_project.celery import app

    if app.conf.task_always_eager or getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        raise pytest.UsageError("task_always_eager is on: tests must run against a real worker")


OWNER_KEY = "nexus:test-suite-owner"


@pytest.fixture(scope="session", autouse=True)
def redis_test_client():
    """The suite's Redis database, claimed before the first test. The embedded server is the suite's
    own; on a server named by NEXUS_TEST_REDIS_URL the database is flushed only when it is empty or a
    test suite claimed it earlier (OWNER_KEY): never a database someone else filled."""
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    client.ping()
    if not settings.TEST_REDIS_OWNED and client.dbsize() and client.get(OWNER_KEY) is None:
        pytest.exit(f"Redis database {settings.REDIS_URL} holds data the test suite did not create: give "
                    "NEXUS_TEST_REDIS_URL / NEXUS_TEST_REDIS_DB an empty database, or unset them (embedded Redis)",
                    returncode=pytest.ExitCode.USAGE_ERROR)
    client.flushdb()
    client.set(OWNER_KEY, settings.TEST_ID)
    yield client
    client.flushdb()


class TaskGate:
    """Holds the in-process worker's tasks while a test's database is flushed.

    A transactional test ends with TRUNCATE; on PostgreSQL a task writing at that moment (a retry, a
    redrive, a queue drain the test started) deadlocks with it. Tasks pass the gate in task_prerun;
    between tests the gate is shut and the flush waits for tasks already running to finish."""

    def __init__(self):
        self.cond = threading.Condition()
        self.open = True
        self.running = 0

    def enter(self, **kwargs):
        with self.cond:
            self.cond.wait_for(lambda: self.open)
            self.running += 1

    def leave(self, **kwargs):
        with self.cond:
            self.running -= 1
            self.cond.notify_all()

    def shut(self, timeout: float = 120.0) -> None:
        with self.cond:
            self.open = False
            self.cond.wait_for(lambda: self.running <= 0, timeout=timeout)

    def reopen(self) -> None:
        with self.cond:
            self.open = True
            self.cond.notify_all()


GATE = TaskGate()


@pytest.fixture(autouse=True)
def _worker_quiet_during_flush():
    """Set up after pytest-django's database fixture, so torn down before its flush."""
    GATE.reopen()
    yield
    GATE.shut()


@pytest.fixture(scope="session")
def _session_worker(django_db_setup, django_db_blocker, redis_test_client):
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun, task_prerun

    from nexus_project.celery import app

    task_prerun.connect(GATE.enter, weak=False)
    task_postrun.connect(GATE.leave, weak=False)
    with django_db_blocker.unblock():
        with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=20,
                          loglevel="WARNING") as worker:
            yield worker
            GATE.reopen()  # let held tasks finish so the worker can stop


@pytest.fixture
def celery_worker(_session_worker):
    return _session_worker


@pytest.fixture
def worker_process(django_db_setup, redis_test_client):
    """Start a worker subprocess (prefork, on the suite's Redis unless REDIS_URL says otherwise) and
    wait until it is ready; every worker started is stopped at the end of the test."""
    started: list[ProcessGroup] = []

    def start(queues: str | None = None, concurrency: int = 1) -> ProcessGroup:
        log = ROOT / "var" / f"test-worker-{os.getpid()}-{time.monotonic_ns()}.log"
        log.parent.mkdir(exist_ok=True)
        worker = ProcessGroup(celery_worker_command(queues, concurrency, f"test-{time.monotonic_ns()}"),
                              env=subprocess_env(), log=log).start()
        started.append(worker)
        worker.wait_for_line("ready.", timeout=180)  # a worker boots in seconds, or minutes under load
        return worker

    yield start
    for worker in started:
        worker.stop()


# --- the REST API's users and clients -------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_throttle(settings):
    """Throttling is tested on its own; other tests must not trip over shared counts."""
    settings.NEXUS_API_WRITE_RATE = None
    settings.NEXUS_API_WEBHOOK_RATE = None
    settings.NEXUS_API_LOGIN_RATE = None


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def staff(db):
    return make_user("root", staff=True)


@pytest.fixture
def api_a(alice):
    return client_for(alice)


@pytest.fixture
def api_b(bob):
    return client_for(bob)


@pytest.fixture
def api_staff(staff):
    return client_for(staff)
