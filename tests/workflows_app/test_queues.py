"""Named queues on Redis Streams: every queue_config setting takes effect (real Redis, real worker)."""
from __future__ import annotations

import random
import threading
import time
import uuid

import pytest

from tests.support.waiting import wait_for
from workflows_app import operations, queues
from workflows_app.errors import OperationError, PermanentStepError
from workflows_app.event_tasks import drain_queue
from workflows_app.models import AuditEvent, DeadLetter
from workflows_app.queues import config as queue_config
from workflows_app.registry import registry

pytestmark = pytest.mark.django_db(transaction=True)


def make_queue(**config) -> str:
    name = f"q-{uuid.uuid4().hex[:10]}"
    operations.queue_create(name=name, **config)
    return name


def test_default_queues_have_the_specification_settings(redis_test_client):
    queues.ensure_default_queues()
    queues.ensure_default_queues()  # idempotent
    listed = {q["name"]: q for q in operations.queue_list()["queues"]}
    assert {"events", "trading-signals", "risk-alerts", "dead-letter-queue"} <= set(listed)
    for name in ("trading-signals", "risk-alerts", "events"):
        config = listed[name]
        assert (config["max_retries"], config["visibility_timeout"], config["message_retention"],
                config["batch_size"], config["ordering"], config["deduplication"]) == (3, 30, 86400, 10, "FIFO", True)


def test_unknown_queue_and_full_queue_are_refused(redis_test_client):
    with pytest.raises(OperationError) as err:
        operations.queue_send(queue_name="nope", message={"a": 1})
    assert err.value.code == "QUEUE_NOT_FOUND"
    with pytest.raises(OperationError) as err:
        operations.workflow_queue_status(queue_name="nope")
    assert err.value.code == "QUEUE_NOT_FOUND"
    name = make_queue(max_messages=2, deduplication=False)
    operations.queue_send(queue_name=name, message={"n": 1})
    operations.queue_send(queue_name=name, message={"n": 2})
    with pytest.raises(OperationError) as err:
        operations.queue_send(queue_name=name, message={"n": 3})
    assert err.value.code == "QUEUE_FULL"
    with pytest.raises(OperationError) as err:
        operations.queue_send(queue_name=name, message={"n": 3}, colour="red")
    assert err.value.details["field"] == "colour"


def test_deduplication_within_the_window(redis_test_client):
    # Windows and timeouts in these tests are Redis-side wall clock: a few seconds each, so the "still
    # inside" half holds on a busy machine and the "past it" half sleeps just beyond.
    name = make_queue(deduplication_window=3)
    first = operations.queue_send(queue_name=name, message={"order": 1}, deduplication_id="sig-1")
    again = [operations.queue_send(queue_name=name, message={"order": 1}, deduplication_id="sig-1") for _ in range(2)]
    assert not first["deduplicated"] and all(r["deduplicated"] for r in again)
    assert {r["message_id"] for r in again} == {first["message_id"]}
    # content-based when no id is given
    a = operations.queue_send(queue_name=name, message={"order": 2})
    b = operations.queue_send(queue_name=name, message={"order": 2})
    assert b["deduplicated"] and b["message_id"] == a["message_id"]
    assert operations.workflow_queue_status(queue_name=name)["total_messages"] == 2
    time.sleep(3.2)  # the window passed: the same id is a new message
    assert not operations.queue_send(queue_name=name, message={"order": 1}, deduplication_id="sig-1")["deduplicated"]
    # deduplication off: every send is a message
    plain = make_queue(deduplication=False)
    for _ in range(3):
        operations.queue_send(queue_name=plain, message={"same": True}, deduplication_id="x")
    assert operations.workflow_queue_status(queue_name=plain)["total_messages"] == 3


