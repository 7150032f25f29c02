"""Dead-letter processing: rate_limit -> retry with backoff, invalid_symbol -> discard, else alert."""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support.waiting import wait_for
from workflows_app import operations, queues
from workflows_app.errors import OperationError
from workflows_app.event_tasks import process_dead_letters as process_task
from workflows_app.models import AuditEvent, DeadLetter, Execution
from workflows_app.services import deadletters

pytestmark = pytest.mark.django_db(transaction=True)


def _queue_letter(name: str, error_class: str, body=None) -> DeadLetter:
    return DeadLetter.objects.create(source="queue", queue_name=name, error_class=error_class, error="boom",
                                     payload={"body": body or {"symbol": "AAPL"}, "group_id": "AAPL"})


@pytest.fixture
def queue_name(redis_test_client):
    name = f"dlq-{uuid.uuid4().hex[:8]}"
    operations.queue_create(name=name, deduplication=False)
    return name


def test_policies_per_error_class(queue_name, caplog):
    limited = _queue_letter(queue_name, "rate_limit", {"n": 1})
    bad_symbol = _queue_letter(queue_name, "invalid_symbol", {"symbol": "ZZZZ"})
    broken = _queue_letter(queue_name, "broker_rejected", {"n": 3})
    before = timezone.now()
    with caplog.at_level(logging.WARNING, logger="nexus.notify"):
        reply = operations.process_dead_letters(limit=10)
    after = timezone.now()
    assert reply["processed"] == 3
    assert reply["actions"] == {"retry_scheduled": 1, "discarded": 1, "alerted": 1}
    limited.refresh_from_db(), bad_symbol.refresh_from_db(), broken.refresh_from_db()
    assert limited.status == "retry_scheduled"
    # 60 s after the run, whenever it happened: bounded by the clock read around it, not by speed
    assert before + timedelta(seconds=60) <= limited.next_attempt_at <= after + timedelta(seconds=60)
    assert bad_symbol.status == "discarded"
    assert AuditEvent.objects.get(event="dead_letter_discarded").data["dead_letter_id"] == str(bad_symbol.id)
    assert broken.status == "alerted"
    assert AuditEvent.objects.get(event="operator_alert").data["error_class"] == "broker_rejected"
    assert "operator alert" in caplog.text
    # nothing is due now: a second run does nothing
    assert operations.process_dead_letters()["processed"] == 0
    # once due, the rate-limited message goes back on its queue
    later = deadletters.process_dead_letters(now=timezone.now() + timedelta(seconds=61))
    assert later["actions"] == {"redriven": 1}
    limited.refresh_from_db()
    assert limited.status == "redriven" and limited.redrive_count == 1
    got = operations.queue_receive(queue_name=queue_name)["messages"]
    assert [m["body"] for m in got] == [{"n": 1}]


def test_backoff_doubles_and_gives_up_to_an_operator(settings, queue_name):
    assert [deadletters.backoff(n) for n in range(3)] == [60, 120, 240]
    assert deadletters.backoff(20) == 3600
    letter = _queue_letter(queue_name, "rate_limit")
    letter.redrive_count = 5
    letter.save()
    assert operations.process_dead_letters()["actions"] == {"alerted": 1}


def test_redrive_many_and_refusals(queue_name):
    letters = [_queue_letter(queue_name, "broker_rejected", {"i": i}) for i in range(3)]
    reply = operations.dead_letter_redrive(dead_letter_ids=[str(x.id) for x in letters])
    assert reply["count"] == 3 and {r["status"] for r in reply["redriven"]} == {"redriven"}
    assert sorted(m["body"]["i"] for m in operations.queue_receive(queue_name=queue_name)["messages"]) == [0, 1, 2]
    with pytest.raises(OperationError) as err:
        operations.dead_letter_redrive(dead_letter_id=str(letters[0].id))
    assert err.value.code == "CONFLICT"


