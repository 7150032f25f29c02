"""Celery tasks: thin. They take ids, call the engine or a service, and translate its outcome for Celery.

Engine tasks ack late and are rejected back to the queue on worker loss; retries of transient
step errors use the step's own policy (RetryStep carries the computed backoff). A database or
Redis error anywhere in an engine task is retried under the infrastructure policy
(engine.infrastructure_fault); ``infra_retries`` counts those retries apart from the step's own.
"""
from __future__ import annotations

from celery import shared_task
from celery.exceptions import Ignore

from workflows_app import engine
from workflows_app.errors import infrastructure_errors

ENGINE = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": None,  # bounded by each step's retry policy, not by Celery's default of 3
    "time_limit": 900,
    "soft_time_limit": 840,
}


def _step_kwargs(task, infra_retries: int) -> dict:
    queue = (task.request.delivery_info or {}).get("routing_key") or ""
    # Celery counts every retry; the step's policy only sees its own.
    return {"retries": max(task.request.retries - infra_retries, 0), "task_id": task.request.id or "", "queue": queue}


def _run(task, call, execution_id: str, generation: int, infra_retries: int, step=None):
    try:
        return call()
    except engine.RetryStep as retry:
        raise task.retry(countdown=retry.delay, exc=retry.error) from None
    except (engine.StaleMessage, engine.StepFailed):
        raise Ignore() from None  # handled (dead letter / compensation) or superseded: stop the chain
    except infrastructure_errors() as exc:
        try:
            retry = engine.infrastructure_fault(execution_id, generation, exc, infra_retries=infra_retries, step=step)
        except engine.StepFailed:
            raise Ignore() from None  # gave up and recorded it (dead letter, execution failed)
        kwargs = {**(task.request.kwargs or {}), "infra_retries": infra_retries + 1}
        raise task.retry(countdown=retry.delay, exc=exc, kwargs=kwargs) from None


@shared_task(bind=True, name=engine.RUN_STEP, **ENGINE)
def run_step(self, execution_id: str, generation: int, group_index: int, step_index: int, infra_retries: int = 0):
    return _run(self, lambda: engine.run_step(execution_id, generation, group_index, step_index,
                                              **_step_kwargs(self, infra_retries)),
                execution_id, generation, infra_retries, step=step_index)


@shared_task(bind=True, name=engine.JOIN_GROUP, **ENGINE)
def join_group(self, execution_id: str, generation: int, group_index: int, infra_retries: int = 0):
    _run(self, lambda: engine.join_group(execution_id, generation, group_index),
         execution_id, generation, infra_retries)


@shared_task(bind=True, name=engine.RUN_COMPENSATION, **ENGINE)
def run_compensation(self, execution_id: str, generation: int, step_name: str, infra_retries: int = 0):
    return _run(self, lambda: engine.run_compensation(execution_id, generation, step_name,
                                                      **_step_kwargs(self, infra_retries)),
                execution_id, generation, infra_retries, step=step_name)


@shared_task(bind=True, name=engine.FINISH_COMPENSATION, **ENGINE)
def finish_compensation(self, execution_id: str, generation: int, infra_retries: int = 0):
    _run(self, lambda: engine.finish_compensation(execution_id, generation),
         execution_id, generation, infra_retries)


@shared_task(name="nexus.maintenance.reconcile", acks_late=True, time_limit=300,
             soft_time_limit=240, max_retries=0)
def reconcile():
    return {"resumed": engine.reconcile(waiting=engine.waiting_dispatches())}


@shared_task(name="nexus.maintenance.wake_timers", acks_late=True, time_limit=300, soft_time_limit=240,
             max_retries=0)
def wake_timers():
    """Beat's timer: resume waiting executions whose wake-up time has come."""
    return {"resumed": engine.resume_due()}


@shared_task(name="nexus.maintenance.wake", acks_late=True, time_limit=60, soft_time_limit=50, max_retries=0)
def wake(execution_id: str, wake_at: str):
    """A short wait's delayed wake message (a hint: the timer resumes it all the same)."""
    return {"resumed": engine.wake(execution_id)}


@shared_task(name="nexus.engine.noop", acks_late=True, time_limit=30, soft_time_limit=25, max_retries=0)
def noop(*args, **kwargs):
    """The benchmark floor: a plain Celery task that does nothing."""
    return None


from workflows_app import event_tasks  # noqa: E402,F401 - triggers, events, queues, dead letters
