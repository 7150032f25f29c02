"""`make run`'s supervisor (nexus_project.stack): a process that dies is restarted with a log line,
Ctrl-C stops everything (process groups, the embedded Redis), and all it writes is in NEXUS_VAR_DIR."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from nexus_project.runtime import redis_answers
from tests.support.processes import ROOT, ProcessGroup, free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_stack_restarts_a_dead_process_and_ctrl_c_leaves_nothing_behind(tmp_path):
    var = tmp_path / "fresh-var"  # does not exist yet: a fresh clone pointed elsewhere
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "steady: sh -c 'sleep 600 & echo $! > \"$NEXUS_VAR_DIR/grandchild.pid\"; echo $$ > \"$NEXUS_VAR_DIR/steady.pid\"; wait'\n"
        "flaky: sh -c 'echo flaky up; sleep 0.2; exit 3'\n")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "FLOWER_BASIC_AUTH", "NEXUS_ADMIN_PASSWORD")}
    env.update(NEXUS_VAR_DIR=str(var), NEXUS_PROCFILE=str(procfile), NEXUS_REDIS="embedded", PYTHONPATH=str(ROOT))
    log = tmp_path / "stack.log"
    stack = ProcessGroup([sys.executable, "-m", "nexus_project.stack", "run"], env=env, log=log).start()
    try:
        wait_for(lambda: log.read_text().count("nexus: restarting flaky") >= 2, timeout=60,
                 message="flaky restarted twice")
        text = log.read_text()
        assert "nexus: flaky exited with code 3" in text
        assert "restarting in 1 s" in text and "restarting in 2 s" in text  # backoff doubles
        assert text.count("flaky up") >= 2
        url = (var / "redis.url").read_text().strip()
        assert redis_answers(url)
        assert (var / "webhook-secret").stat().st_mode & 0o077 == 0
        assert not (ROOT / "var" / "fresh-var").exists()
        steady = int(wait_for(lambda: (var / "steady.pid").exists() and (var / "steady.pid").read_text().strip(),
                              message="steady started"))
        grandchild = int(wait_for(lambda: (var / "grandchild.pid").exists()
                                  and (var / "grandchild.pid").read_text().strip(), message="grandchild started"))
        assert "restarting steady" not in text and _alive(steady) and _alive(grandchild)

        stack.process.send_signal(signal.SIGINT)  # Ctrl-C
        assert stack.wait(60) == 0
    finally:
        if stack.alive():
            stack.kill()
    text = log.read_text()
    assert "nexus: stopping..." in text and "nexus: embedded Redis stopped" in text
    assert not redis_answers(url)
    assert not (var / "redis.url").exists()
    wait_for(lambda: not _alive(steady) and not _alive(grandchild), timeout=10, message="children gone")


def _procfile_process(name: str, tmp_path, **env_extra) -> ProcessGroup:
    """Start one process exactly as `make run` does: the Procfile's line, with make run's environment
    (no DEBUG, no SECRET_KEY, a fresh var dir)."""
    from nexus_project.stack import read_procfile

    command = read_procfile(ROOT / "Procfile")[name]
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "FLOWER_BASIC_AUTH")}
    env.update(NEXUS_VAR_DIR=str(tmp_path / "var"), PYTHONPATH=str(ROOT),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", **env_extra)
    return ProcessGroup(["/bin/sh", "-c", f"exec {command}"], env=env, log=tmp_path / f"{name}.log").start()


def _get(url: str, auth: tuple[str, str] | None = None):
    import base64
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError:
        return None, ""


def test_make_run_web_has_no_debug_page_and_its_own_secret_key(tmp_path):
    port = free_port()
    web = _procfile_process("web", tmp_path, PORT=str(port))
    try:
        status, body = wait_for(lambda: (lambda r: r if r[0] else None)(_get(f"http://127.0.0.1:{port}/no-such-page/")),
                                timeout=90, interval=0.5, message=f"web answering ({tmp_path / 'web.log'})")
        assert status == 404
        assert "URLconf" not in body and "DEBUG = True" not in body and "api/v1" not in body  # not the debug page
        static = _get(f"http://127.0.0.1:{port}/static/admin/css/base.css")  # WhiteNoise serves static without DEBUG
        assert static[0] == 200 and "body" in static[1]
        assert _get(f"http://127.0.0.1:{port}/admin/login/")[0] in (200, 500)  # served (no database migrated here)
    finally:
        web.kill()
    key = tmp_path / "var" / "secret-key"
    assert key.stat().st_mode & 0o077 == 0 and len(key.read_text().strip()) >= 50
    assert "dev-insecure" not in key.read_text()


def test_make_run_flower_wants_the_admin_login(tmp_path):
    port = free_port()
    flower = _procfile_process("flower", tmp_path, FLOWER_PORT=str(port), FLOWER_BASIC_AUTH="admin:s3cret-pw",
                               REDIS_URL="redis://127.0.0.1:1/0")  # no broker needed to answer HTTP
    try:
        status, _ = wait_for(lambda: (lambda r: r if r[0] else None)(_get(f"http://127.0.0.1:{port}/")),
                             timeout=90, interval=0.5, message=f"flower answering ({tmp_path / 'flower.log'})")
        assert status == 401
        assert _get(f"http://127.0.0.1:{port}/", auth=("admin", "wrong"))[0] == 401
        assert _get(f"http://127.0.0.1:{port}/", auth=("admin", "s3cret-pw"))[0] == 200
    finally:
        flower.kill()