def test_the_beat_job_runs_on_the_worker_for_failed_steps(celery_worker, redis_test_client):
    queues.ensure_default_queues()
    created = operations.workflow_create(name=f"dl-{uuid.uuid4().hex[:6]}", steps=[
        {"name": "quote", "type": "test_fail", "params": {"transient": False, "error_class": "invalid_symbol"}}])
    reply = operations.workflow_execute(workflow_id=created["workflow_id"], **{"async": False})
    assert reply["status"] == "failed"
    letter = DeadLetter.objects.get(source="step", workflow_id=created["workflow_id"])
    assert letter.error_class == "invalid_symbol"
    # the dead-letter queue (a view over the store) shows it, as the specification's loop reads it
    dlq = operations.workflow_queue_status(queue_name="dead-letter-queue", include_messages=True)
    assert [m["error"] for m in dlq["messages"]] == ["invalid_symbol"]
    result = process_task.delay().get(timeout=120)
    assert result["actions"] == {"discarded": 1}
    letter.refresh_from_db()
    assert letter.status == "discarded"
    assert operations.workflow_queue_status(queue_name="dead-letter-queue")["queues"][0]["messages_available"] == 0


def test_a_rate_limited_step_is_retried_after_its_backoff(celery_worker, redis_test_client):
    created = operations.workflow_create(name=f"rl-{uuid.uuid4().hex[:6]}", steps=[
        {"name": "quote", "type": "test_flaky", "params": {"failures": 1, "transient": False,
                                                            "error_class": "rate_limit"},
         "retry": {"max_retries": 0}}])
    reply = operations.workflow_execute(workflow_id=created["workflow_id"], **{"async": False})
    assert reply["status"] == "failed"
    letter = DeadLetter.objects.get(source="step", workflow_id=created["workflow_id"])
    assert letter.error_class == "rate_limit"
    assert deadletters.process_dead_letters()["actions"] == {"retry_scheduled": 1}
    deadletters.process_dead_letters(now=timezone.now() + timedelta(seconds=61))
    execution = Execution.objects.get(workflow_id=created["workflow_id"])
    wait_for(lambda: Execution.objects.get(pk=execution.pk).status == "succeeded", message="the retried execution")


def test_the_specifications_dead_letter_loop_works_as_written(queue_name):
    """process_dead_letters() from the tutorial: read the DLQ's messages and act on message["error"]."""
    _queue_letter(queue_name, "rate_limit")
    _queue_letter(queue_name, "invalid_symbol")
    _queue_letter(queue_name, "timeout")
    dlq_status = operations.workflow_queue_status(queue_name="dead-letter-queue")
    handled = {}
    for message in dlq_status["messages"]:
        if message["error"] == "rate_limit":
            handled["retry"] = message["id"]
        elif message["error"] == "invalid_symbol":
            handled["discard"] = message["id"]
        else:
            handled["alert"] = message["id"]
    assert set(handled) == {"retry", "discard", "alert"}
    assert dlq_status["queues"][0]["messages_available"] == 3


def test_a_non_staff_caller_sees_only_their_own_dead_letters(queue_name, django_user_model):
    alice = django_user_model.objects.create_user("alice-dl", password="x")
    mine = operations.workflow_create(name=f"mine-{uuid.uuid4().hex[:6]}", steps=[{"name": "s", "type": "test_noop"}],
                                      user=alice)
    DeadLetter.objects.create(source="step", workflow_id=mine["workflow_id"], error_class="timeout", step_name="s")
    _queue_letter(queue_name, "timeout")  # nobody's workflow: staff only
    seen = operations.workflow_queue_status(queue_name="dead-letter-queue", user=alice)
    assert [m["step"] for m in seen["messages"]] == ["s"]
    assert len(operations.workflow_queue_status(queue_name="dead-letter-queue")["messages"]) == 2
    with pytest.raises(OperationError) as err:
        operations.process_dead_letters(user=alice)
    assert err.value.code == "PERMISSION_DENIED"
