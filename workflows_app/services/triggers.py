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
ticks, on every match for discrete events such as news, and never twice within its cooldown
(an atomic ``SET NX EX`` in Redis, so two workers cannot both fire it). A firing is audited with
its event, updates ``last_fired_at`` and starts an execution with the event in its input.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from workflows_app.circuit import redis_client
from workflows_app.models import Trigger, Workflow
from workflows_app.registry import registry
from workflows_app.services import audit

log = logging.getLogger(__name__)

FIRE_SCHEDULE_TASK = "nexus.events.fire_schedule"
INDEX_VERSION_KEY = "nexus:triggers:version"
STATE_KEY = "nexus:triggers:state"
# Events that happen once (an article, a webhook call): every match fires (cooldown permitting).
# Any other kind (tick, bar, vix, ...) is a level: a trigger fires when its condition starts to hold.
DISCRETE_KINDS = {"news", "webhook", "event", "schedule", "queue_message", "manual"}


# --- schedules ----------------------------------------------------------------------------------
def periodic_task_prefix(workflow_id) -> str:
    return f"workflow:{workflow_id}:trigger:"


def sync_schedules(workflow: Workflow, action: str = "updated") -> list[PeriodicTask]:
    """Make the workflow's PeriodicTasks match its schedule triggers (call inside its transaction)."""
    prefix = periodic_task_prefix(workflow.id)
    if action == "deleted":
        PeriodicTask.objects.filter(name__startswith=prefix).delete()
        return []
    active = workflow.status == Workflow.Status.ACTIVE
    tasks = []
    for trigger in workflow.triggers.filter(type="schedule").order_by("position"):
        params = trigger.params or {}
        minute, hour, day_of_month, month_of_year, day_of_week = params["cron"].split()
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
            day_of_week=day_of_week, timezone=params.get("timezone") or "UTC",
        )
        enabled = active and trigger.enabled and params.get("enabled", True) is not False
        task, _ = PeriodicTask.objects.update_or_create(
            name=f"{prefix}{trigger.position}",
            defaults={"crontab": crontab, "interval": None, "solar": None, "clocked": None,
                      "task": FIRE_SCHEDULE_TASK, "args": json.dumps([trigger.pk]), "kwargs": "{}",
                      "queue": "events", "enabled": enabled, "one_off": False,
                      "description": f"{workflow.name}: {params['cron']} ({params.get('timezone') or 'UTC'})"},
        )
        if trigger.periodic_task_id != task.pk:
            Trigger.objects.filter(pk=trigger.pk).update(periodic_task=task)
        tasks.append(task)
    PeriodicTask.objects.filter(name__startswith=prefix).exclude(pk__in=[t.pk for t in tasks]).delete()
    return tasks


def on_workflow_changed(sender, workflow: Workflow, action: str, **kwargs) -> None:
    sync_schedules(workflow, action)
    transaction.on_commit(bump_index_version)


def bump_index_version() -> None:
    try:
        redis_client().incr(INDEX_VERSION_KEY)
    except Exception:  # noqa: BLE001 - an unreachable Redis must not fail a definition change
        log.exception("could not bump the trigger index version")


# --- the index ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexedTrigger:
    id: int
    workflow_id: str
    type: str
    position: int
    symbol: str
    params: Any
    evaluator: Any
    cooldown: int


class TriggerIndex:
    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], list[IndexedTrigger]] = {}
        self.count = 0

    @classmethod
    def build(cls) -> TriggerIndex:
        index = cls()
        rows = Trigger.objects.filter(enabled=True, workflow__status=Workflow.Status.ACTIVE).values_list(
            "id", "workflow_id", "type", "position", "symbol", "params", "cooldown_seconds")
        for pk, workflow_id, type_name, position, symbol, params, cooldown in rows:
            trigger_type = registry.trigger_types.get(type_name)
            if trigger_type is None or not trigger_type.event_kinds or trigger_type.evaluator is None:
                continue
            try:
                model = trigger_type.params_model.model_validate(params or {})
            except Exception:  # noqa: BLE001 - a stale definition must not break the others
                log.warning("trigger %s (%s) has invalid params; skipped", pk, type_name)
                continue
            if getattr(model, "enabled", True) is False:
                continue
            entry = IndexedTrigger(pk, str(workflow_id), type_name, position, (symbol or "").upper(), model,
                                   trigger_type.evaluator, int(getattr(model, "cooldown", cooldown) or 0))
            for kind in trigger_type.event_kinds:
                index.by_key.setdefault((kind, entry.symbol), []).append(entry)
            index.count += 1
        return index

    def candidates(self, event: dict) -> list[IndexedTrigger]:
        kind = event.get("kind", "")
        found = list(self.by_key.get((kind, ""), ()))
        symbols = event.get("symbols") or ([event["symbol"]] if event.get("symbol") else [])
        for symbol in symbols:
            found.extend(self.by_key.get((kind, str(symbol).upper()), ()))
        return found


_index_lock = threading.Lock()
_index: tuple[str | None, TriggerIndex] | None = None


