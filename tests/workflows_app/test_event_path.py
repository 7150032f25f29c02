"""The event path's cost and the reads it makes ahead (issue 14): counted, not timed.

Round trips to Redis are counted at the connection (every command or pipeline is one
``send_packed_command``); SQL statements with ``CaptureQueriesContext``. Each test that flushes
scripts or keys does it on a redis-server it started itself (``OwnRedis``)."""
from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
import redis.connection
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.support.processes import OwnRedis
from tests.workflows_app.helpers import create
from workflows_app import circuit, operations, queues
from workflows_app.queues import layout
from workflows_app.services import events, triggers
from workflows_app.services.triggers import index as trigger_index

pytestmark = pytest.mark.django_db(transaction=True)
SYMBOLS = [f"EP{i}" for i in range(30)]


@pytest.fixture
def own_redis(monkeypatch):
    """The services of this process talk to a Redis this test owns (and may flush)."""
    server = OwnRedis().start()
    client = server.client()
    monkeypatch.setattr(circuit, "_client", client)
    layout._groups_ready.clear()
    trigger_index._index = None
    queues.ensure_default_queues()
    yield client
    layout._groups_ready.clear()
    trigger_index._index = None  # built against the other Redis
    server.stop()


@pytest.fixture
def round_trips(monkeypatch):
    """How many times this test's thread wrote a command or a pipeline to Redis: ``round_trips()``.
    Only this thread's: a thread an earlier test of the session left running (a listener, a client)
    may talk to Redis meanwhile, and was seen adding one under load."""
    count = [0]
    send = redis.connection.AbstractConnection.send_packed_command
    ours = threading.get_ident()

    def counting(self, *args, **kwargs):
        if threading.get_ident() == ours:
            count[0] += 1
        return send(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)

    def taken() -> int:
        value, count[0] = count[0], 0
        return value

    return taken


@pytest.fixture
def script_arguments(monkeypatch):
    """The number of values redis-py packs for each EVALSHA this test's thread sends:
    ``script_arguments()``. Only this thread's, as in ``round_trips``: a thread an earlier test left
    running was seen sending a script of its own (7 values) under load."""
    seen: list[int] = []
    pack = redis.connection.PythonRespSerializer.pack
    ours = threading.get_ident()

    def counting(self, *args):
        if args and str(args[0]).upper() == "EVALSHA" and threading.get_ident() == ours:
            seen.append(len(args))
        return pack(self, *args)

    monkeypatch.setattr(redis.connection.PythonRespSerializer, "pack", counting)

    def taken() -> list[int]:
        value = list(seen)
        seen.clear()
        return value

    return taken


def ticks(prices: dict[str, list[float]], start: datetime) -> list[dict]:
    """Tick events, the symbols interleaved (one tick of each, then the next of each, ...)."""
    out = []
    for i in range(max(len(p) for p in prices.values())):
        for symbol, series in prices.items():
            if i < len(series):
                stamp = start + timedelta(seconds=i)
                out.append(events.make_event("tick", {"symbol": symbol, "price": series[i], "volume": 100.0,
                                                      "timestamp": stamp.isoformat(), "ts": stamp.timestamp()},
                                             source="market_data", event_id=f"{symbol}:{stamp.isoformat()}"))
    return out


def price_triggers(symbols: list[str], threshold: float) -> str:
    return create(f"ep-{uuid.uuid4().hex[:8]}", [{"name": "s", "type": "test_noop"}],
                  triggers=[{"type": "price_change", "symbol": s, "threshold": threshold, "direction": "up",
                             "window": "1h", "cooldown": 0} for s in symbols])


def test_ticks_cost_one_round_trip_per_batch_and_no_sql(own_redis, round_trips):
    price_triggers(SYMBOLS, threshold=0.5)  # moves this small never fire: the cost of matching alone
    start = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    warm = ticks({s: [100.0] for s in SYMBOLS}, start)
    events.ingest_many(warm, notify=False)
    queues.process("events", consumer="t")  # builds the index, creates the group, loads the scripts
    batch = ticks({s: [100.0 + i * 0.01 for i in range(1, 11)] for s in SYMBOLS}, start + timedelta(hours=1))
    assert len(batch) == 300
    round_trips()
    for i in range(0, len(batch), 100):
        events.ingest_many(batch[i:i + 100], notify=False)
    assert round_trips() == 3  # one script per batch of 100 (dedup, XADD, FIFO lists, one XTRIM)
    with CaptureQueriesContext(connection) as queries:
        result = queues.process("events", consumer="t", max_batches=1000)
    assert result == {"processed": 300, "failed": 0, "batches": 30, "deferred": 0}
    # the first receive, one per batch (ack of the one before, FIFO positions and trigger states of
    # this one, receive of the next), the last ack, and the compaction after the drain (XRANGE +
    # XTRIM): 1 + 30 + 1 + 2
    assert round_trips() <= 34
    assert len(queries.captured_queries) == 0
    assert own_redis.xlen(layout.stream_key("events")) == 0
    assert all(r["deduplicated"] for r in events.ingest_many(batch[:100], notify=False))


def test_a_batch_costs_the_same_few_script_arguments_whatever_its_size(own_redis, script_arguments):
    """A batch's per-message values travel as one JSON argument (and come back as one JSON string):
    what redis-py packs for a script does not grow with the number of messages in it."""
    price_triggers(SYMBOLS, threshold=0.5)
    start = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
    events.ingest_many(ticks({s: [100.0] for s in SYMBOLS}, start), notify=False)
    queues.process("events", consumer="t")
    script_arguments()
    for n in (1, 100):
        events.ingest_many(ticks({s: [101.0] * n for s in SYMBOLS[:1]}, start + timedelta(hours=n)), notify=False)
        assert script_arguments() == [10]  # EVALSHA, sha, key count, 1 key, 6 arguments
    events.ingest_many(ticks({s: [102.0] * 4 for s in SYMBOLS[:10]}, start + timedelta(hours=3)), notify=False)
    script_arguments()
    assert queues.process("events", consumer="t", max_batches=100)["processed"] == 141  # 1 + 100 + 40
    assert set(script_arguments()) == {19}  # EVALSHA, sha, key count, 6 keys, 10 arguments: 0 or 10 messages alike


