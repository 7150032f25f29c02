"""The kombu changes of nexus_project/kombu_fixes. The worker outlives the race that ended it on a
Redis restart: a channel closed after its transport dropped the connection, with a message taken and
not acknowledged, used to raise AttributeError out of the consumer's error handling. And a channel
reuses one synchronous redis client (issue 14), rebuilt when kombu replaces the channel's pool."""
from __future__ import annotations

import kombu
import pytest
import redis

import nexus_project.celery  # noqa: F401  (applies the fixes, as the worker does)
from nexus_project import kombu_fixes
from tests.support.processes import OwnRedis


@pytest.fixture
def own_redis():
    server = OwnRedis().start()
    yield server
    server.stop()


def _take_one(connection: kombu.Connection, queue_name: str):
    queue = kombu.Queue(queue_name, routing_key=queue_name)
    with connection.Producer() as producer:
        producer.publish({"n": 1}, routing_key=queue_name, declare=[queue])
    channel = connection.channel()
    message = queue(channel).get(no_ack=False)
    assert message is not None, "the message published just now was not delivered"
    return channel


def test_closing_a_channel_after_its_connection_was_dropped_does_not_raise(own_redis, caplog):
    connection = kombu.Connection(own_redis.url)
    channel = _take_one(connection, "kombu-fix")
    assert len(channel.qos._delivered) == 1  # taken, not acknowledged
    channel.connection.client = None  # the race: the transport let go of its connection first
    channel.close()  # raised AttributeError('NoneType' object has no attribute 'hostname') before
    assert channel.closed
    assert "1 unacknowledged message(s) not restored" in caplog.text


def test_an_ordinary_close_still_restores_what_was_taken(own_redis):
    connection = kombu.Connection(own_redis.url)
    channel = _take_one(connection, "kombu-fix-ordinary")
    channel.close()
    again = kombu.Queue("kombu-fix-ordinary", routing_key="kombu-fix-ordinary")(connection.channel()).get()
    assert again is not None and again.payload == {"n": 1}
    connection.release()


@pytest.fixture
def redis_inits(monkeypatch):
    """Counts the redis.Redis clients built (kombu's PrefixedStrictRedis subclasses it too)."""
    built = []
    original = redis.Redis.__init__

    def counting_init(self, *args, **kwargs):
        built.append(self)
        original(self, *args, **kwargs)
    monkeypatch.setattr(redis.Redis, "__init__", counting_init)
    return built


def _publish(channel, queue: kombu.Queue, count: int) -> None:
    with kombu.Producer(channel) as producer:
        for n in range(count):
            producer.publish({"n": n}, routing_key=queue.routing_key, declare=[queue])


def test_publishing_reuses_one_sync_client_per_channel(own_redis, redis_inits):
    with kombu.Connection(own_redis.url) as connection:
        channel = connection.channel()  # builds its own (asynchronous) client for BRPOP
        queue = kombu.Queue("kombu-fix-reuse", routing_key="kombu-fix-reuse")
        redis_inits.clear()
        _publish(channel, queue, 5)
        assert channel._size("kombu-fix-reuse") == 5  # size goes through conn_or_acquire too
        assert len(redis_inits) <= 1, f"{len(redis_inits)} sync clients built for one channel"
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second and first.connection_pool is channel.pool


def test_the_sync_client_is_rebuilt_on_the_new_pool_after_a_reset(own_redis, redis_inits):
    with kombu.Connection(own_redis.url) as connection:
        channel = connection.channel()
        queue = kombu.Queue("kombu-fix-reset", routing_key="kombu-fix-reset")
        _publish(channel, queue, 2)
        with channel.conn_or_acquire() as before:
            old_pool = before.connection_pool
        channel._disconnect_pools()  # what kombu does on close, reconnect and after a fork
        _publish(channel, queue, 2)
        with channel.conn_or_acquire() as after:
            assert after is not before
            assert after.connection_pool is channel.pool and channel.pool is not old_pool
        assert channel._size("kombu-fix-reset") == 4


def test_a_forked_child_builds_its_own_sync_client(own_redis, monkeypatch):
    with kombu.Connection(own_redis.url) as connection:
        channel = connection.channel()
        with channel.conn_or_acquire() as parent_client:
            pass
        monkeypatch.setattr(kombu_fixes.os, "getpid", lambda: -1)  # as seen from a child process
        with channel.conn_or_acquire() as child_client:
            assert child_client is not parent_client


def test_a_client_passed_in_is_used_as_is(own_redis):
    with kombu.Connection(own_redis.url) as connection:
        channel = connection.channel()
        mine = redis.Redis.from_url(own_redis.url)
        with channel.conn_or_acquire(mine) as client:
            assert client is mine
        mine.close()
