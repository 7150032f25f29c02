"""Celery tasks: thin. They take ids, call a service, and translate its outcome for Celery.

Engine tasks ack late and are rejected back to the queue on worker loss; retries of transient
step errors use the step's own policy (RetryStep carries the computed backoff).
"""
from __future__ import annotations

from celery import shared_task
from celery.exceptions import Ignore

from workflows_app.services import executions

ENGINE = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": None,  # bounded by each step's retry policy, not by Celery's default of 3
    "time_limit": 900,
    "soft_time_limit": 840,
}


def _run(task, fn, *args):
    try:
        queue = (task.request.delivery_info or {}).get("routing_key") or ""
        return fn(*args, retries=task.request.retries, task_id=task.request.id or "", queue=queue)
    except executions.RetryStep as retry:
        raise task.retry(countdown=retry.delay, exc=retry.error) from None
    except (executions.StaleMessage, executions.StepFailed):
        raise Ignore() from None  # handled (dead letter / compensation) or superseded: stop the chain


@shared_task(bind=True, name="nexus.engine.run_step", **ENGINE)
def run_step(self, execution_id: str, generation: int, group_index: int, step_index: int):
    return _run(self, executions.run_step, execution_id, generation, group_index, step_index)


@shared_task(bind=True, name="nexus.engine.join_group", **ENGINE)
def join_group(self, execution_id: str, generation: int, group_index: int):
    executions.join_group(execution_id, generation, group_index)


@shared_task(bind=True, name="nexus.engine.run_compensation", **ENGINE)
def run_compensation(self, execution_id: str, generation: int, step_name: str):
    return _run(self, executions.run_compensation, execution_id, generation, step_name)


@shared_task(bind=True, name="nexus.engine.finish_compensation", **ENGINE)
def finish_compensation(self, execution_id: str, generation: int):
    executions.finish_compensation(execution_id, generation)


@shared_task(name="nexus.maintenance.reconcile", acks_late=True, time_limit=300,
             soft_time_limit=240, max_retries=0)
def reconcile():
    from workflows_app.services import broker

    return {"resumed": executions.reconcile(waiting=broker.waiting_dispatches())}


@shared_task(name="nexus.engine.noop", acks_late=True, time_limit=30, soft_time_limit=25, max_retries=0)
def noop(*args, **kwargs):
    """The benchmark floor: a plain Celery task that does nothing."""
    return None


from workflows_app import event_tasks  # noqa: E402,F401 - triggers, events, queues, dead letters
