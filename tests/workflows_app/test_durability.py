"""Accepted means durable: every guard that decides whether money moves survives Redis losing its
data. Each test that flushes Redis flushes a redis-server it started itself (``OwnRedis``, in
tests/support/processes.py), never the suite's; the services in this process are pointed at it for
the test."""
from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta

import pytest
import redis
from django.db import connection
from django.utils import timezone

from tests.support.processes import OwnRedis
from tests.support.waiting import wait_for
from tests.workflows_app.helpers import create
from workflows_app import circuit, guards, operations, queues
from workflows_app.errors import OperationError
from workflows_app.models import Execution, Guard, InboxMessage, Trigger
from workflows_app.queues import inbox, layout
from workflows_app.services import events, triggers
from workflows_app.services.triggers import index as trigger_index

pytestmark = pytest.mark.django_db(transaction=True)


# Overrides the package's own_redis (tests/workflows_app/conftest.py, for subprocesses): here the
# services of this very process are pointed at the server, and the fixture gives (server, client).
@pytest.fixture
def own_redis(monkeypatch):
    """The services of this process talk to a Redis this test owns (and may flush)."""
    server = OwnRedis().start()
    client = server.client()
    monkeypatch.setattr(circuit, "_client", client)
    layout._groups_ready.clear()
    yield server, client
    layout._groups_ready.clear()
    trigger_index._index = None  # built against the other Redis
    server.stop()


def _lose_redis(client: redis.Redis) -> None:
    client.flushall()  # the test's own server: a Redis restarted empty, as far as Nexus can tell
    layout._groups_ready.clear()


def pull_queue(**config) -> str:
    name = f"dq-{uuid.uuid4().hex[:10]}"
    operations.queue_create(name=name, **config)
    return name


# --- the generic guard --------------------------------------------------------------------------
def test_a_guard_is_claimed_once_until_it_expires():
    scope, key = "test", uuid.uuid4().hex
    now = timezone.now()
    assert guards.claim(scope, key, 60, value="first", now=now)
    assert not guards.claim(scope, key, 60, value="second", now=now + timedelta(seconds=59))
    assert guards.holder(scope, key, now=now).value == "first"
    assert guards.claim(scope, key, 60, value="third", now=now + timedelta(seconds=61))  # expired: taken over
    assert Guard.objects.get(scope=scope, key=key).value == "third"
    long_key = "x" * 600  # ids longer than the column are digested, still one guard per id
    assert guards.claim(scope, long_key, 60) and not guards.claim(scope, long_key, 60)
    assert guards.prune(now=now + timedelta(days=1)) >= 2
    assert not Guard.objects.filter(scope=scope).exists()


def test_two_claimers_at_once_one_wins():
    scope, key = "race", uuid.uuid4().hex
    barrier = threading.Barrier(8)
    wins = []

    def claimer(n):
        try:
            barrier.wait()
            wins.append(guards.claim(scope, key, 60, value=str(n)))
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]


# --- queue messages and their deduplication -----------------------------------------------------
def test_accepted_messages_come_back_after_redis_loses_them_and_dedup_holds(own_redis):
    _server, client = own_redis
    name = pull_queue()
    sent = [operations.queue_send(queue_name=name, message={"n": n}, deduplication_id=f"m-{n}") for n in range(3)]
    assert all(s["message_id"] and not s["deduplicated"] for s in sent)
    assert InboxMessage.objects.filter(queue_name=name, state="pending").count() == 3
    got = operations.queue_receive(queue_name=name, max_messages=1)["messages"]
    assert got[0]["body"] == {"n": 0}
    operations.queue_ack(queue_name=name, message_ids=[got[0]["message_id"]])
    assert InboxMessage.objects.get(queue_name=name, dedup_id="m-0").state == "acked"

    _lose_redis(client)
    assert operations.workflow_queue_status(queue_name=name)["queues"][0]["messages_available"] == 0
    again = operations.queue_send(queue_name=name, message={"n": 1}, deduplication_id="m-1")
    assert again["deduplicated"]  # the dedup window lives in the database, not in the lost Redis
    report = queues.sweep(name)
    assert report["_inbox_fed"] == 2  # the two accepted and unacknowledged ones, not the acked one
    bodies = [m["body"] for m in operations.queue_receive(queue_name=name, max_messages=10)["messages"]]
    assert bodies == [{"n": 1}, {"n": 2}]
    assert queues.sweep(name).get("_inbox_fed") is None  # fed once per Redis lifetime
    assert InboxMessage.objects.filter(queue_name=name).exclude(epoch=inbox.current_epoch(client)).count() == 1


