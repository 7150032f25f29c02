"""Celery tasks for triggers, events, named queues, dead letters and notifications: thin wrappers over services.

Routed by name: ``nexus.events.*`` to the ``events`` queue, ``nexus.maintenance.*`` to
``maintenance``, ``nexus.notifications.*`` (outbound webhook posts) to ``notifications``
(settings.CELERY_TASK_ROUTES). Beat runs the sweep and the dead-letter job. A
worker that starts re-feeds accepted messages a restarted Redis lost (``queues.inbox.replay``;
the sweep does it too).
"""
from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import connections

from workflows_app import queues
from workflows_app.services import deadletters, events, notifications

log = logging.getLogger(__name__)

EVENTS = {"acks_late": True, "reject_on_worker_lost": True, "time_limit": 120, "soft_time_limit": 100}


@shared_task(name="nexus.events.fire_schedule", autoretry_for=(ConnectionError,), retry_backoff=True,
             max_retries=3, **EVENTS)
def fire_schedule(trigger_id: int, scheduled_for: str | None = None):
    return events.fire_schedule(int(trigger_id), scheduled_for=scheduled_for)


# ignore_result: a drain runs after every accepted event; storing its STARTED and SUCCESS rows in
# django-db (task_track_started) were two commits per event on the database the firing and the
# step it starts write to - on SQLite they queued behind each other. What a drain did is in the
# queue's own counters (processing_rate, messages_processed) and the log.
@shared_task(bind=True, name="nexus.events.drain_queue", max_retries=0, ignore_result=True, **EVENTS)
def drain_queue(self, queue_name: str):
    """Drain a named queue through its push consumer. Clears the queue's 'drain scheduled' flag
    first, so a message sent while this runs schedules another drain."""
    queues.clear_drain_flag(queue_name)
    result = queues.process(queue_name, time_budget=20.0, max_batches=1000)
    queue = queues.get_queue(queue_name)
    if result["batches"] >= 1000:
        queues.schedule_drain(queue)
    elif result["failed"] or result["deferred"]:
        # unacked messages become visible again after the visibility timeout: come back for them
        # then (beat's sweep would too, a few seconds later)
        self.apply_async((queue_name,), countdown=queue.visibility_timeout + 0.2)
    return result


@shared_task(name="nexus.maintenance.sweep_queues", max_retries=0, acks_late=True, time_limit=60,
             soft_time_limit=50)
def sweep_queues():
    return queues.sweep()


@shared_task(name="nexus.maintenance.process_dead_letters", max_retries=0, acks_late=True, time_limit=300,
             soft_time_limit=240)
def process_dead_letters(limit: int = 200):
    result = deadletters.process_dead_letters(limit=limit)
    result.pop("results", None)
    return result


@shared_task(name=notifications.DELIVER_TASK, max_retries=0, acks_late=True, reject_on_worker_lost=True,
             time_limit=90, soft_time_limit=75)
def deliver_notification(delivery_id: str):
    """One attempt; the service schedules the next (a countdown message) and the sweep replaces lost ones."""
    return notifications.deliver(delivery_id)


@shared_task(name="nexus.maintenance.sweep_notifications", max_retries=0, acks_late=True, time_limit=60,
             soft_time_limit=50)
def sweep_notifications():
    return notifications.sweep()


@worker_ready.connect(dispatch_uid="nexus-inbox-replay-at-start")
def replay_inbox_at_start(**kwargs):
    """A (re)started worker may be the first to see a Redis that restarted empty: re-feed the
    accepted messages it lost now rather than at the next sweep."""
    try:
        result = queues.inbox.replay()
        if result["fed"]:
            log.warning("worker start: fed %d accepted message(s) back into Redis", result["fed"])
    except Exception:  # noqa: BLE001 - the sweep tries again; a worker must start anyway
        log.exception("worker start: inbox replay failed")
    finally:
        connections.close_all()  # opened in the parent process: never share it with the pool's children
