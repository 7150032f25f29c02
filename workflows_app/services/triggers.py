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
"""
from __future__ import annotations

import bisect
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from workflows_app import audit, guards
from workflows_app.circuit import redis_client
from workflows_app.engine import start_execution
from workflows_app.models import Trigger, Workflow
from workflows_app.registry import registry

log = logging.getLogger(__name__)

FIRE_SCHEDULE_TASK = "nexus.events.fire_schedule"
INDEX_VERSION_KEY = "nexus:triggers:version"
STATE_KEY = "nexus:triggers:state"
# Events that happen once (an article, a webhook call) are the kinds the plugins declare discrete
# (registry.discrete_kinds): every match fires (cooldown permitting). Any other kind (tick, bar,
# vix, ...) is a level: a trigger fires when its condition starts to hold.


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
    # A random token, not a counter: a counter restarts at 1 when Redis restarts empty and could
    # match the version a process cached before, which would keep a stale index.
    try:
        redis_client().set(INDEX_VERSION_KEY, uuid.uuid4().hex)
    except Exception:  # noqa: BLE001 - an unreachable Redis must not fail a definition change
        log.exception("could not bump the trigger index version")


# --- evaluators that share work ------------------------------------------------------------------
class SharedEvaluator:
    """An evaluator whose costly part depends on a few params only (e.g. the symbol's reference
    price over a window): ``compute(params, event, shared_state) -> features`` runs once per event
    for all triggers with the same ``key(params)`` on the same symbol, then
    ``decide(params, features) -> bool`` per trigger and ``detail(params, features) -> dict`` for a
    firing. Called directly it is a plain ``evaluator(params, event, state)``.

    With ``threshold(params) -> (group, level) | None`` and ``measure(group, features) -> float``
    (the condition is ``measure >= level``), the index keeps each group's triggers sorted by level
    and a tick finds the ones that hold by bisection: triggers whose condition does not hold and
    that have nothing to remember cost nothing."""

    def __init__(self, key, compute, decide, detail, threshold=None, measure=None):
        self.key, self.compute, self.decide, self.detail = key, compute, decide, detail
        self.threshold, self.measure = threshold, measure

    def __call__(self, params, event: dict, state: dict) -> tuple[bool, dict]:
        features = self.compute(params, event, state.setdefault("_shared", {}))
        if features is None:
            return False, {}
        holds = self.decide(params, features)
        return holds, self.detail(params, features) if holds else {}


# --- the index ----------------------------------------------------------------------------------
@dataclass
class IndexedTrigger:
    id: int
    workflow_id: str
    type: str
    position: int
    symbol: str
    params: Any
    evaluator: Any
    cooldown: int
    bucket: str  # where its state lives: "<kind>:<symbol>"
    shared_key: str | None  # SharedEvaluator: its shared state's key within the bucket
    key: str = ""

    def __post_init__(self):
        # The workflow's uuid is part of the key: trigger ids restart after a database reset while
        # Redis keeps its state, and a new trigger must not inherit an old one's holding/cooldown.
        self.key = f"{self.workflow_id}:{self.id}"


@dataclass
class ThresholdGroup:
    """Triggers of one shared evaluator on one symbol, sorted by the level their measure must reach."""

    bucket: str
    shared_key: str
    group: Any
    evaluator: SharedEvaluator
    levels: list = field(default_factory=list)
    triggers: list = field(default_factory=list)
    by_key: dict = field(default_factory=dict)


@dataclass
class Slot:
    plain: list = field(default_factory=list)  # evaluated one by one
    groups: list = field(default_factory=list)  # ThresholdGroups


class TriggerIndex:
    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], Slot] = {}
        self.by_bucket: dict[str, set[str]] = {}
        self.count = 0

    @classmethod
    def build(cls) -> TriggerIndex:
        index = cls()
        groups: dict[tuple, ThresholdGroup] = {}
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
            symbol = (symbol or "").upper()
            evaluator = trigger_type.evaluator
            shared = isinstance(evaluator, SharedEvaluator)
            shared_key = f"{type_name}:{evaluator.key(model)}" if shared else None
            entry = IndexedTrigger(pk, str(workflow_id), type_name, position, symbol, model, evaluator,
                                   int(getattr(model, "cooldown", cooldown) or 0),
                                   f"{trigger_type.event_kinds[0]}:{symbol}", shared_key)
            threshold = evaluator.threshold(model) if shared and evaluator.threshold else None
            for kind in trigger_type.event_kinds:
                slot = index.by_key.setdefault((kind, symbol), Slot())
                if threshold is None:
                    slot.plain.append(entry)
                    continue
                gkey = (kind, symbol, shared_key, threshold[0])
                group = groups.get(gkey)
                if group is None:
                    group = groups[gkey] = ThresholdGroup(entry.bucket, shared_key, threshold[0], evaluator)
                    slot.groups.append(group)
                group.triggers.append((float(threshold[1]), entry))
            index.by_bucket.setdefault(entry.bucket, set()).add(entry.key)
            index.count += 1
        for group in groups.values():
            group.triggers.sort(key=lambda pair: pair[0])
            group.levels = [level for level, _ in group.triggers]
            group.triggers = [t for _, t in group.triggers]
            group.by_key = {t.key: (i, t) for i, t in enumerate(group.triggers)}
        return index

    def slots(self, event: dict) -> list[Slot]:
        kind = event.get("kind", "")
        found = []
        slot = self.by_key.get((kind, ""))
        if slot is not None:
            found.append(slot)
        symbols = event.get("symbols") or ([event["symbol"]] if event.get("symbol") else [])
        for symbol in symbols:
            slot = self.by_key.get((kind, str(symbol).upper()))
            if slot is not None:
                found.append(slot)
        return found

    def candidates(self, event: dict) -> list[IndexedTrigger]:
        out = []
        for slot in self.slots(event):
            out.extend(slot.plain)
            for group in slot.groups:
                out.extend(group.triggers)
        return out


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


class _Batch:
    """State of one evaluation batch: the buckets' blobs, what changed, what fired."""

    def __init__(self, client, index: TriggerIndex, buckets: list[str]):
        self.client, self.index = client, index
        self.blobs: dict[str, dict] = {}
        if buckets:
            for bucket, raw in zip(buckets, client.hmget(STATE_KEY, buckets), strict=True):
                blob = json.loads(raw) if raw else {}
                blob.setdefault("s", {})
                blob.setdefault("t", {})
                self.blobs[bucket] = blob
        self.touched: set[str] = set()
        self.firings: list[dict] = []

    def features(self, cache: dict, bucket: str, shared_key: str, evaluator, params, event):
        fkey = (bucket, shared_key)
        if fkey not in cache:
            cache[fkey] = evaluator.compute(params, event, self.blobs[bucket]["s"].setdefault(shared_key, {}))
            self.touched.add(bucket)
        return cache[fkey]

    def edge(self, trig: IndexedTrigger, event: dict, holds: bool, now: float, discrete: bool, *,
             feats=None, detail: dict | None = None) -> None:
        """Remember whether the condition holds; fire when it starts to (cooldown permitting)."""
        tmap = self.blobs[trig.bucket]["t"]
        tstate = tmap.get(trig.key) or {}
        was = tstate.get("h", False)
        holding = holds and not discrete
        if holding:
            tstate["h"] = True
        else:
            tstate.pop("h", None)
        last = tstate.get("f")
        if last is not None and (not trig.cooldown or now - last >= trig.cooldown) and not holds:
            tstate.pop("f", None)  # its cooldown is over: nothing left to remember
        fire_now = holds and not (was and not discrete) and not (
            last is not None and trig.cooldown and now - last < trig.cooldown)
        if fire_now:
            tstate["f"] = now
        if tstate:
            tmap[trig.key] = tstate
        else:
            tmap.pop(trig.key, None)
        self.touched.add(trig.bucket)
        if not fire_now:
            return
        if trig.shared_key is not None and feats is not None:
            detail = trig.evaluator.detail(trig.params, feats)
        detail = detail or {}
        severity, priority = severity_priority(event, detail)
        fired_event = {**event, "severity": severity, "priority": priority,
                       "trigger": {"id": trig.id, "type": trig.type, "position": trig.position,
                                   "workflow_id": trig.workflow_id},
                       "detail": detail}
        self.firings.append({"trigger_id": trig.id, "event": fired_event, "cooldown": trig.cooldown})

    def save(self) -> None:
        if not self.touched:
            return
        mapping = {}
        for bucket in self.touched:
            blob = self.blobs[bucket]
            alive = self.index.by_bucket.get(bucket, set())
            blob["t"] = {k: v for k, v in blob["t"].items() if k in alive}
            mapping[bucket] = json.dumps(blob, separators=(",", ":"))
        self.client.hset(STATE_KEY, mapping=mapping)