def test_unacked_message_reappears_after_visibility_timeout_then_goes_to_the_dead_letter_store(redis_test_client):
    name = make_queue(visibility_timeout=2, max_retries=2)
    sent = operations.queue_send(queue_name=name, message={"type": "trade_signal", "symbol": "AAPL"})
    deliveries = []
    got = operations.queue_receive(queue_name=name, consumer="c1")["messages"]
    deliveries.append(got[0]["delivery_count"])
    assert got[0]["message_id"] == sent["message_id"]
    status = operations.workflow_queue_status(queue_name=name)["queues"][0]
    assert (status["messages_available"], status["messages_in_flight"]) == (0, 1)
    assert operations.queue_receive(queue_name=name, consumer="c2")["messages"] == []  # invisible
    for _ in range(2):
        time.sleep(2.2)
        got = operations.queue_receive(queue_name=name, consumer="c2")["messages"]
        assert [m["message_id"] for m in got] == [sent["message_id"]]
        deliveries.append(got[0]["delivery_count"])
    assert deliveries == [1, 2, 3]  # 1 + max_retries deliveries
    time.sleep(2.2)
    assert operations.queue_receive(queue_name=name, consumer="c2")["messages"] == []
    letter = DeadLetter.objects.get(source="queue", queue_name=name)
    assert letter.error_class == "max_retries_exceeded" and letter.attempts == 3
    assert letter.payload["body"] == {"type": "trade_signal", "symbol": "AAPL"}
    status = operations.workflow_queue_status(queue_name=name)["queues"][0]
    assert (status["messages_available"], status["messages_in_flight"], status["dead_lettered"]) == (0, 0, 1)
    assert AuditEvent.objects.filter(event="message_dead_lettered").count() == 1
    # the dead-letter queue shows it, with its error, as the specification's process_dead_letters expects
    queues.ensure_default_queues()
    dlq = operations.workflow_queue_status(queue_name="dead-letter-queue", include_messages=True)
    assert [m["error"] for m in dlq["messages"]] == ["max_retries_exceeded"]
    # redrive puts it back on its queue
    operations.dead_letter_redrive(dead_letter_id=str(letter.id))
    again = operations.queue_receive(queue_name=name, consumer="c3")["messages"]
    assert again[0]["body"] == {"type": "trade_signal", "symbol": "AAPL"} and again[0]["delivery_count"] == 1


def test_acked_messages_are_gone_and_counted_in_processing_rate(redis_test_client):
    name = make_queue(batch_size=3)
    for i in range(5):
        operations.queue_send(queue_name=name, message={"i": i})
    got = operations.queue_receive(queue_name=name)["messages"]
    assert [m["body"]["i"] for m in got] == [0, 1, 2]  # batch_size
    reply = operations.queue_ack(queue_name=name, message_ids=[m["message_id"] for m in got])
    assert reply["acknowledged"] == 3
    status = operations.workflow_queue_status(queue_name=name, include_messages=True)
    queue = status["queues"][0]
    assert queue["messages_available"] == 2 and queue["messages_in_flight"] == 0
    assert queue["messages_processed"] == 3 and queue["processing_rate"] > 0
    assert queue["oldest_message_age"] >= 0 and status["total_messages"] == 2
    assert [m["body"]["i"] for m in status["messages"]] == [3, 4]


def test_retention_trims_old_messages(redis_test_client):
    name = make_queue(message_retention=3)
    for i in range(3):
        operations.queue_send(queue_name=name, message={"old": i})
    time.sleep(3.2)
    operations.queue_send(queue_name=name, message={"new": 1})
    report = queues.sweep(name)
    assert report[name]["trimmed"] == 3
    status = operations.workflow_queue_status(queue_name=name, include_messages=True)
    assert [m["body"] for m in status["messages"]] == [{"new": 1}]
    assert status["queues"][0]["oldest_message_age"] < 3


def test_delayed_messages_become_available_when_due(redis_test_client):
    name = make_queue()
    operations.queue_send(queue_name=name, message={"later": True}, delay=3)
    queue = operations.workflow_queue_status(queue_name=name)["queues"][0]
    assert (queue["messages_available"], queue["messages_delayed"]) == (0, 1)
    time.sleep(3.2)
    queues.sweep(name)
    queue = operations.workflow_queue_status(queue_name=name)["queues"][0]
    assert (queue["messages_available"], queue["messages_delayed"]) == (1, 0)


# --- push consumers on the worker ---------------------------------------------------------------
def _recorder(message):
    from tests.workflows_app.support import client

    time.sleep(random.uniform(0, 0.01))
    body = message.body
    client().rpush(f"test:fifo:{body['queue']}:{body['group']}", f"{body['seq']}|{threading.get_ident()}")


def _always_fails(message):
    from tests.workflows_app.support import client

    client().incr(f"test:fails:{message.queue}")
    raise RuntimeError("downstream unavailable")


def _permanent(message):
    raise PermanentStepError("no such symbol", error_class="invalid_symbol")


registry.register_queue_handler("test_recorder", _recorder)
registry.register_queue_handler("test_always_fails", _always_fails)
registry.register_queue_handler("test_permanent", _permanent)


