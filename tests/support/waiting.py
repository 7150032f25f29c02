"""Polling with a deadline: the one way tests wait for something another thread or process does."""
from __future__ import annotations

import time


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
