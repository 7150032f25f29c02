"""Test infrastructure: a real Celery worker on a real Redis (the suite's own server, see
nexus_project/settings/test.py).

- ``celery_worker``: an in-process worker (threads pool) for the whole session; tests that use it
  need ``@pytest.mark.django_db(transaction=True)`` so the worker sees their rows.
- ``worker_process``: a factory for worker subprocesses, for tests that kill a worker.
- The run fails at once if ``task_always_eager`` is on: nothing here is eager.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


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


class WorkerProcess:
    def __init__(self, queues: str | None = None, concurrency: int = 1):
        """queues: a -Q list; None consumes settings.NEXUS_QUEUES, as the Procfile's worker does."""
        env = {**os.environ, "NEXUS_USE_TEST_DB": "1", "DJANGO_SETTINGS_MODULE": "nexus_project.settings.test",
               "PYTHONPATH": str(ROOT)}
        self.log = ROOT / "var" / f"test-worker-{os.getpid()}-{time.monotonic_ns()}.log"
        self.log.parent.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "nexus_project", "worker", "-P", "prefork", "-c", str(concurrency),
             *(["-Q", queues] if queues else []), "--include", "tests.workflows_app.support", "-n", f"test-{time.monotonic_ns()}@%h",
             "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 180) -> None:  # a worker boots in seconds, or minutes under load
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.log.read_text():
                return
            if self.process.poll() is not None:
                raise RuntimeError(self.log.read_text()[-3000:])
            time.sleep(0.2)
        raise TimeoutError(self.log.read_text()[-3000:])

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and its pool children)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker_process(django_db_setup, redis_test_client):
    started: list[WorkerProcess] = []

    def start(**kwargs) -> WorkerProcess:
        worker = WorkerProcess(**kwargs)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05, message: str = "condition"):
    """Poll until predicate() is truthy; return its value. The deadline is generous on purpose: it
    only bounds a failure, a passing test returns as soon as the condition holds (busy machines)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