def _recording_handler(client: redis.Redis, key: str, seen: list):
    """A batch handler that reads ``key`` ahead (prefetch) and records what it was handed."""

    class Reads:
        value = None

        def queue(self, pipe) -> None:
            pipe.get(key)

        def take(self, replies: list) -> None:
            self.value = replies[0]

    def handler(messages, prefetched=None):
        value = prefetched.value if prefetched is not None else client.get(key)
        seen.append(([m.body["n"] for m in messages], prefetched is not None, value))

    handler.batch = True
    handler.prefetch = lambda messages: Reads()
    return handler


def test_a_message_that_waited_for_its_turn_reads_again(own_redis):
    """Reads made ahead are used only when every message was at its turn: one that had to wait for
    an earlier message of its group (handled by another consumer) could see older state."""
    name = f"ep-{uuid.uuid4().hex[:8]}"
    operations.queue_create(name=name, ordering="FIFO", deduplication=False, visibility_timeout=20)
    key = f"state:{name}"
    own_redis.set(key, "before")
    queues.send_many(name, [{"body": {"n": 1}, "group_id": "G"}, {"body": {"n": 2}, "group_id": "G"}], notify=False)
    first = queues.receive(name, consumer="other", count=1)  # another consumer holds n=1
    assert [m.body["n"] for m in first] == [1]

    def other_consumer_finishes():
        time.sleep(0.5)
        own_redis.set(key, "after")  # its state write lands before its ack
        queues.ack(name, [first[0].id], groups={first[0].id: "G"})

    finisher = threading.Thread(target=other_consumer_finishes)
    finisher.start()
    seen: list = []
    result = queues.process(name, _recording_handler(own_redis, key, seen), consumer="me")
    finisher.join()
    assert result["processed"] == 1
    assert seen == [([2], False, "after")]  # waited for n=1, then read for itself

    own_redis.set(key, "fresh")
    queues.send_many(name, [{"body": {"n": n}, "group_id": f"g{n}"} for n in range(3, 6)], notify=False)
    seen.clear()
    queues.process(name, _recording_handler(own_redis, key, seen), consumer="me")
    assert seen == [([3, 4, 5], True, "fresh")]  # all at their turn: the reads made ahead are used


def test_trigger_states_carry_across_batches_read_ahead(own_redis):
    """A price_change trigger's edge and release, its state written in one batch's ack and read
    ahead for the next: it fires when the move starts to hold, not while it holds, and again after
    it released - as evaluating the same ticks in one call does."""
    price_triggers(["EPX"], threshold=0.02)
    fillers = {s: [50.0] * 6 for s in SYMBOLS[:9]}  # 10 ticks per batch: one EPX tick in each
    stream = ticks({"EPX": [100.0, 100.0, 105.0, 106.0, 100.0, 105.0], **fillers}, datetime(2026, 11, 21, tzinfo=UTC))
    fired: list = []

    def handler(messages, prefetched=None):
        found, writes = triggers.evaluate_batch([m.body for m in messages], fire_triggers=False,
                                                prefetched=prefetched)
        fired.extend(f["event"]["price"] for f in found)
        return writes

    handler.batch = True
    handler.prefetch = events.prefetch_batch
    triggers.current_index()
    events.ingest_many(stream, notify=False)
    result = queues.process("events", handler, consumer="t")
    assert result["batches"] == 6
    assert fired == [105.0, 105.0]
    triggers.reset_state()
    trigger_index._index = None
    assert [f["event"]["price"] for f in triggers.evaluate(stream, fire_triggers=False)] == fired


def test_a_redis_that_forgot_the_scripts_is_taught_them_again(own_redis):
    """Redis restarted (or SCRIPT FLUSH): the pipelined EVALSHA fails with NOSCRIPT, the script is
    loaded and the round trip runs again; nothing is lost or handled twice."""
    name = f"ep-{uuid.uuid4().hex[:8]}"
    operations.queue_create(name=name, ordering="FIFO", deduplication=False, batch_size=2)
    seen: list = []
    recording = _recording_handler(own_redis, "k", seen)

    def flushing(messages, prefetched=None):
        own_redis.script_flush()
        return recording(messages, prefetched)

    flushing.batch, flushing.prefetch = True, recording.prefetch
    queues.send_many(name, [{"body": {"n": n}, "group_id": f"g{n}"} for n in range(6)], notify=False)
    own_redis.script_flush()
    result = queues.process(name, flushing, consumer="me")
    assert result["processed"] == 6
    assert sorted(n for batch, _, _ in seen for n in batch) == list(range(6))
    assert own_redis.xlen(layout.stream_key(name)) == 0


def test_a_lost_index_version_is_set_once_not_rebuilt_on_every_batch(own_redis):
    price_triggers(["EPV"], threshold=0.5)
    own_redis.delete(trigger_index.INDEX_VERSION_KEY)
    first = triggers.current_index()
    assert first.count == 1 and own_redis.get(trigger_index.INDEX_VERSION_KEY)
    with CaptureQueriesContext(connection) as queries:
        assert triggers.current_index() is first
    assert len(queries.captured_queries) == 0