def _set_handler(name: str, handler: str) -> None:
    from workflows_app.models import MessageQueue

    MessageQueue.objects.filter(name=name).update(handler=handler)
    queue_config._cache.pop(name, None)


def test_fifo_order_holds_within_a_group_with_two_consumers(celery_worker, redis_test_client):
    name = make_queue(batch_size=2, visibility_timeout=10)
    _set_handler(name, "test_recorder")
    groups = ["AAPL", "MSFT", "TSLA"]
    items = [{"body": {"queue": name, "group": g, "seq": i}, "group_id": g} for i in range(12) for g in groups]
    queues.send_many(name, items, notify=False)
    drain_queue.delay(name)  # two consumers at once
    drain_queue.delay(name)

    def done():
        return all(redis_test_client.llen(f"test:fifo:{name}:{g}") == 12 for g in groups)

    wait_for(done, timeout=120, message="all messages processed")
    threads = set()
    for group in groups:
        rows = [r.split("|") for r in redis_test_client.lrange(f"test:fifo:{name}:{group}", 0, -1)]
        assert [int(seq) for seq, _ in rows] == list(range(12)), group
        threads |= {t for _, t in rows}
    assert len(threads) == 2  # both consumers took part
    status = operations.workflow_queue_status(queue_name=name)
    assert status["total_messages"] == 0 and status["queues"][0]["messages_processed"] == 36


def test_failing_consumer_redelivers_after_visibility_timeout_then_dead_letters(celery_worker, redis_test_client):
    name = make_queue(visibility_timeout=2, max_retries=2)  # longer than a slow attempt: no reclaim mid-attempt
    _set_handler(name, "test_always_fails")
    operations.queue_send(queue_name=name, message={"type": "risk_alert"})

    def dead_lettered():
        queues.sweep(name)  # what beat does every few seconds: schedules a drain that reclaims
        return DeadLetter.objects.filter(queue_name=name).first()

    letter = wait_for(dead_lettered, timeout=120, interval=0.2, message="the message reaching the dead-letter store")
    assert int(redis_test_client.get(f"test:fails:{name}")) == 3  # 1 + max_retries attempts
    assert letter.error_class == "RuntimeError" and "downstream unavailable" in letter.error
    status = operations.workflow_queue_status(queue_name=name)["queues"][0]
    assert status["messages_available"] + status["messages_in_flight"] == 0 and status["dead_lettered"] == 1


def test_permanent_failure_dead_letters_at_once(celery_worker, redis_test_client):
    name = make_queue()
    _set_handler(name, "test_permanent")
    operations.queue_send(queue_name=name, message={"symbol": "ZZZZ"})
    letter = wait_for(lambda: DeadLetter.objects.filter(queue_name=name).first(), timeout=120)
    assert letter.error_class == "invalid_symbol" and letter.attempts == 1


def test_queue_send_step_puts_a_message_on_the_queue(celery_worker, redis_test_client):
    queues.ensure_default_queues()
    created = operations.workflow_create(name=f"sender-{uuid.uuid4().hex[:6]}", steps=[
        {"name": "signal", "type": "transform", "params": {"set": {"signal": "'BUY'", "symbol": "'AAPL'"}}},
        {"name": "send", "type": "queue_send", "params": {"queue": "trading-signals", "include": ["signal", "symbol"],
                                                           "message": {"type": "trade_signal"}}},
    ])
    reply = operations.workflow_execute(workflow_id=created["workflow_id"], **{"async": False})
    assert reply["status"] == "succeeded", reply
    status = operations.workflow_queue_status(queue_name="trading-signals", include_messages=True)
    bodies = [m["body"] for m in status["messages"]]
    assert {"type": "trade_signal", "signal": "BUY", "symbol": "AAPL"}.items() <= bodies[-1].items()
    assert status["messages"][-1]["group_id"] == "AAPL"


def test_a_queue_survives_redis_losing_its_stream(redis_test_client):
    name = make_queue()
    operations.queue_send(queue_name=name, message={"before": True})
    assert operations.queue_receive(queue_name=name)["count"] == 1
    redis_test_client.delete(queues.stream_key(name))  # e.g. Redis restarted without persistence
    status = operations.workflow_queue_status(queue_name=name)["queues"][0]
    assert status["messages_available"] == 0 and status["messages_in_flight"] == 0
    operations.queue_send(queue_name=name, message={"after": True})
    assert [m["body"] for m in operations.queue_receive(queue_name=name)["messages"]] == [{"after": True}]
    redis_test_client.delete(queues.stream_key(name))
    operations.queue_send(queue_name=name, message={"again": True})  # XADD recreates the stream, not the group
    assert [m["body"] for m in operations.queue_receive(queue_name=name)["messages"]] == [{"again": True}]
    assert queues.sweep(name)[name]["trimmed"] == 0


