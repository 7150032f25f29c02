"""Wires triggers, events, named queues and dead letters into the engine (imported from
WorkflowsAppConfig.ready()): evaluators of the engine's webhook / event triggers, the engine's
default queues (events, the dead-letter view) and the events queue's consumer, the redriver of
queue dead letters, the ``queue_send`` step type, the receiver that keeps schedules in step with
workflows, and the beat jobs (sweep, dead letters)."""
from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from workflows_app import expressions, queues, trigger_types
from workflows_app.errors import OperationError, PermanentStepError, TransientStepError
from workflows_app.models import MessageQueue
from workflows_app.registry import RetryPolicy, StepContext, registry
from workflows_app.services import events, triggers
from workflows_app.services.workflows import workflow_changed


# --- evaluators of the engine's own event triggers ----------------------------------------------
def webhook_evaluator(params: trigger_types.WebhookParams, event: dict, state: dict) -> tuple[bool, dict]:
    if (event.get("ingest_source") or event.get("source")) != params.source:  # who signed it, not the body's claim
        return False, {}
    if params.event and event.get("event") != params.event:
        return False, {}
    return True, {"source": params.source, "event": event.get("event")}


def event_evaluator(params: trigger_types.EventParams, event: dict, state: dict) -> tuple[bool, dict]:
    name = event.get("name") or event.get("event")
    if name != params.name:
        return False, {}
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    context = {**event, **data, "event": event}
    for condition in params.conditions:
        if not expressions.evaluate(condition, context):
            return False, {}
    return True, {"name": params.name, "conditions": params.conditions}


registry.register_trigger_type("webhook", trigger_types.WebhookParams, event_kinds=("webhook",),
                               evaluator=webhook_evaluator, description="An HMAC-signed POST to /api/v1/events/.")
registry.register_trigger_type("event", trigger_types.EventParams, event_kinds=("event",),
                               evaluator=event_evaluator, description="A named event whose conditions hold.")

# --- queues, dead letters, schedules ------------------------------------------------------------
registry.register_default_queue(
    events.EVENTS_QUEUE, handler="events",
    description="Every ingested event (ticks, news, webhooks, schedules, manual) before matching.")
registry.register_default_queue(queues.DEAD_LETTER_QUEUE, kind=MessageQueue.Kind.DEAD_LETTER,
                                description="The dead-letter store: failed steps and undeliverable messages.")
registry.register_queue_handler("events", events.handle_batch)
registry.register_queue_handler("noop", lambda message: None)  # acknowledges everything (benchmarks, smoke tests)
registry.register_dead_letter_redriver("queue", queues.redrive)
workflow_changed.connect(triggers.on_workflow_changed, dispatch_uid="nexus-trigger-sync")


def events_health() -> dict:
    """/health/: the events queue is being consumed (no message older than 5 minutes waits)."""
    item = queues.status(events.EVENTS_QUEUE)["queues"][0]
    stuck = item["messages_available"] > 0 and item["oldest_message_age"] > 300
    return {"ok": not stuck, "backlog": item["messages_available"] + item["messages_in_flight"],
            "oldest_message_age": item["oldest_message_age"], "processing_rate": item["processing_rate"],
            **({"error": "events are not being consumed"} if stuck else {})}


registry.register_health_check("events_queue", events_health)


# --- the queue_send step type -------------------------------------------------------------------
class QueueSendParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queue: str = Field("trading-signals", max_length=100)
    message: dict = Field(default_factory=dict, description="Sent as is, plus the context keys in `include`.")
    include: list[str] = Field(default_factory=list, max_length=50,
                               description="Context keys copied into the message (e.g. signal, symbol).")
    group_id: str | None = Field(None, max_length=100, description="FIFO message group (default: the symbol).")
    deduplication_id: str | None = Field(None, max_length=200)
    delay: float | None = Field(None, ge=0, le=43_200)


def queue_send_step(ctx: StepContext) -> dict:
    p: QueueSendParams = ctx.params
    message = dict(p.message)
    for key in p.include:
        if key in ctx.context:
            message[key] = ctx.context[key]
    message.setdefault("execution_id", ctx.execution_id)
    message.setdefault("workflow_id", ctx.workflow_id)
    group = p.group_id or message.get("symbol") or ctx.context.get("symbol") or "default"
    try:
        reply = queues.send(p.queue, message, group_id=str(group), delay=p.delay,
                            dedup_id=p.deduplication_id or f"{ctx.idempotency_key}:queue_send")
    except OperationError as exc:
        if exc.code == "QUEUE_FULL":
            raise TransientStepError(exc.message, error_class="queue_full") from exc
        raise PermanentStepError(exc.message, error_class=exc.code.lower()) from exc
    return {"queued": True, "queue": p.queue, "message_id": reply["message_id"],
            "deduplicated": reply["deduplicated"], "message": message}


registry.register_step_type("queue_send", queue_send_step, params_model=QueueSendParams, action=True,
                            retry=RetryPolicy(max_retries=3, backoff=1.0, backoff_max=30.0),
                            description="Send a message (plus context keys) to a named queue.")


# --- beat jobs (settings.CELERY_BEAT_SCHEDULE wins when it defines the same names) ---------------
BEAT_JOBS = {
    "nexus-queue-sweep": {"task": "nexus.maintenance.sweep_queues",
                          "schedule": float(os.environ.get("NEXUS_QUEUE_SWEEP_SECONDS", 5))},
    "nexus-dead-letters": {"task": "nexus.maintenance.process_dead_letters",
                           "schedule": float(os.environ.get("NEXUS_DLQ_PROCESS_SECONDS", 60))},
}


def install_beat_jobs(jobs: dict) -> None:
    from nexus_project.celery import app

    schedule = app.conf.beat_schedule
    if schedule is None:
        app.conf.beat_schedule = schedule = {}
    for name, entry in jobs.items():
        schedule.setdefault(name, entry)


install_beat_jobs(BEAT_JOBS)
