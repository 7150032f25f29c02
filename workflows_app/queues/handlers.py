"""Push consumers: which handler drains a queue, and asking a worker to drain it.

A queue's ``handler`` names a function in ``registry.queue_handlers`` (the apps register them);
a queue bound to a workflow starts that workflow once per message. The drain itself is the task
``nexus.events.drain_queue``, sent by name (this package never imports task modules).
"""
from __future__ import annotations

from collections.abc import Callable

from celery import current_app
from django.db import transaction

from workflows_app.circuit import redis_client
from workflows_app.engine import start_execution
from workflows_app.errors import StepError
from workflows_app.models import MessageQueue, Workflow
from workflows_app.queues.config import get_queue
from workflows_app.queues.layout import key
from workflows_app.registry import registry

DRAIN_TASK = "nexus.events.drain_queue"


def handler_for(queue: MessageQueue) -> Callable | None:
    if queue.handler:
        return registry.queue_handlers.get(queue.handler)
    if queue.workflow_id:
        return start_workflow
    return None


def start_workflow(message) -> None:
    """The handler of a workflow-bound queue: one execution per message, the body as input."""
    queue = get_queue(message.queue)
    workflow = Workflow.objects.select_related("current_version").get(pk=queue.workflow_id)
    if workflow.status != Workflow.Status.ACTIVE:
        raise StepError(f"workflow {workflow.name} is {workflow.status}", error_class="workflow_inactive")
    event = {"kind": "queue_message", "queue": message.queue, "message_id": message.id, "body": message.body,
             "group_id": message.group_id}
    body = message.body if isinstance(message.body, dict) else {"message": message.body}
    start_execution(workflow, {**body, "queue_message": event}, trigger="queue", trigger_event=event)


DRAIN_FLAG_TTL = 5  # seconds: a drain asked for and not started by then is presumed lost


def _drain_flag(name: str) -> str:
    return key(name, "drain")


def clear_drain_flag(name: str) -> None:
    """A drain is starting: a message sent from now on schedules another one."""
    redis_client().delete(_drain_flag(name))


def schedule_drain(queue: MessageQueue) -> None:
    """Ask a worker to drain the queue, unless a drain is already scheduled (one flag per queue).

    The flag is set only when the drain task is actually sent (on commit inside a transaction) and
    dropped again when sending fails: a flag set for a drain that never comes (a rolled-back
    transaction, a broker error) made every later message skip scheduling until it expired. It
    expires after ``DRAIN_FLAG_TTL`` (not the visibility timeout): a drain task lost with a killed
    worker's prefetch stalls the queue for seconds at most; an extra drain is harmless."""
    if handler_for(queue) is None:
        return
    name = queue.name

    def dispatch():
        client = redis_client()
        if not client.set(_drain_flag(name), 1, nx=True, ex=DRAIN_FLAG_TTL):
            return  # a drain is on its way: it starts after this message was added, so it sees it
        try:
            current_app.send_task(DRAIN_TASK, args=(name,))
        except Exception:
            client.delete(_drain_flag(name))  # no drain is coming: the next message must ask again
            raise

    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(dispatch)
    else:
        dispatch()