def test_a_queue_consumed_by_a_workflow_starts_one_execution_per_message(celery_worker, redis_test_client):
    from workflows_app.models import Execution

    created = operations.workflow_create(name=f"consumer-{uuid.uuid4().hex[:6]}",
                                         steps=[{"name": "s", "type": "test_echo", "params": {"value": 1}}])
    name = make_queue(workflow_id=created["workflow_id"])
    for symbol in ("AAPL", "MSFT"):
        operations.queue_send(queue_name=name, message={"type": "trade_signal", "symbol": symbol}, group_id=symbol)
    wait_for(lambda: Execution.objects.filter(workflow_id=created["workflow_id"], status="succeeded").count() == 2)
    executions = Execution.objects.filter(workflow_id=created["workflow_id"]).order_by("queued_at")
    assert [e.input_data["symbol"] for e in executions] == ["AAPL", "MSFT"]
    assert all(e.trigger == "queue" and e.trigger_event["queue"] == name for e in executions)
    assert operations.workflow_queue_status(queue_name=name)["queues"][0]["messages_processed"] == 2


@pytest.mark.slow
def test_fifo_per_group_with_two_worker_processes(worker_process, redis_test_client):
    from workflows_app.models import Execution

    created = operations.workflow_create(name=f"fifo-{uuid.uuid4().hex[:6]}", steps=[{"name": "s", "type": "test_noop"}])
    name = make_queue(workflow_id=created["workflow_id"], batch_size=2, visibility_timeout=20)
    first, second = worker_process(concurrency=1), worker_process(concurrency=1)
    groups = ["AAPL", "MSFT", "NVDA"]
    items = [{"body": {"group": g, "seq": i}, "group_id": g} for i in range(8) for g in groups]
    queues.send_many(name, items, notify=False)
    drain_queue.delay(name)
    drain_queue.delay(name)
    wait_for(lambda: Execution.objects.filter(workflow_id=created["workflow_id"]).count() == 24, timeout=120)
    for group in groups:
        seqs = [e.input_data["seq"] for e in Execution.objects.filter(
            workflow_id=created["workflow_id"], input_data__group=group).order_by("queued_at", "id")]
        assert seqs == list(range(8)), group
    consumers = redis_test_client.xinfo_consumers(queues.stream_key(name), queues.GROUP)
    assert len([c for c in consumers if c["name"] != "sweeper"]) >= 2
    assert first.process.poll() is None and second.process.poll() is None


def test_a_drain_asked_for_in_a_rolled_back_transaction_does_not_block_the_next_one(redis_test_client, monkeypatch):
    """The drain flag is set when the drain task is sent, not before: a transaction that asked for a
    drain and rolled back used to leave the flag set with no drain coming, so every message sent
    until it expired (the visibility timeout, 30 s) waited for beat's sweep instead of a drain."""
    from django.db import transaction

    from workflows_app.queues import handlers
    from workflows_app.queues.handlers import DRAIN_FLAG_TTL, _drain_flag

    queues.ensure_default_queues()
    queue = queues.get_queue("events")
    flag = _drain_flag(queue.name)
    redis_test_client.delete(flag)
    # The flag's writes are recorded as they reach Redis: a live worker may start the drain (and
    # clear the flag) before this test could read it back.
    written: list[tuple] = []
    real_set = handlers.redis_client().set

    def recording_set(name, value, **kwargs):
        written.append((name, kwargs.get("nx"), kwargs.get("ex")))
        return real_set(name, value, **kwargs)

    monkeypatch.setattr(handlers.redis_client(), "set", recording_set)
    with pytest.raises(RuntimeError), transaction.atomic():
        queues.schedule_drain(queue)
        raise RuntimeError("rolled back")
    assert written == [] and not redis_test_client.exists(flag)  # no drain was sent, none recorded as coming
    queues.schedule_drain(queue)  # the next message: the drain is sent and recorded
    assert written == [(flag, True, DRAIN_FLAG_TTL)]
    redis_test_client.delete(flag)
