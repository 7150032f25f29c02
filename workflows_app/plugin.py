"""The engine's own plugin: what workflows_app plugs into its registry, declared like any app's.

Step types (``steps.STEP_TYPES``), trigger types (``trigger_types.TRIGGER_TYPES``), the discrete
event kinds, the ``events`` queue and its consumer, the dead-letter queue and its redriver, the
events-queue health check and the housekeeping beat jobs (reconciler, queue sweep, dead letters,
notification sweep) (periods from ``workflows_app.conf``).
"""
from __future__ import annotations

from workflows_app import conf, queues, steps, trigger_types
from workflows_app.engine.timers import timer_health
from workflows_app.models import MessageQueue
from workflows_app.registry import BeatJob, EventKind, Plugin
from workflows_app.selectors import schedules as schedule_outlook
from workflows_app.services import events


def events_health() -> dict:
    """/health/: the events queue is being consumed (no message older than 5 minutes waits)."""
    item = queues.status(events.EVENTS_QUEUE)["queues"][0]
    stuck = item["messages_available"] > 0 and item["oldest_message_age"] > 300
    return {"ok": not stuck, "backlog": item["messages_available"] + item["messages_in_flight"],
            "oldest_message_age": item["oldest_message_age"], "processing_rate": item["processing_rate"],
            **({"error": "events are not being consumed"} if stuck else {})}


def acknowledge(message) -> None:
    """The ``noop`` consumer: acknowledges everything (benchmarks, smoke tests)."""


PLUGIN = Plugin(
    name="workflows_app",
    step_types=steps.STEP_TYPES,
    trigger_types=trigger_types.TRIGGER_TYPES,
    event_kinds=(
        EventKind("webhook", discrete=True, description="A signed webhook call."),
        EventKind("event", discrete=True, description="A named event (event_ingest)."),
        EventKind("schedule", discrete=True, description="A schedule trigger's minute."),
        EventKind("manual", discrete=True, description="Started by a person or an API call."),
        EventKind("queue_message", discrete=True, description="A message on a workflow's named queue."),
    ),
    queue_handlers={"events": events.handle_batch, "noop": acknowledge},
    default_queues={
        events.EVENTS_QUEUE: {"description": "Every ingested event (ticks, news, webhooks, schedules, manual) "
                                             "before matching.", "handler": "events"},
        queues.DEAD_LETTER_QUEUE: {"description": "The dead-letter store: failed steps and undeliverable messages.",
                                   "kind": MessageQueue.Kind.DEAD_LETTER},
    },
    dead_letter_redrivers={"queue": queues.redrive},
    health_checks={"events_queue": events_health, "timers": timer_health},
    dashboard_panels={"schedules": schedule_outlook.dashboard_panel},
    beat_jobs=(
        BeatJob("nexus-reconcile", "nexus.maintenance.reconcile", every=lambda: conf.get("NEXUS_RECONCILE_EVERY")),
        BeatJob("nexus-timers", "nexus.maintenance.wake_timers", every=lambda: conf.get("NEXUS_TIMER_EVERY")),
        BeatJob("nexus-queue-sweep", "nexus.maintenance.sweep_queues",
                every=lambda: conf.get("NEXUS_QUEUE_SWEEP_SECONDS")),
        BeatJob("nexus-dead-letters", "nexus.maintenance.process_dead_letters",
                every=lambda: conf.get("NEXUS_DLQ_PROCESS_SECONDS")),
        BeatJob("nexus-notification-sweep", "nexus.maintenance.sweep_notifications",
                every=lambda: conf.get("NEXUS_NOTIFY_SWEEP_SECONDS")),
    ),
    retry_classes=("rate_limit",),
)