def test_a_delivery_whose_row_is_already_acknowledged_is_dropped(own_redis):
    """A consumer that marked the row and died before the Redis ack: the redelivery is not run."""
    name = pull_queue(visibility_timeout=0.3)
    operations.queue_send(queue_name=name, message={"once": True})
    first = queues.receive(name, consumer="c1")
    assert [m.body for m in first] == [{"once": True}] and first[0].inbox_id
    inbox.mark([first[0].inbox_id], "acked")  # the database ack happened, the Redis one did not
    time.sleep(0.4)
    assert queues.receive(name, consumer="c2") == []
    status = operations.workflow_queue_status(queue_name=name)["queues"][0]
    assert status["messages_available"] == status["messages_in_flight"] == 0


def test_delayed_messages_wait_in_the_database(own_redis):
    _server, client = own_redis
    name = pull_queue()
    reply = operations.queue_send(queue_name=name, message={"later": True}, delay=0.5)
    assert reply["delay"] == 0.5 and reply["message_id"] is None
    _lose_redis(client)  # nothing of it was in Redis
    time.sleep(0.6)
    queues.sweep(name)
    assert [m["body"] for m in operations.queue_receive(queue_name=name)["messages"]] == [{"later": True}]


def test_dead_lettered_messages_are_not_fed_again(own_redis):
    _server, client = own_redis
    name = pull_queue(visibility_timeout=0.2, max_retries=0)
    operations.queue_send(queue_name=name, message={"bad": True})
    assert len(queues.receive(name)) == 1
    time.sleep(0.3)
    assert queues.receive(name) == []  # its one delivery is used up: dead-lettered
    assert InboxMessage.objects.get(queue_name=name).state == "dead_lettered"
    _lose_redis(client)
    assert inbox.replay(queue_name=name)["fed"] == 0


def test_retention_expires_and_prunes_inbox_rows(own_redis):
    name = pull_queue(message_retention=1)
    operations.queue_send(queue_name=name, message={"old": True})
    later = timezone.now() + timedelta(seconds=5)
    assert inbox.prune(now=later)["expired"] >= 1
    assert InboxMessage.objects.get(queue_name=name).state == "expired"
    assert inbox.prune(now=later + timedelta(seconds=5))["deleted"] >= 1
    assert not InboxMessage.objects.filter(queue_name=name).exists()


# --- events, webhooks, schedules, triggers -------------------------------------------------------
# Overrides the package's default_queues: the queues on this test's own Redis.
@pytest.fixture
def default_queues(own_redis):
    queues.ensure_default_queues()
    return own_redis


def _event_workflow(name: str, cooldown: int = 0) -> str:
    return create(f"dur-{uuid.uuid4().hex[:6]}", [{"name": "s", "type": "test_noop"}],
                  triggers=[{"type": "event", "name": name, "cooldown": cooldown}])


def test_an_event_id_is_deduplicated_across_a_redis_loss(default_queues):
    _server, client = default_queues
    first = operations.event_ingest(kind="event", payload={"name": "x"}, event_id="evt-X")
    assert not first["deduplicated"]
    _lose_redis(client)
    assert operations.event_ingest(kind="event", payload={"name": "x"}, event_id="evt-X")["deduplicated"]


