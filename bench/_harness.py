"""Shared benchmark plumbing: a bench database and Redis db, a worker subprocess, percentiles.

Benchmarks run against the real stack: DATABASE_URL if set (PostgreSQL in production), else
SQLite at var/bench.sqlite3; Redis database 14 of the Redis the project resolves.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def configure() -> dict:
    from nexus_project.runtime import resolve_redis_url, with_db

    (ROOT / "var").mkdir(exist_ok=True)
    env = {"DJANGO_SETTINGS_MODULE": "nexus_project.settings.local", "LOG_LEVEL": "WARNING"}
    env.setdefault("DATABASE_URL", os.environ.get("DATABASE_URL") or f"sqlite:///{ROOT / 'var' / 'bench.sqlite3'}")
    env["REDIS_URL"] = with_db(os.environ.get("REDIS_URL") or resolve_redis_url()[0], int(os.environ.get("BENCH_REDIS_DB", 14)))
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import redis

    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    return env


class Worker:
    """A Celery worker subprocess: Nexus's app by default; ``app``/``cwd``/``env`` for another one
    (bench/plain_celery.py, the plain-chain floor). An ``env`` value of None removes the variable."""

    def __init__(self, concurrency: int = 4, queues: str | None = None,  # None: settings.NEXUS_QUEUES
                 app: str = "nexus_project", cwd: Path = ROOT, env: dict | None = None, name: str = "bench"):
        self.log = ROOT / "var" / f"{name}-worker.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, "worker", "-P", "prefork", "-c", str(concurrency),
             *(["-Q", queues] if queues else []), "--without-gossip", "--without-mingle", "-l", "INFO",
             "-n", f"{name}-{os.getpid()}@%h"],
            cwd=cwd, env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while "ready." not in self.log.read_text():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(self.log.read_text()[-2000:])
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the worker and its pool processes (from /proc):
        the load-independent figure beside the wall time on a shared machine."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == self.process.pid or ppid == self.process.pid:
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min, {os.cpu_count()} CPUs)"


def database_kind() -> str:
    url = os.environ.get("DATABASE_URL", "sqlite")
    return "postgresql" if url.startswith(("postgres", "pgsql")) else "sqlite"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * len(ordered) * 1000) // 1000))
    return ordered[min(rank, len(ordered)) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
