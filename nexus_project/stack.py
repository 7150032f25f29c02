"""`make run`: find or start Redis, then run and supervise every process of the Procfile.

    python -m nexus_project.stack run      # everything in the Procfile, Ctrl-C stops it all
    python -m nexus_project.stack redis    # only resolve/start Redis and wait (for scripts)

A process that exits is started again after a delay that doubles with each quick exit (1 s up to
60 s; back to 1 s once it ran for a minute), with a log line saying so: the stack never runs on
without its worker or its beat. Ctrl-C (or SIGTERM) stops every process group, then the embedded
Redis. Everything this stack writes lives in NEXUS_VAR_DIR (default var/), so several stacks can
run side by side with a var dir, PORT and FLOWER_PORT each.

The embedded Redis (when no Redis answers, or NEXUS_REDIS=embedded) records its URL in
<var>/redis.url so any other process started from this checkout finds it; it is stopped, and
the file removed, when the stack stops.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from nexus_project.runtime import (
    BASE_DIR,
    VAR_DIR,
    EmbeddedRedis,
    local_secret,
    recorded_embedded_url,
    resolve_redis_url,
)

RESTART_DELAY_MAX = 60.0
STABLE_AFTER = 60.0  # a process that ran this long before exiting restarts after the shortest delay
STOP_TIMEOUT = 20.0
HEALTH_WAIT = 600.0  # how long the summary waits for /health/ before saying what is still down


def _resolve_redis() -> tuple[str, EmbeddedRedis | None]:
    mode = os.environ.get("NEXUS_REDIS", "auto")
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], None
    if mode == "embedded" and recorded_embedded_url():
        raise SystemExit(f"an embedded Redis for this var dir is already running ({VAR_DIR / 'redis.url'}): "
                         "is the stack up? (another stack needs NEXUS_VAR_DIR of its own)")
    url, source = resolve_redis_url()
    if source in ("system", "embedded") and mode != "embedded":
        return url, None
    embedded = EmbeddedRedis()
    return embedded.start(), embedded


def _flower_basic_auth() -> str:
    """Flower's login: the admin credentials (env, or those `make admin` saved), else a generated one."""
    user = os.environ.get("NEXUS_ADMIN_USER", "admin")
    if os.environ.get("NEXUS_ADMIN_PASSWORD"):
        return f"{user}:{os.environ['NEXUS_ADMIN_PASSWORD']}"
    try:
        saved = dict(line.split(": ", 1) for line in (VAR_DIR / "admin-credentials.txt").read_text().splitlines()
                     if ": " in line)
        return f"{saved['username']}:{saved['password']}"
    except (OSError, KeyError):
        return f"{user}:{local_secret('flower-password', 12)}"


def read_procfile(path: Path) -> dict[str, str]:
    processes = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line.strip())
        if match:
            processes[match.group(1)] = match.group(2)
    return processes


