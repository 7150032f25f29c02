"""Event ingestion: through the events queue, deduplicated, signed webhooks, firing workflows."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.support.waiting import wait_for
from workflows_app import operations, queues
from workflows_app.errors import OperationError
from workflows_app.models import AuditEvent, Execution
from workflows_app.services import events

pytestmark = pytest.mark.django_db(transaction=True)


def _workflow(triggers, steps=None) -> str:
    return operations.workflow_create(name=f"wf-{uuid.uuid4().hex[:8]}", triggers=triggers,
                                      steps=steps or [{"name": "s", "type": "test_noop"}])["workflow_id"]


def test_the_same_event_delivered_three_times_within_the_window_starts_one_execution(celery_worker, default_queues):
    workflow_id = _workflow([{"type": "event", "name": "earnings_released", "cooldown": 0}])
    event_id = uuid.uuid4().hex
    replies = [operations.event_ingest(kind="event", payload={"name": "earnings_released", "symbol": "AAPL"},
                                       event_id=event_id) for _ in range(3)]
    assert [r["deduplicated"] for r in replies] == [False, True, True]
    wait_for(lambda: Execution.objects.filter(workflow_id=workflow_id).exists(), message="an execution")
    time.sleep(1.0)  # give duplicates every chance to show up
    assert Execution.objects.filter(workflow_id=workflow_id).count() == 1
    execution = Execution.objects.get(workflow_id=workflow_id)
    assert execution.trigger == "event" and execution.trigger_event["id"] == event_id
    assert execution.input_data["event"]["name"] == "earnings_released"
    assert execution.input_data["symbols"] == ["AAPL"]
    fired = AuditEvent.objects.get(event="trigger_fired", workflow_id=workflow_id)
    assert fired.data["event"]["id"] == event_id and fired.execution_id == execution.id
    # a different event (cooldown 0) is a new firing: it was deduplication, not the cooldown
    operations.event_ingest(kind="event", payload={"name": "earnings_released"}, event_id=uuid.uuid4().hex)
    wait_for(lambda: Execution.objects.filter(workflow_id=workflow_id).count() == 2, message="a second execution")
    status = operations.workflow_status(workflow_id=workflow_id)
    assert status["triggers"][0]["last_fired_at"] is not None


def test_event_conditions_and_cooldown(celery_worker, default_queues):
    workflow_id = _workflow([{"type": "event", "name": "risk", "conditions": ["exposure > 0.5"], "cooldown": 60}])
    operations.event_ingest(kind="event", payload={"name": "risk", "data": {"exposure": 0.2}})
    operations.event_ingest(kind="event", payload={"name": "risk", "data": {"exposure": 0.9}})
    operations.event_ingest(kind="event", payload={"name": "risk", "data": {"exposure": 0.95}})  # within cooldown
    wait_for(lambda: Execution.objects.filter(workflow_id=workflow_id).exists())
    wait_for(lambda: queues.status("events")["total_messages"] == 0, message="events queue drained")
    assert Execution.objects.filter(workflow_id=workflow_id).count() == 1
    assert Execution.objects.get(workflow_id=workflow_id).trigger_event["data"]["exposure"] == 0.9


def test_classify_uses_the_events_severity_and_priority(celery_worker, default_queues):
    workflow_id = _workflow([{"type": "event", "name": "alert", "cooldown": 0}], steps=[
        {"name": "event_classifier", "type": "classify", "params": {"categories": ["urgent", "normal", "ignore"]}}])
    operations.event_ingest(kind="event", payload={"name": "alert", "severity": 0.9})
    operations.event_ingest(kind="event", payload={"name": "alert", "priority": "low", "severity": 0.1})

    def finished():
        done = Execution.objects.filter(workflow_id=workflow_id, status="succeeded")
        return list(done) if done.count() == 2 else None

    categories = sorted(e.context["event_classifier"]["category"] for e in wait_for(finished))
    assert categories == ["ignore", "urgent"]


def test_manual_event_input_is_checked(default_queues):
    with pytest.raises(OperationError) as err:
        operations.event_ingest(kind="bad kind!", payload={})
    assert err.value.details["field"] == "kind"
    with pytest.raises(OperationError) as err:
        operations.event_ingest(kind="event", payload={"priority": "urgent"})
    assert err.value.details["field"] == "payload.priority"


# --- webhooks -----------------------------------------------------------------------------------
SECRET = "s3cret-for-tests"


@pytest.fixture
def webhook_secret(settings):
    settings.NEXUS_WEBHOOK_SECRETS = {"tradingview": SECRET}
    settings.NEXUS_WEBHOOK_TOLERANCE = 300


def _signed(body: bytes, *, secret=SECRET, at=None):
    ts = int(at if at is not None else time.time())
    return {"source": "tradingview", "body": body, "timestamp": str(ts), "signature": events.sign(secret, ts, body)}


def test_webhook_signatures_good_bad_replayed_stale(webhook_secret, default_queues):
    body = json.dumps({"event": "alert", "id": uuid.uuid4().hex, "symbol": "AAPL"}).encode()
    good = _signed(body)
    reply = operations.webhook_receive(**good)
    assert reply["success"] and reply["queue"] == "events" and not reply["deduplicated"]

    def refused(**kwargs):
        with pytest.raises(OperationError) as err:
            operations.webhook_receive(**kwargs)
        assert err.value.code == "PERMISSION_DENIED"
        return err.value.details["reason"]

    assert refused(**good) == "replayed"
    assert refused(**_signed(body, secret="wrong")) == "bad_signature"
    tampered = {**_signed(body), "body": body.replace(b"AAPL", b"TSLA")}
    assert refused(**tampered) == "bad_signature"
    assert refused(**_signed(body, at=time.time() - 301)) == "stale"
    assert refused(**_signed(body, at=time.time() + 400)) == "stale"
    assert refused(**{**_signed(body), "source": "unknown"}) == "unknown_source"
    assert refused(**{**_signed(body), "timestamp": "yesterday"}) == "bad_timestamp"
    prefixed = _signed(json.dumps({"event": "alert", "n": 2}).encode())
    prefixed["signature"] = "sha256=" + prefixed["signature"]
    assert operations.webhook_receive(**prefixed)["success"]


def test_secrets_from_the_environment_string(settings):
    from nexus_project.settings.base import app_settings_from

    # the environment's string, handed on by settings as is
    settings.NEXUS_WEBHOOK_SECRETS = app_settings_from({"NEXUS_WEBHOOK_SECRETS": "a:one, b:two,broken"})[
        "NEXUS_WEBHOOK_SECRETS"]
    assert events.webhook_secrets() == {"a": "one", "b": "two"}
    settings.NEXUS_WEBHOOK_SECRETS = None
    assert events.webhook_secrets() == {}


def test_signed_webhook_starts_its_workflow(celery_worker, webhook_secret, default_queues):
    workflow_id = _workflow([{"type": "webhook", "source": "tradingview", "event": "alert", "cooldown": 0}])
    other = _workflow([{"type": "webhook", "source": "tradingview", "event": "other"}])
    body = json.dumps({"event": "alert", "symbol": "MSFT", "price": 410.2}).encode()
    operations.webhook_receive(**_signed(body))
    execution = wait_for(lambda: Execution.objects.filter(workflow_id=workflow_id).first())
    assert execution.trigger == "webhook" and execution.input_data["event"]["price"] == 410.2
    assert execution.input_data["event"]["source"] == "tradingview"
    time.sleep(0.3)
    assert not Execution.objects.filter(workflow_id=other).exists()


def test_a_firing_is_started_once_per_event_even_when_redelivered(redis_test_client):
    from workflows_app.models import Trigger
    from workflows_app.services import triggers

    workflow_id = _workflow([{"type": "event", "name": "x", "cooldown": 0}])
    trigger = Trigger.objects.get(workflow_id=workflow_id)
    event = events.make_event("event", {"name": "x"}, event_id="same-event")
    assert triggers.fire(trigger.pk, event) is not None
    assert triggers.fire(trigger.pk, event) is None  # a redelivered batch
    assert triggers.fire(trigger.pk, {**event, "id": "another"}) is not None
    assert Execution.objects.filter(workflow_id=workflow_id).count() == 2


def test_a_webhook_retried_three_times_with_fresh_signatures_starts_one_execution(celery_worker, webhook_secret,
                                                                                  default_queues):
    workflow_id = _workflow([{"type": "webhook", "source": "tradingview", "cooldown": 0}])
    body = json.dumps({"event": "alert", "id": uuid.uuid4().hex, "symbol": "AAPL"}).encode()
    now = int(time.time())  # one reading: three distinct signed seconds, however slow the calls
    replies = [operations.webhook_receive(**_signed(body, at=now - n)) for n in range(3)]
    assert [r["deduplicated"] for r in replies] == [False, True, True]
    wait_for(lambda: Execution.objects.filter(workflow_id=workflow_id).exists())
    wait_for(lambda: queues.status("events")["total_messages"] == 0, message="events queue drained")
    time.sleep(0.3)
    assert Execution.objects.filter(workflow_id=workflow_id).count() == 1