def evaluate(events: list[dict], *, fire_triggers: bool = True, client=None) -> list[dict]:
    """Match events against the index, update trigger states, fire on edges. Returns the firings.

    State lives in one Redis hash, one field per bucket (event kind + symbol) holding
    ``{"s": {shared key: shared state}, "t": {trigger id: {"h": holding, "f": last fired}}}``:
    one HMGET and one HSET per batch, whatever the number of triggers."""
    client = client or redis_client()
    index = current_index(client)
    per_event = [index.slots(e) if e.get("kind") != "schedule" else [] for e in events]
    buckets = sorted({t.bucket for slots in per_event for slot in slots for t in slot.plain}
                     | {g.bucket for slots in per_event for slot in slots for g in slot.groups})
    batch = _Batch(client, index, buckets)
    wall = time.time()
    for event, slots in zip(events, per_event, strict=True):
        if event.get("kind") == "schedule":
            batch.firings.append({"trigger_id": int(event["trigger_id"]), "event": event, "cooldown": 0})
            continue
        if not slots:
            continue
        now = event_time(event, wall)
        discrete = registry.is_discrete(event.get("kind"))
        cache: dict = {}
        for slot in slots:
            for group in slot.groups:
                ev = group.evaluator
                feats = batch.features(cache, group.bucket, group.shared_key, ev, group.triggers[0].params, event)
                if feats is None:
                    count = 0
                else:
                    try:
                        count = bisect.bisect_right(group.levels, ev.measure(group.group, feats))
                    except Exception:  # noqa: BLE001
                        log.exception("trigger group %s measure failed", group.shared_key)
                        continue
                tmap = batch.blobs[group.bucket]["t"]
                visit = set(range(count))
                visit.update(group.by_key[k][0] for k in tmap if k in group.by_key)
                for i in sorted(visit):
                    trig = group.triggers[i]
                    batch.edge(trig, event, i < count, now, discrete, feats=feats)
            for trig in slot.plain:
                try:
                    if trig.shared_key is not None:
                        feats = batch.features(cache, trig.bucket, trig.shared_key, trig.evaluator, trig.params,
                                               event)
                        holds = feats is not None and bool(trig.evaluator.decide(trig.params, feats))
                        detail = None
                    else:
                        tmap = batch.blobs[trig.bucket]["t"]
                        tstate = tmap.setdefault(trig.key, {})
                        holds, detail = trig.evaluator(trig.params, event, tstate.setdefault("x", {}))
                        holds, feats = bool(holds), None
                except Exception:  # noqa: BLE001 - one broken evaluator must not stop the others
                    log.exception("trigger %s (%s) evaluator failed", trig.id, trig.type)
                    continue
                if holds or trig.key in batch.blobs[trig.bucket]["t"]:
                    batch.edge(trig, event, holds, now, discrete, feats=feats, detail=detail)
    if fire_triggers:
        # Fire before saving the states: if a firing fails, the batch is redelivered and evaluated
        # again from the old states; triggers that did fire are not started twice (see fire()).
        for firing in batch.firings:
            fire(firing["trigger_id"], firing["event"], cooldown=firing["cooldown"], client=client)
    batch.save()
    return batch.firings