def test_a_trigger_fires_once_per_event_and_keeps_its_cooldown_across_a_redis_loss(default_queues):
    _server, client = default_queues
    once = Trigger.objects.get(workflow_id=_event_workflow("once"))
    event = events.make_event("event", {"name": "once"}, event_id="evt-fired")
    assert triggers.fire(once.pk, event) is not None
    _lose_redis(client)
    assert triggers.fire(once.pk, event) is None  # the same event, replayed after the loss
    cooling = Trigger.objects.get(workflow_id=_event_workflow("cool", cooldown=600))
    assert triggers.fire(cooling.pk, {**event, "id": "c-1"}, cooldown=600) is not None
    _lose_redis(client)
    assert triggers.fire(cooling.pk, {**event, "id": "c-2"}, cooldown=600) is None  # still cooling down
    assert Execution.objects.filter(workflow_id__in=[once.workflow_id, cooling.workflow_id]).count() == 2


def test_a_failed_firing_releases_its_guards(default_queues):
    trigger = Trigger.objects.get(workflow_id=_event_workflow("later", cooldown=600))
    event = events.make_event("event", {"name": "later"}, event_id="evt-later")
    Trigger.objects.filter(pk=trigger.pk).update(enabled=False)
    assert triggers.fire(trigger.pk, event, cooldown=600) is None
    Trigger.objects.filter(pk=trigger.pk).update(enabled=True)
    assert triggers.fire(trigger.pk, event, cooldown=600) is not None


def test_a_schedule_minute_fires_once_across_a_redis_loss(default_queues):
    _server, client = default_queues
    workflow_id = create(f"sched-{uuid.uuid4().hex[:6]}", [{"name": "s", "type": "test_noop"}],
                         triggers=[{"type": "schedule", "cron": "30 9 * * 1-5", "timezone": "America/New_York"}])
    trigger = Trigger.objects.get(workflow_id=workflow_id)
    at = timezone.now().replace(second=5)
    assert events.fire_schedule(trigger.pk, now=at)["fired"]
    _lose_redis(client)
    assert not events.fire_schedule(trigger.pk, now=at.replace(second=40))["fired"]


SECRET = "whsec-durable"


def _signed(body: bytes, at: float) -> dict:
    ts = int(at)
    return {"source": "tradingview", "body": body, "timestamp": str(ts), "signature": events.sign(SECRET, ts, body)}


@pytest.fixture
def webhook_secret(settings):
    settings.NEXUS_WEBHOOK_SECRETS = {"tradingview": SECRET}


def test_a_webhook_signature_cannot_be_replayed_after_a_redis_loss(default_queues, webhook_secret):
    _server, client = default_queues
    signed = _signed(json.dumps({"event": "alert", "id": uuid.uuid4().hex}).encode(), time.time())
    operations.webhook_receive(**signed)
    _lose_redis(client)
    with pytest.raises(OperationError) as err:
        operations.webhook_receive(**signed)
    assert err.value.details["reason"] == "replayed"


def test_a_webhook_without_id_is_deduplicated_by_its_content(default_queues, webhook_secret):
    _server, client = default_queues
    body = json.dumps({"event": "alert", "symbol": "AAPL", "action": "buy"}).encode()
    now = int(time.time())  # one reading: every signature below is of a distinct second, however slow the calls
    replies = [operations.webhook_receive(**_signed(body, now - n)) for n in range(3)]
    assert [r["deduplicated"] for r in replies] == [False, True, True]  # re-signed retries: one event
    _lose_redis(client)
    assert operations.webhook_receive(**_signed(body, now - 5))["deduplicated"]
    reordered = json.dumps({"action": "buy", "symbol": "AAPL", "event": "alert"}, indent=2).encode()
    assert operations.webhook_receive(**_signed(reordered, now - 6))["deduplicated"]  # same content
    other = json.dumps({"event": "alert", "symbol": "AAPL", "action": "sell"}).encode()
    assert not operations.webhook_receive(**_signed(other, now))["deduplicated"]


