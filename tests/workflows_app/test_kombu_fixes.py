"""The worker outlives the kombu race that ended it on a Redis restart (nexus_project/kombu_fixes):
a channel closed after its transport dropped the connection, with a message taken and not
acknowledged, used to raise AttributeError out of the consumer's error handling."""
from __future__ import annotations

import kombu
import pytest

import nexus_project.celery  # noqa: F401  (applies the fix, as the worker does)
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
