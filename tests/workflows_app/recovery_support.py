"""Shared by the recovery tests: beat and client subprocesses pointed at a Redis of the test's own
(tests.support.processes.OwnRedis, killed and restarted for real), on the test database. Their
fixtures (own_redis, beats) are in this package's conftest.py."""
from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support.processes import ProcessGroup, celery_beat_command, django_shell, subprocess_env
from workflows_app.models import ProcessHeartbeat

TEST_DB = int(os.environ.get("NEXUS_TEST_REDIS_DB", 12))  # settings.test puts every process on this db


def process_env(redis_url: str, **extra) -> dict:
    return subprocess_env(REDIS_URL=redis_url, CELERY_BEAT_MAX_LOOP_INTERVAL="1", NEXUS_BEAT_LOCK_TTL="6",
                          NEXUS_RECONCILE_EVERY="2", **extra)


class Beat(ProcessGroup):
    """A `celery beat` on the given Redis, and what its heartbeat row says about it."""

    def __init__(self, redis_url: str, log: Path):
        super().__init__(celery_beat_command(), env=process_env(redis_url), log=log)

    def heartbeat(self) -> ProcessHeartbeat | None:
        return ProcessHeartbeat.objects.filter(role="beat", pid=self.process.pid).first()

    def state(self) -> str | None:
        beat = self.heartbeat()
        return beat.state if beat else None


def run_client(redis_url: str, code: str, timeout: float = 300, **env) -> str:
    """Run Python code in a Django process of its own (test database, our Redis): what it sends goes
    to our Redis, which the test process's own Celery app does not talk to."""
    return django_shell(code, process_env(redis_url, **env), timeout)


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
