"""Floor (b) of bench/engine_latency.py: the Celery chain a Celery user writes, as its own app.

Not Nexus's app: no Django, no django-db result backend, no task events, no `task_track_started`.
Broker and result backend are the bench's Redis (``BENCH_PLAIN_REDIS_URL``), on a queue of its own.
Delivery settings are Nexus's (nexus_project/settings/base.py): late acks, requeue on a lost
worker, prefetch 1, JSON. The worker runs ``celery -A plain_celery worker`` from this directory.
"""
from __future__ import annotations

import os

from celery import Celery

QUEUE = "bench_plain"
URL = os.environ.get("BENCH_PLAIN_REDIS_URL", "redis://127.0.0.1:6379/9")

# Not the current app: the bench process also runs Nexus, whose engine sends through current_app.
app = Celery("bench_plain", broker=URL, backend=URL, set_as_current=False)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue=QUEUE,
    result_expires=3600,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.plain.noop")
def noop(*args, **kwargs):
    return None


def chain_of_four():
    """4 no-ops; the first three ignore their result, only the last one is stored and awaited."""
    from celery import chain

    return chain(noop.si().set(ignore_result=True), noop.si().set(ignore_result=True),
                 noop.si().set(ignore_result=True), noop.si())
