"""Process-level hooks: workers consume every agent's queue as well as the fixed ones."""
from __future__ import annotations

import logging

from celery.signals import worker_ready

from workflows_app import process_heartbeats  # noqa: F401 - worker heartbeats (availability) connect on import
from workflows_app.models import Agent

log = logging.getLogger(__name__)


@worker_ready.connect
def consume_agent_queues(sender=None, **kwargs):
    try:
        queues = set(Agent.objects.values_list("queue", flat=True))
    except Exception:  # noqa: BLE001 - tables may not exist yet on a first start
        return
    for queue in queues:
        sender.app.control.add_consumer(queue, destination=[sender.hostname], reply=False)
        log.info("consuming agent queue %s", queue)

