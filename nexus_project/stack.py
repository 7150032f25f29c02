"""`make run`: find or start Redis, then run web + worker + beat + Flower under honcho.

    python -m nexus_project.stack run      # everything in the Procfile, Ctrl-C stops it all
    python -m nexus_project.stack redis    # only resolve/start Redis and wait (for scripts)

The embedded Redis (when no Redis answers, or NEXUS_REDIS=embedded) records its URL in
var/redis.url so any other process started from this checkout finds it; it is stopped, and
the file removed, when the stack stops.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from nexus_project.runtime import BASE_DIR, EmbeddedRedis, recorded_embedded_url, resolve_redis_url


def _resolve_redis() -> tuple[str, EmbeddedRedis | None]:
    mode = os.environ.get("NEXUS_REDIS", "auto")
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], None
    if mode == "embedded" and recorded_embedded_url():
        raise SystemExit("an embedded Redis for this checkout is already running (var/redis.url): is the stack up?")
    url, source = resolve_redis_url()
    if source in ("system", "embedded") and mode != "embedded":
        return url, None
    embedded = EmbeddedRedis()
    return embedded.start(), embedded


def _local_webhook_secret() -> str:
    """A per-checkout webhook secret for source `local` (kept in var/, readable only by you)."""
    import secrets

    path = BASE_DIR / "var" / "webhook-secret"
    if not path.exists():
        path.write_text(secrets.token_hex(24))
        path.chmod(0o600)
    return path.read_text().strip()


def run() -> int:
    url, embedded = _resolve_redis()
    print(f"nexus: Redis at {url} ({'embedded, started by this stack' if embedded else 'already running'})", flush=True)
    env = {**os.environ, "REDIS_URL": url, "NEXUS_REDIS_SOURCE": "embedded" if embedded else "external"}
    env.setdefault("NEXUS_WEBHOOK_SECRETS", f"local:{_local_webhook_secret()}")
    port = env.setdefault("PORT", "8000")
    flower_port = env.setdefault("FLOWER_PORT", "5555")
    print(f"nexus: web      http://127.0.0.1:{port}/  (admin /admin/, API /api/v1/, docs /api/docs/, health /health/)")
    print(f"nexus: flower   http://127.0.0.1:{flower_port}/", flush=True)
    honcho = subprocess.Popen([sys.executable, "-m", "honcho", "start", "-f", str(BASE_DIR / "Procfile")],
                              cwd=BASE_DIR, env=env, start_new_session=True)
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        if not stopping:
            stopping = True
            print("nexus: stopping...", flush=True)
            try:
                os.killpg(honcho.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while honcho.poll() is None:
            time.sleep(0.2)
    finally:
        try:
            honcho.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
        try:  # anything honcho left behind in its session
            os.killpg(honcho.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if embedded:
            embedded.stop()
            print("nexus: embedded Redis stopped", flush=True)
    return 0 if stopping else (honcho.returncode or 0)


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