def current_index(client=None) -> TriggerIndex:
    """The process's index, rebuilt when the version in Redis moved (one GET per call)."""
    global _index
    version = (client or redis_client()).get(INDEX_VERSION_KEY)
    cached = _index
    if cached is not None and cached[0] == version and version is not None:
        return cached[1]
    with _index_lock:
        index = TriggerIndex.build()
        _index = (version, index)
        return index


# --- evaluation ---------------------------------------------------------------------------------
def severity_priority(event: dict, detail: dict) -> tuple[float, str]:
    severity = detail.get("severity", event.get("severity"))
    severity = 0.5 if severity is None else max(0.0, min(1.0, float(severity)))
    priority = detail.get("priority") or event.get("priority")
    if priority not in ("high", "normal", "low"):
        priority = "high" if severity >= 0.7 else "normal" if severity >= 0.3 else "low"
    return round(severity, 4), priority


def event_time(event: dict, default: float) -> float:
    """When the event happened (its ``ts`` or ISO ``timestamp``): cooldowns run on event time, so a
    replayed or back-filled feed behaves as it did live."""
    ts = event.get("ts")
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return float(ts)
    try:
        return datetime.fromisoformat(str(event.get("timestamp")).replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return default


def evaluate(events: list[dict], *, fire_triggers: bool = True, client=None) -> list[dict]:
    """Match events against the index, update trigger states, fire on edges. Returns the firings."""
    client = client or redis_client()
    index = current_index(client)
    per_event = [index.candidates(e) if e.get("kind") != "schedule" else [] for e in events]
    ids = sorted({t.id for cands in per_event for t in cands})
    states: dict[int, dict] = {}
    if ids:
        for pk, raw in zip(ids, client.hmget(STATE_KEY, ids), strict=True):
            states[pk] = json.loads(raw) if raw else {}
    touched: set[int] = set()
    firings: list[dict] = []
    wall = time.time()
    for event, candidates in zip(events, per_event, strict=True):
        if event.get("kind") == "schedule":
            firings.append({"trigger_id": int(event["trigger_id"]), "event": event, "cooldown": 0})
            continue
        now = event_time(event, wall)
        discrete = event.get("kind") in DISCRETE_KINDS
        for trig in candidates:
            state = states[trig.id]
            try:
                holds, detail = trig.evaluator(trig.params, event, state)
            except Exception:  # noqa: BLE001 - one broken evaluator must not stop the others
                log.exception("trigger %s (%s) evaluator failed", trig.id, trig.type)
                continue
            touched.add(trig.id)
            was = bool(state.get("_holding"))
            state["_holding"] = bool(holds) and not discrete
            if not holds or (was and not discrete and detail.get("edge", True)):
                continue
            last = state.get("_last_fired")
            if last is not None and trig.cooldown and now - last < trig.cooldown:
                continue
            state["_last_fired"] = now
            severity, priority = severity_priority(event, detail or {})
            fired_event = {**event, "severity": severity, "priority": priority,
                           "trigger": {"id": trig.id, "type": trig.type, "position": trig.position,
                                       "workflow_id": trig.workflow_id},
                           "detail": detail or {}}
            firings.append({"trigger_id": trig.id, "event": fired_event, "cooldown": trig.cooldown})
    if touched:
        client.hset(STATE_KEY, mapping={pk: json.dumps(states[pk], separators=(",", ":")) for pk in touched})
    if fire_triggers:
        for firing in firings:
            fire(firing["trigger_id"], firing["event"], cooldown=firing["cooldown"], client=client)
    return firings


def fire(trigger_id: int, event: dict, *, cooldown: int = 0, client=None):
    """Start the trigger's workflow with the event (at most once per cooldown across workers)."""
    from workflows_app.services.executions import start_execution

    client = client or redis_client()
    if cooldown and not client.set(f"nexus:triggers:{trigger_id}:cooldown", event.get("id") or "1", nx=True,
                                   ex=int(cooldown)):
        return None
    with transaction.atomic():
        trigger = Trigger.objects.select_related("workflow", "workflow__current_version").filter(
            pk=trigger_id).first()
        if trigger is None or not trigger.enabled:
            return None
        workflow = trigger.workflow
        if workflow.status != Workflow.Status.ACTIVE:
            return None
        fired_at = timezone.now()
        Trigger.objects.filter(pk=trigger.pk).update(last_fired_at=fired_at)
        input_data = {"event": event, "trigger": trigger.type}
        symbols = event.get("symbols") or ([event["symbol"]] if event.get("symbol") else None)
        if symbols:
            input_data["symbols"] = list(symbols)
        execution = start_execution(workflow, input_data, trigger=trigger.type, trigger_event=event)
        audit.record("trigger_fired", workflow_id=workflow.id, execution_id=execution.id, trigger=trigger.type,
                     trigger_position=trigger.position, trigger_id=trigger.pk, event=event,
                     fired_at=fired_at.isoformat())
    return execution


def reset_state(trigger_ids: list[int] | None = None) -> None:
    client = redis_client()
    if trigger_ids is None:
        client.delete(STATE_KEY)
    elif trigger_ids:
        client.hdel(STATE_KEY, *trigger_ids)
