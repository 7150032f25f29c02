"""Real processes for the tests that start, stop and SIGKILL them: one process-group class, the
commands and environment of worker / beat / shell subprocesses on the test database, and a
redis-server of a test's own (a Redis that may be killed without touching the suite's)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

from nexus_project.runtime import EmbeddedRedis, redis_answers
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]  # the project: subprocesses run here


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def subprocess_env(**extra: str) -> dict:
    """A Django subprocess's environment on the test database: this process's environment as it is
    now (tests monkeypatch REDIS_URL and clocks into it), then `extra`."""
    return {**os.environ, "NEXUS_USE_TEST_DB": "1", "DJANGO_SETTINGS_MODULE": "nexus_project.settings.test",
            "PYTHONPATH": str(ROOT), **extra}


def celery_worker_command(queues: str | None, concurrency: int, name: str) -> list[str]:
    """A prefork worker that also loads the test-only step types (tests.workflows_app.support);
    queues: a -Q list, or None for settings.NEXUS_QUEUES (as the Procfile's worker)."""
    return [sys.executable, "-m", "celery", "-A", "nexus_project", "worker", "-P", "prefork", "-c", str(concurrency),
            *(["-Q", queues] if queues else []), "--include", "tests.workflows_app.support", "-n", f"{name}@%h",
            "--without-gossip", "--without-mingle", "--loglevel", "INFO"]


def celery_beat_command(*options: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "nexus_project", "beat", "--loglevel", "INFO", *options]


def django_shell(code: str, env: dict, timeout: float) -> str:
    """Run Python code in a Django process of its own (`manage.py shell -c`); its stdout."""
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


class ProcessGroup:
    """A subprocess in a session of its own: its signals reach the whole group (a worker's pool
    children, a shell's grandchildren), and nothing the test does to it reaches the test run."""

    def __init__(self, args: list[str], *, env: dict | None = None, log: Path | None = None):
        self.args, self.env, self.log = args, env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> ProcessGroup:
        output = self.log.open("w") if self.log else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=output,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if self.log:
                output.close()  # the child has its own copy
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def text(self) -> str:
        """What it wrote so far (stdout and stderr), when it writes to a log."""
        return self.log.read_text(errors="replace") if self.log else ""

    def wait_for_line(self, needle: str, timeout: float) -> None:
        """Until `needle` is in its log; fails at once, with the log's tail, if the process exits first."""
        def seen() -> bool:
            if needle in self.text():
                return True
            if self.process.poll() is not None:
                raise RuntimeError(self.text()[-3000:])
            return False
        wait_for(seen, timeout=timeout, interval=0.2, message=f"'{needle}' in {self.log.name}")

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole group (also children the leader left behind), and reap the leader."""
        self._signal_group(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 20) -> None:
        """A clean stop (SIGTERM to the group); SIGKILL if it is not over within `timeout` s."""
        if self.alive():
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass  # already gone, group and all


class OwnRedis:
    """A throwaway redis-server (no persistence) that a test may SIGKILL and restart empty on the
    same port. `db` and `socket_timeout` are those of its client()."""

    def __init__(self, parent: Path | None = None, *, db: int = 0, socket_timeout: float | None = None):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = Path(tempfile.mkdtemp(prefix="nexus-own-redis-", dir=parent))
        self.db, self.socket_timeout = db, socket_timeout
        self.server: ProcessGroup | None = None

    def start(self) -> OwnRedis:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.server = ProcessGroup([EmbeddedRedis.server_binary(), "--bind", "127.0.0.1", "--port", str(self.port),
                                    "--dir", str(self.dir), "--save", "", "--appendonly", "no",
                                    "--daemonize", "no"]).start()
        wait_for(lambda: redis_answers(self.url), timeout=30, message=f"own redis on {self.port}")
        return self

    def kill(self) -> None:
        """SIGKILL the server and delete its data directory: it comes back empty."""
        if self.server is not None and self.server.alive():
            self.server.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    stop = kill  # nothing of it is worth a clean stop

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=self.db, decode_responses=True,
                           socket_timeout=self.socket_timeout, socket_connect_timeout=self.socket_timeout)