def test_the_same_webhook_content_after_the_window_is_a_new_event(default_queues, webhook_secret):
    body = json.dumps({"event": "daily-alert", "symbol": "MSFT"}).encode()
    now = int(time.time())  # one reading: distinct signed seconds, however slow the calls
    first = operations.webhook_receive(**_signed(body, now - 1))
    assert operations.webhook_receive(**_signed(body, now))["deduplicated"]
    window = Guard.objects.get(scope="webhook-content:tradingview")
    assert 299 <= (window.expires_at - window.created_at).total_seconds() <= 301  # the events queue's window
    # the clock, driven: the window is over
    Guard.objects.filter(pk=window.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    later = operations.webhook_receive(**_signed(body, now + 1))
    assert not later["deduplicated"] and later["event_id"] != first["event_id"]


def test_a_webhook_body_cannot_claim_another_source(default_queues, webhook_secret):
    """The body's ``source`` is kept as data; webhook triggers match who signed it (ingest_source)."""
    other = create(f"wh-{uuid.uuid4().hex[:6]}", [{"name": "s", "type": "test_noop"}],
                   triggers=[{"type": "webhook", "source": "other-sender", "cooldown": 0}])
    body = json.dumps({"event": "alert", "source": "other-sender", "id": uuid.uuid4().hex}).encode()
    operations.webhook_receive(**_signed(body, time.time()))
    event = json.loads(layout.dumps(InboxMessage.objects.filter(queue_name="events").latest("pk").body))
    assert (event["source"], event["ingest_source"]) == ("other-sender", "tradingview")
    assert triggers.evaluate([event]) == []
    assert not Execution.objects.filter(workflow_id=other).exists()


# --- events keep their payload's source (issue 12) ----------------------------------------------
def test_an_event_keeps_its_payload_source_and_records_the_ingest_source():
    event = events.make_event("news", {"headline": "h", "source": "Reuters"}, source="manual")
    assert (event["source"], event["ingest_source"]) == ("Reuters", "manual")
    plain = events.make_event("event", {"name": "x"}, source="beat")
    assert (plain["source"], plain["ingest_source"]) == ("beat", "beat")


def test_a_reuters_article_through_event_ingest_fires_breaking_news(celery_worker, redis_test_client):
    queues.ensure_default_queues()
    wf = create(f"breaking-{uuid.uuid4().hex[:6]}", [{"name": "s", "type": "test_noop"}],
                triggers=[{"type": "breaking_news", "sources": ["Reuters", "Bloomberg"], "priority": "high",
                           "cooldown": 0}])
    article = {"headline": "BREAKING: Fed cuts rates", "source": "Reuters", "breaking": True, "symbols": ["AAPL"]}
    reply = operations.event_ingest(kind="news", payload=article, event_id=f"news-{uuid.uuid4().hex}")
    assert reply["success"] and not reply["deduplicated"]
    execution = wait_for(lambda: Execution.objects.filter(workflow_id=wf).first(), timeout=30,
                         message="breaking_news fired")
    assert execution.input_data["event"]["source"] == "Reuters"
    assert execution.input_data["event"]["ingest_source"] == "manual"
    blog = {**article, "source": "Some Blog"}
    operations.event_ingest(kind="news", payload=blog, event_id=f"news-{uuid.uuid4().hex}")
    wait_for(lambda: queues.status("events")["total_messages"] == 0, timeout=30, message="events drained")
    assert Execution.objects.filter(workflow_id=wf).count() == 1


# --- circuit breaker state ----------------------------------------------------------------------
def test_an_open_circuit_stays_open_across_a_redis_loss(own_redis):
    _server, client = own_redis
    breaker = circuit.CircuitBreaker(f"dur-{uuid.uuid4().hex[:6]}", failure_threshold=2, reset_timeout=300,
                                     client=client)
    breaker.record_failure()
    breaker.record_failure()
    opened = breaker.snapshot()
    assert opened["state"] == circuit.OPEN
    client.flushall()
    after = breaker.snapshot()
    assert (after["state"], after["opened_at"]) == (circuit.OPEN, opened["opened_at"])
    assert breaker.acquire("someone")[0] is False
    breaker.reset()
