"""Two changes to kombu's Redis transport, installed by ``apply()`` before any broker connection.

1. A worker outlives a Redis restart. When the broker connection breaks, the consumer closes its
channel, and the channel's close restores the messages the worker took but has not acknowledged.
Under a race (seen about once in seven Redis restarts on a loaded machine) the transport has already
dropped its connection by then, kombu's Redis transport fails with ``AttributeError: 'NoneType'
object has no attribute 'hostname'`` while asking for a new client, nothing catches it (it is not a
connection error), and the worker exits with "Unrecoverable error" instead of reconnecting — the
same family as kombu issues #582 and #970. Those messages cannot be restored through a connection
that no longer exists anyway: they stay in the broker's unacked hash (kombu's visibility timeout
brings them back) or, after a Redis restart, are gone — and the reconciler re-dispatches their
executions from the database either way. So the restore is skipped with a warning and the worker
goes on to reconnect.

2. One synchronous client per channel. kombu 5.7's ``Channel.conn_or_acquire()`` builds a new
``redis.Redis`` for every publish, queue size, ack and restore, and redis-py 8 fills a ~170-entry
response-callback dict in each ``Redis.__init__``: a profiled worker spent ~0.4 ms on each of
~4.5 new clients per engine step (issue 14). A client over a ConnectionPool holds no connection of
its own (each command borrows one from the pool; pipelines stay per call), so one client can serve
the channel and its threads. It is rebuilt whenever the channel's pool is not the one it was built
on — kombu drops the pool on close and reconnect, so a client on a disconnected pool is never
handed out — and in a forked child, to which a channel's objects do not belong.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os

from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)


def _connection_torn_down(qos) -> bool:
    transport = getattr(qos.channel, "connection", None)
    return transport is None or getattr(transport, "client", None) is None


def _tolerate_torn_down_connection(restore_unacked):
    @functools.wraps(restore_unacked)
    def restore(self, client=None):
        try:
            return restore_unacked(self, client)
        except AttributeError:
            if client is not None or not _connection_torn_down(self):
                raise
            log.warning("broker connection already closed: %d unacknowledged message(s) not restored "
                        "(the visibility timeout or the reconciler brings their work back)", len(self._delivered))
            self._delivered.clear()
            return None
    restore._nexus_patched = True
    return restore


def _sync_client(channel):
    pool = channel.pool  # kombu builds a fresh pool here after it dropped the old one
    pid, client = channel.__dict__.get("_nexus_sync_client", (None, None))
    if client is None or client.connection_pool is not pool or pid != os.getpid():
        client = channel._create_client()  # kombu's own construction: Client class, credential_provider
        channel._nexus_sync_client = (os.getpid(), client)
    return client


@contextlib.contextmanager
def _conn_or_acquire(self, client=None):
    yield client or _sync_client(self)


_conn_or_acquire._nexus_patched = True


def apply() -> None:
    qos = kombu_redis.QoS
    if not getattr(qos.restore_unacked, "_nexus_patched", False):
        qos.restore_unacked = _tolerate_torn_down_connection(qos.restore_unacked)
    channel = kombu_redis.Channel
    if not getattr(channel.conn_or_acquire, "_nexus_patched", False):
        channel.conn_or_acquire = _conn_or_acquire