FIRED_TTL = 7 * 24 * 3600  # how long "fired for this event" is remembered (longer than any dedup window)


def fire(trigger_id: int, event: dict, *, cooldown: int = 0, client=None):
    """Start the trigger's workflow with the event: at most once per (trigger, event) - a redelivered
    or replayed batch does not start a second execution - and at most once per cooldown across
    workers. Both guards are database rows claimed in the transaction that starts the execution:
    a firing that fails releases them, a firing that commits holds them whatever Redis forgets."""
    owner = (event.get("trigger") or {}).get("workflow_id") or ""
    with transaction.atomic():
        trigger = Trigger.objects.select_related("workflow", "workflow__current_version").filter(
            pk=trigger_id).first()
        if trigger is None or not trigger.enabled:
            return None
        workflow = trigger.workflow
        if workflow.status != Workflow.Status.ACTIVE:
            return None
        owner = owner or str(workflow.id)
        if event.get("id") and not guards.claim("trigger-fired", f"{owner}:{trigger_id}:{event['id']}", FIRED_TTL):
            return None
        if cooldown and not guards.claim("trigger-cooldown", f"{owner}:{trigger_id}", cooldown,
                                         value=str(event.get("id") or "")):
            transaction.set_rollback(True)  # not fired: this event may fire it after the cooldown
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


def reset_state() -> None:
    """Forget every trigger's state (holding flags, cooldowns, reference prices)."""
    redis_client().delete(STATE_KEY)
