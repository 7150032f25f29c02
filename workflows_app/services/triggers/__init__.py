"""Triggers: schedules on django-celery-beat, and event-trigger matching and firing.

Schedules: every ``schedule`` trigger has a PeriodicTask ``workflow:<uuid>:trigger:<pos>`` with a
CrontabSchedule in the trigger's IANA timezone, running ``nexus.events.fire_schedule`` with the
trigger id. ``sync_schedules`` (connected to ``workflow_changed``) keeps them in step on create /
update / pause / resume / archive / delete; a running beat sees the change through
django-celery-beat's change tracking, without a restart.

Event triggers: an index (event kind, symbol) -> triggers is built per process from the
database and rebuilt when a workflow changes (a version counter in Redis), so a tick only touches
the triggers of its own symbol. Each trigger type's evaluator says whether its condition holds for
an event; a trigger fires on the edge (the condition starts to hold) for level events such as
ticks, on every match for discrete events such as news, and never twice within its cooldown.
A firing is audited with its event, updates ``last_fired_at`` and starts an execution with the
event in its input.

What decides whether a firing happens is durable (``workflows_app.guards``, claimed in the firing's own
transaction): "this trigger fired for this event id" and "this trigger is cooling down". The
evaluation state in Redis (holding flags, reference prices) is regenerable: after Redis restarts
empty a level trigger may see a new edge, but never fires twice for the same event and never
inside its cooldown.

Modules: ``schedules`` (PeriodicTasks), ``index`` (the event-trigger index, ``SharedEvaluator``),
``evaluation`` (matching a batch of events, edges, cooldowns), ``firing`` (starting the execution),
``observed`` (what the last evaluation measured, for workflow_status: value vs threshold, cooldown left).
"""
from workflows_app.services.triggers.evaluation import (
    STATE_KEY,
    evaluate,
    evaluate_batch,
    evaluate_held,
    event_time,
    prefetch,
    reset_state,
    severity_priority,
)
from workflows_app.services.triggers.firing import FIRED_TTL, fire
from workflows_app.services.triggers.index import (
    INDEX_VERSION_KEY,
    IndexedTrigger,
    SharedEvaluator,
    Slot,
    ThresholdGroup,
    TriggerIndex,
    bump_index_version,
    current_index,
)
from workflows_app.services.triggers.observed import trigger_states
from workflows_app.services.triggers.schedules import (
    FIRE_SCHEDULE_TASK,
    SCHEDULE_TYPES,
    on_workflow_changed,
    periodic_task_prefix,
    schedule_guard_key,
    sync_schedules,
)

__all__ = [
    "FIRED_TTL", "FIRE_SCHEDULE_TASK", "INDEX_VERSION_KEY", "SCHEDULE_TYPES", "STATE_KEY", "IndexedTrigger",
    "SharedEvaluator", "Slot", "ThresholdGroup", "TriggerIndex", "bump_index_version", "current_index", "evaluate",
    "evaluate_batch", "evaluate_held", "event_time", "fire", "on_workflow_changed", "periodic_task_prefix", "prefetch",
    "reset_state", "schedule_guard_key", "severity_priority", "sync_schedules", "trigger_states",
]
