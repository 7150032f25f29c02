"""Shared by the recovery tests: a Redis of their own (killed and restarted for real), beat and
client subprocesses pointed at it, on the test database."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from nexus_project.runtime import EmbeddedRedis, redis_answers
from tests.conftest import ROOT, wait_for
from workflows_app.models import ProcessHeartbeat

TEST_DB = int(os.environ.get("NEXUS_TEST_REDIS_DB", 12))  # settings.test puts every process on this db


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A throwaway redis-server (no persistence) that a test may SIGKILL and restart empty on the same port."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.tmp = tmp
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [EmbeddedRedis.server_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: redis_answers(self.url), timeout=30, message="redis-server answering")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=TEST_DB, decode_responses=True,
                           socket_timeout=5, socket_connect_timeout=5)


@pytest.fixture(name="own_redis")
def own_redis_fixture(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def process_env(redis_url: str, **extra) -> dict:
    return {**os.environ, "REDIS_URL": redis_url, "NEXUS_USE_TEST_DB": "1",
            "DJANGO_SETTINGS_MODULE": "nexus_project.settings.test", "PYTHONPATH": str(ROOT),
            "CELERY_BEAT_MAX_LOOP_INTERVAL": "1", "NEXUS_BEAT_LOCK_TTL": "6", "NEXUS_RECONCILE_EVERY": "2",
            **extra}


class Beat:
    def __init__(self, redis_url: str, log: Path):
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "nexus_project", "beat", "-l", "INFO"],
            cwd=ROOT, env=process_env(redis_url), stdout=log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True)

    def alive(self) -> bool:
        return self.process.poll() is None

    def heartbeat(self) -> ProcessHeartbeat | None:
        return ProcessHeartbeat.objects.filter(role="beat", pid=self.process.pid).first()

    def state(self) -> str | None:
        beat = self.heartbeat()
        return beat.state if beat else None

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(name="beats")
def beats_fixture(tmp_path):
    started: list[Beat] = []

    def start(redis_url: str) -> Beat:
        beat = Beat(redis_url, tmp_path / f"beat-{len(started)}.log")
        started.append(beat)
        return beat

    yield start
    for beat in started:
        beat.stop()


def run_client(redis_url: str, code: str, timeout: float = 300, **env) -> str:
    """Run Python code in a Django process of its own (test database, our Redis): what it sends goes
    to our Redis, which the test process's own Celery app does not talk to."""
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=process_env(redis_url, **env),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def start_executions(redis_url: str, batches: list[tuple[str, int, dict]]) -> dict[str, list[str]]:
    """Start n executions of each workflow (from a client process on our Redis); ids per workflow."""
    out = run_client(redis_url, (
        "import json, os\n"
        "from workflows_app import operations\n"
        "ids = {}\n"
        "for wf, n, data in json.loads(os.environ['NEXUS_TEST_BATCHES']):\n"
        "    ids.setdefault(wf, []).extend(operations.workflow_execute(workflow_id=wf, input_data=data)['execution_id']"
        " for _ in range(n))\n"
        "print('IDS=' + json.dumps(ids))\n"), NEXUS_TEST_BATCHES=json.dumps(batches))
    return json.loads(out.rsplit("IDS=", 1)[1])