class Supervised:
    """One Procfile process, in a process group of its own, restarted with backoff when it exits."""

    def __init__(self, name: str, command: str, env: dict, width: int):
        self.name, self.command, self.env, self.label = name, command, env, name.ljust(width)
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.quick_exits = 0
        self.restart_at: float | None = 0.0  # start at once

    def say(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {self.label} | {text}", flush=True)

    def start(self) -> None:
        self.process = subprocess.Popen(["/bin/sh", "-c", f"exec {self.command}"], cwd=BASE_DIR, env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                        errors="replace", start_new_session=True)
        self.started_at, self.restart_at = time.monotonic(), None
        threading.Thread(target=self._pump, args=(self.process,), daemon=True).start()

    def _pump(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.say(line.rstrip())

    def check(self, now: float) -> None:
        """Start it when due; notice an exit and schedule the restart."""
        if self.process is None or self.process.poll() is not None:
            if self.restart_at is None:  # it just exited
                ran = now - self.started_at
                self.quick_exits = 0 if ran >= STABLE_AFTER else self.quick_exits + 1
                delay = min(RESTART_DELAY_MAX, 2.0 ** max(0, self.quick_exits - 1))
                self.restart_at = now + delay
                print(f"nexus: {self.name} exited with code {self.process.returncode} after {ran:.0f} s; "
                      f"restarting in {delay:.0f} s", flush=True)
            elif now >= self.restart_at:
                if self.process is not None:
                    print(f"nexus: restarting {self.name}", flush=True)
                self.start()

    def signal(self, signum: int) -> None:
        """To the process itself, not its group: a Celery worker's warm shutdown lets its pool finish
        the tasks in hand; SIGTERM to the whole group killed the pool processes under it (lost tasks,
        WorkerLostError tracebacks on every Ctrl-C)."""
        if self.process and self.process.poll() is None:
            try:
                os.kill(self.process.pid, signum)
            except ProcessLookupError:
                pass

    def kill_group(self) -> None:
        """SIGKILL whatever is left in its group (pool children outliving their parent)."""
        if self.process:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _health(port: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=5) as reply:
            return reply.status == 200, ""
    except urllib.error.HTTPError as exc:  # 503 names what is down
        return False, exc.read(2000).decode(errors="replace")
    except (OSError, ValueError) as exc:
        return False, str(exc)


def announce_when_healthy(port: str, flower_port: str, stopping: threading.Event) -> None:
    """Once /health/ says every part is up, print where everything is (the start's logs scroll by)."""
    began = time.monotonic()
    detail = ""
    while not stopping.wait(2.0):
        healthy, detail = _health(port)
        if healthy:
            break
        if time.monotonic() - began > HEALTH_WAIT:
            print(f"nexus: not healthy after {HEALTH_WAIT:.0f} s: {detail[:500]}", flush=True)
            return
    else:
        return
    web = f"http://127.0.0.1:{port}"
    rows = [f"Nexus is up: healthy {time.monotonic() - began:.0f} s after the stack started",
            f"dashboard  {web}/dashboard/",
            f"admin      {web}/admin/   (user: {os.environ.get('NEXUS_ADMIN_USER', 'admin')})",
            f"REST API   {web}/api/v1/   (docs {web}/api/docs/)",
            f"MCP        {web}/mcp   health {web}/health/",
            f"Flower     http://127.0.0.1:{flower_port}/   (same user and password)",
            f"password and API token: {VAR_DIR / 'admin-credentials.txt'}",
            "Ctrl-C stops everything"]
    width = max(map(len, rows))
    box = ["+" + "-" * (width + 2) + "+", *(f"| {row.ljust(width)} |" for row in rows), "+" + "-" * (width + 2) + "+"]
    print("\n".join(box), flush=True)


def supervise(procfile: Path, env: dict) -> int:
    commands = read_procfile(procfile)
    width = max(map(len, commands), default=0)
    children = [Supervised(name, command, env, width) for name, command in commands.items()]
    stopping = threading.Event()

    def stop(signum, frame):
        if not stopping.is_set():
            print("nexus: stopping...", flush=True)
            stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if "web" in commands:
        threading.Thread(target=announce_when_healthy, args=(env.get("PORT", "8000"), env.get("FLOWER_PORT", "5555"),
                                                             stopping), daemon=True).start()
    try:
        while not stopping.is_set():
            now = time.monotonic()
            for child in children:
                child.check(now)
            stopping.wait(0.2)
    finally:
        for child in children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in children:
            if child.process:
                try:
                    child.process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    print(f"nexus: {child.name} did not stop in {STOP_TIMEOUT:.0f} s: killed", flush=True)
            child.kill_group()
    return 0


def run() -> int:
    url, embedded = _resolve_redis()
    print(f"nexus: Redis at {url} ({'embedded, started by this stack' if embedded else 'already running'})", flush=True)
    try:
        env = {**os.environ, "REDIS_URL": url, "NEXUS_REDIS_SOURCE": "embedded" if embedded else "external",
               "NEXUS_VAR_DIR": str(VAR_DIR)}
        env.setdefault("NEXUS_WEBHOOK_SECRETS", f"local:{local_secret('webhook-secret')}")
        env.setdefault("FLOWER_BASIC_AUTH", _flower_basic_auth())
        port = env.setdefault("PORT", "8000")
        flower_port = env.setdefault("FLOWER_PORT", "5555")
        print(f"nexus: web      http://127.0.0.1:{port}/  (admin /admin/, API /api/v1/, docs /api/docs/, health /health/)")
        print(f"nexus: flower   http://127.0.0.1:{flower_port}/  (login: the admin user and password)", flush=True)
        procfile = Path(os.environ.get("NEXUS_PROCFILE", BASE_DIR / "Procfile"))
        return supervise(procfile, env)
    finally:
        if embedded:
            embedded.stop()
            print("nexus: embedded Redis stopped", flush=True)


def redis_only() -> int:
    url, embedded = _resolve_redis()
    print(url, flush=True)
    if embedded is None:
        return 0
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        embedded.stop()
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    sys.exit({"run": run, "redis": redis_only}[command]())
