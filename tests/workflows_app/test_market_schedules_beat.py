"""End to end: a real `celery beat` process and a real worker fire a market_schedule at its moment.

The moment must come within the test's time whatever the real date, so the exchange is
exchange_calendars' ``24/7`` calendar (a session every UTC day, 00:00-24:00): ``open+<N>m`` is a
minute or two from now. The XNYS holidays and early closes are covered on a controlled clock
(test_market_schedules); here it is the real processes, the real clock, the real firing path.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.waiting import wait_for
from workflows_app import operations
from workflows_app.models import Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_real_beat_and_worker_fire_a_market_schedule_once_at_its_moment(own_redis, beats, worker_process,
                                                                         default_queues, monkeypatch):
    monkeypatch.setenv("REDIS_URL", own_redis.url)  # the worker subprocess consumes from our Redis
    worker_process(queues="events,workflows", concurrency=2)
    beat = beats(own_redis.url)
    wait_for(lambda: beat.state() == "active", timeout=120, message=f"beat active ({beat.log})")

    target = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    minutes = target.hour * 60 + target.minute  # the 24/7 session opens at 00:00 UTC
    created = operations.workflow_create(
        name=f"market-moment-{time.monotonic_ns()}", steps=[{"name": "s", "type": "test_noop"}],
        triggers=[{"type": "market_schedule", "exchange": "24/7", "at": f"open+{minutes}m"}])
    workflow_id = created["workflow_id"]
    status = operations.workflow_status(workflow_id=workflow_id)["triggers"][0]
    assert datetime.fromisoformat(status["next_run_at"]) == target and len(status["upcoming"]) == 5

    execution = wait_for(lambda: Execution.objects.filter(workflow_id=workflow_id).first(), timeout=420,
                         interval=0.5, message=f"the beat fired the market schedule ({beat.log})")
    event = execution.trigger_event
    assert execution.trigger == "market_schedule" and event["exchange"] == "24/7"
    assert datetime.fromisoformat(event["scheduled_for"]) == target  # the moment, not when the worker ran
    time.sleep(5)  # anything sent twice would have been consumed by now (the events queue is fast)
    assert Execution.objects.filter(workflow_id=workflow_id).count() == 1
    today = operations.workflow_status(workflow_id=workflow_id)["triggers"][0]["today"]
    assert today["fired"] == [target.isoformat()] or target.date() != datetime.now(UTC).date()
