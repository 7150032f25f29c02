"""A workaround for a kombu bug that ends a worker when Redis goes away.

When the broker connection breaks, the consumer closes its channel, and the channel's close restores
the messages the worker took but has not acknowledged. Under a race (seen about once in seven Redis
restarts on a loaded machine) the transport has already dropped its connection by then, kombu's
Redis transport fails with ``AttributeError: 'NoneType' object has no attribute 'hostname'`` while
asking for a new client, nothing catches it (it is not a connection error), and the worker exits with
"Unrecoverable error" instead of reconnecting — the same family as kombu issues #582 and #970.

Those messages cannot be restored through a connection that no longer exists anyway: they stay in
the broker's unacked hash (kombu's visibility timeout brings them back) or, after a Redis restart,
are gone — and the reconciler re-dispatches their executions from the database either way. So the
restore is skipped with a warning and the worker goes on to reconnect.
"""
from __future__ import annotations

import functools
import logging

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


def apply() -> None:
    qos = kombu_redis.QoS
    if not getattr(qos.restore_unacked, "_nexus_patched", False):
        qos.restore_unacked = _tolerate_torn_down_connection(qos.restore_unacked)
