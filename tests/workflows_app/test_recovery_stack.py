"""`make run`'s supervisor (nexus_project.stack): a process that dies is restarted with a log line,
Ctrl-C stops everything (process groups, the embedded Redis), and all it writes is in NEXUS_VAR_DIR."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from nexus_project.runtime import redis_answers
from tests.conftest import ROOT, wait_for

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
    stack = subprocess.Popen([sys.executable, "-m", "nexus_project.stack", "run"], cwd=ROOT, env=env,
                             stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
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

        stack.send_signal(signal.SIGINT)  # Ctrl-C
        assert stack.wait(60) == 0
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
    text = log.read_text()
    assert "nexus: stopping..." in text and "nexus: embedded Redis stopped" in text
    assert not redis_answers(url)
    assert not (var / "redis.url").exists()
    wait_for(lambda: not _alive(steady) and not _alive(grandchild), timeout=10, message="children gone")
