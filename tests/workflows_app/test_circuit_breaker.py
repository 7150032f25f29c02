"""Circuit breaker: transitions on a controlled clock (real Redis), and in a workflow."""
import uuid

import pytest

from tests.workflows_app.helpers import create, run
from workflows_app.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def breaker(redis_test_client, db):  # transitions are also written to the database (CircuitState)
    clock = Clock()
    cb = CircuitBreaker(f"test-{uuid.uuid4()}", failure_threshold=3, timeout_duration=60, reset_timeout=300,
                        clock=clock, client=redis_test_client)
    yield cb, clock
    cb.reset()


def test_closed_opens_after_threshold_within_window(breaker):
    cb, clock = breaker
    assert cb.acquire("e1")[0] is True
    cb.record_failure()
    clock.now += 30
    cb.record_failure()
    assert cb.snapshot()["state"] == CLOSED
    cb.record_failure()
    assert cb.snapshot()["state"] == OPEN
    allowed, snap = cb.acquire("e2")
    assert allowed is False and snap["state"] == OPEN


def test_failures_outside_the_window_do_not_count(breaker):
    cb, clock = breaker
    cb.record_failure()
    cb.record_failure()
    clock.now += 61
    cb.record_failure()
    assert cb.snapshot()["state"] == CLOSED


def test_half_open_lets_one_trial_through_and_success_closes(breaker):
    cb, clock = breaker
    for _ in range(3):
        cb.record_failure()
    clock.now += 299
    assert cb.snapshot()["state"] == OPEN
    clock.now += 1
    assert cb.snapshot()["state"] == HALF_OPEN
    assert cb.acquire("trial")[0] is True
    assert cb.acquire("other")[0] is False  # only one trial
    assert cb.acquire("trial")[0] is True   # the trial's own redelivery still passes
    cb.record_success()
    assert cb.snapshot()["state"] == CLOSED
    assert cb.acquire("anyone")[0] is True


def test_half_open_trial_failure_reopens(breaker):
    cb, clock = breaker
    for _ in range(3):
        cb.record_failure()
    clock.now += 300
    assert cb.acquire("trial")[0] is True
    cb.record_failure()
    snap = cb.snapshot()
    assert snap["state"] == OPEN and snap["opened_at"] == clock.now


def test_success_outside_a_trial_does_not_close_an_open_circuit(breaker):
    cb, _ = breaker
    for _ in range(3):
        cb.record_failure()
    cb.record_success()
    assert cb.snapshot()["state"] == OPEN


@pytest.mark.django_db(transaction=True)
def test_protected_trader_opens_after_failures_and_skips_the_trade(celery_worker):
    name = f"breaker-{uuid.uuid4().hex[:8]}"
    wf = create("protected", [
        {"name": "check_circuit", "type": "circuit_breaker",
         "params": {"failure_threshold": 2, "timeout_duration": 60, "reset_timeout": 300, "name": name}},
        {"name": "execute_if_open", "type": "conditional", "condition": "circuit_status == 'closed'",
         "actions": ["test_fail"]},
    ])
    first, second = run(wf), run(wf)
    assert first.status == second.status == "failed"  # the protected action failed (test_fail retries fast)
    assert CircuitBreaker(name).snapshot()["state"] == OPEN
    third = run(wf)
    assert third.status == "succeeded"
    assert third.context["check_circuit"]["circuit_status"] == "open"
    assert third.context["execute_if_open"]["matched"] is False
    CircuitBreaker(name).reset()
