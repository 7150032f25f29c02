"""Matching events against the index: each trigger type's evaluator says whether its condition
holds for an event; a trigger fires on the edge (the condition starts to hold) for level events
such as ticks, on every match for discrete events such as news, and never twice within its cooldown."""
from __future__ import annotations

import bisect
import logging
import time
from datetime import datetime

from workflows_app import codec
from workflows_app.circuit import redis_client
from workflows_app.registry import registry
from workflows_app.services.triggers.firing import fire
from workflows_app.services.triggers.index import (
    INDEX_VERSION_KEY,
    IndexedTrigger,
    Slot,
    ThresholdGroup,
    TriggerIndex,
    cached_index,
    current_index,
    is_current,
)
from workflows_app.services.triggers.observed import STATE_KEY, remember_evaluated, remember_features, settle

log = logging.getLogger(__name__)

# Events that happen once (an article, a webhook call) are the kinds the plugins declare discrete
# (registry.discrete_kinds): every match fires (cooldown permitting). Any other kind (tick, bar,
# vix, ...) is a level: a trigger fires when its condition starts to hold.


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

    def __init__(self, client, index: TriggerIndex, blobs: dict[str, str | None]):
        self.client, self.index = client, index
        self.blobs: dict[str, dict] = {}
        for bucket, raw in blobs.items():
            blob = codec.loads(raw) if raw else {}
            blob.setdefault("s", {})
            blob.setdefault("t", {})
            self.blobs[bucket] = blob
        self.touched: set[str] = set()
        self.firings: list[dict] = []

    @classmethod
    def over(cls, index: TriggerIndex, held: dict[str, dict], buckets: list[str]) -> _Batch:
        """A batch over a state the caller holds (a backtest's): its blobs are changed in place and
        never read from or written to Redis."""
        batch = cls(None, index, {})
        for bucket in buckets:
            blob = held.setdefault(bucket, {})
            blob.setdefault("s", {})
            blob.setdefault("t", {})
            batch.blobs[bucket] = blob
        return batch

    def features(self, cache: dict, bucket: str, shared_key: str, evaluator, params, event, now: float):
        fkey = (bucket, shared_key)
        if fkey not in cache:
            cache[fkey] = evaluator.compute(params, event, self.blobs[bucket]["s"].setdefault(shared_key, {}))
            remember_features(self.blobs[bucket], shared_key, cache[fkey], now)  # for workflow_status
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

    def writes(self):
        """The touched buckets' states as a write to queue on a pipeline (None: nothing changed)."""
        if not self.touched:
            return None
        mapping = {}
        for bucket in self.touched:
            blob = self.blobs[bucket]
            alive = self.index.by_bucket.get(bucket, set())
            blob["t"] = {k: v for k, v in blob["t"].items() if k in alive}
            settle(blob)  # what the evaluation measured, for workflow_status
            mapping[bucket] = codec.dumps(blob)
        return lambda pipe: pipe.hset(STATE_KEY, mapping=mapping)


def evaluate(events: list[dict], *, fire_triggers: bool = True, client=None) -> list[dict]:
    """Match events against the index, update trigger states, fire on edges. Returns the firings.

    State lives in one Redis hash, one field per bucket (event kind + symbol) holding
    ``{"s": {shared key: shared state}, "t": {trigger id: {"h": holding, "f": last fired}}}``:
    one round trip to read it (with the index version) and one HSET per batch, whatever the
    number of triggers."""
    client = client or redis_client()
    firings, writes = evaluate_batch(events, fire_triggers=fire_triggers, client=client)
    if writes is not None:
        pipe = client.pipeline(transaction=False)
        writes(pipe)
        pipe.execute()
    return firings


def evaluate_batch(events: list[dict], *, fire_triggers: bool = True, client=None, prefetched: Prefetch | None = None):
    """``evaluate`` without the final write: (the firings, the state write for a pipeline or None).

    The queue consumer queues the write on the pipeline that acknowledges the batch: the states
    land before the ack, in its round trip (a consumer that dies between firing and acking leaves
    the batch unacked and the old states: it is evaluated again, see below). ``prefetched``: the
    reads made for these events in an earlier round trip (``prefetch``), used if still current."""
    client = client or redis_client()
    loaded = prefetched.loaded(events) if prefetched is not None else None
    index, per_event, blobs = loaded or _load(events, client)
    batch = _Batch(client, index, blobs)
    wall = time.time()
    for event, slots in zip(events, per_event, strict=True):
        if event.get("kind") == "schedule":
            batch.firings.append({"trigger_id": int(event["trigger_id"]), "event": event, "cooldown": 0})
        elif slots:
            _match(batch, event, slots, event_time(event, wall))
    if fire_triggers:
        # Fire before saving the states: if a firing fails, the batch is redelivered and evaluated
        # again from the old states; triggers that did fire are not started twice (see fire()).
        for firing in batch.firings:
            fire(firing["trigger_id"], firing["event"], cooldown=firing["cooldown"], client=client)
    return batch.firings, batch.writes()


def _slots(index: TriggerIndex, events: list[dict]) -> tuple[list[list[Slot]], list[str]]:
    per_event = [index.slots(e) if e.get("kind") != "schedule" else [] for e in events]
    buckets = sorted({t.bucket for slots in per_event for slot in slots for t in slot.plain}
                     | {g.bucket for slots in per_event for slot in slots for g in slot.groups})
    return per_event, buckets


def _load(events: list[dict], client) -> tuple[TriggerIndex, list[list[Slot]], dict[str, str | None]]:
    """The index, each event's slots and the states of their buckets: the index version and the
    states in one round trip (the process's index is checked against the version read with them;
    when it moved, the index is rebuilt and the states read again)."""
    index = cached_index()
    for _ in range(3):
        per_event, buckets = _slots(index, events) if index is not None else ([], [])
        pipe = client.pipeline(transaction=False)
        pipe.get(INDEX_VERSION_KEY)
        if buckets:
            pipe.hmget(STATE_KEY, buckets)
        reply = pipe.execute()
        if index is not None and is_current(index, reply[0]):
            return index, per_event, dict(zip(buckets, reply[1] if buckets else [], strict=True))
        index = current_index(client)
    per_event, buckets = _slots(index, events)  # the version keeps moving: read the states on their own
    return index, per_event, dict(zip(buckets, client.hmget(STATE_KEY, buckets) if buckets else [], strict=True))


class Prefetch:
    """What evaluating a batch of events reads first - the index version and the states of the
    buckets they touch - queued on someone else's round trip (the queue consumer's, which
    acknowledges the batch before): ``queue(pipeline)``, then ``take(replies)``."""

    def __init__(self, index: TriggerIndex, events: list[dict]):
        self.index, self.count = index, len(events)
        self.per_event, self.buckets = _slots(index, events)
        self.replies: list | None = None

    def queue(self, pipe) -> None:
        pipe.get(INDEX_VERSION_KEY)
        if self.buckets:
            pipe.hmget(STATE_KEY, self.buckets)

    def take(self, replies: list) -> None:
        self.replies = replies

    def loaded(self, events: list[dict]):
        """(index, slots per event, states) if the reads are there and the index is still current."""
        if self.replies is None or self.count != len(events) or not is_current(self.index, self.replies[0]):
            return None
        return self.index, self.per_event, dict(zip(self.buckets, self.replies[1] if self.buckets else [], strict=True))


def prefetch(events: list[dict]) -> Prefetch | None:
    """The reads for evaluating ``events``, to queue on a round trip before (None: no index yet)."""
    index = cached_index()
    return Prefetch(index, events) if index is not None else None


def evaluate_held(index: TriggerIndex, events: list[dict], blobs: dict[str, dict]) -> list[dict]:
    """The same matching, edges and cooldowns as ``evaluate`` over a state the caller holds (a
    backtest replaying history on a simulated clock: ``blobs`` lives as long as the replay). No Redis
    is read or written and nothing is fired: the firings are returned to the caller. Events must come
    in time order; cooldowns run on each event's own time."""
    firings: list[dict] = []
    for event in events:
        slots = index.slots(event)
        if not slots:
            continue
        buckets = sorted({t.bucket for slot in slots for t in slot.plain} | {g.bucket for slot in slots for g in slot.groups})
        batch = _Batch.over(index, blobs, buckets)
        _match(batch, event, slots, event_time(event, 0.0))
        firings.extend(batch.firings)
    return firings


def _match(batch: _Batch, event: dict, slots: list[Slot], now: float) -> None:
    discrete = registry.is_discrete(event.get("kind"))
    cache: dict = {}  # shared features, computed once per (bucket, shared key) for this event
    for slot in slots:
        for group in slot.groups:
            _match_group(batch, group, event, now, discrete, cache)
        for trig in slot.plain:
            _match_one(batch, trig, event, now, discrete, cache)


def _match_group(batch: _Batch, group: ThresholdGroup, event: dict, now: float, discrete: bool, cache: dict) -> None:
    """The group's triggers whose level the measure reaches hold (found by bisection); those that
    remember something are visited too, so their edge or cooldown moves on."""
    ev = group.evaluator
    feats = batch.features(cache, group.bucket, group.shared_key, ev, group.triggers[0].params, event, now)
    if feats is None:
        count = 0
    else:
        try:
            count = bisect.bisect_right(group.levels, ev.measure(group.group, feats))
        except Exception:  # noqa: BLE001
            log.exception("trigger group %s measure failed", group.shared_key)
            return
    tmap = batch.blobs[group.bucket]["t"]
    visit = set(range(count))
    visit.update(group.by_key[k][0] for k in tmap if k in group.by_key)
    for i in sorted(visit):
        batch.edge(group.triggers[i], event, i < count, now, discrete, feats=feats)


def _match_one(batch: _Batch, trig: IndexedTrigger, event: dict, now: float, discrete: bool, cache: dict) -> None:
    try:
        if trig.shared_key is not None:
            feats = batch.features(cache, trig.bucket, trig.shared_key, trig.evaluator, trig.params, event, now)
            holds = feats is not None and bool(trig.evaluator.decide(trig.params, feats))
            detail = None
        else:
            tmap = batch.blobs[trig.bucket]["t"]
            tstate = tmap.setdefault(trig.key, {})
            holds, detail = trig.evaluator(trig.params, event, tstate.setdefault("x", {}))
            holds, feats = bool(holds), None
            remember_evaluated(batch.blobs[trig.bucket], now)
    except Exception:  # noqa: BLE001 - one broken evaluator must not stop the others
        log.exception("trigger %s (%s) evaluator failed", trig.id, trig.type)
        return
    if holds or trig.key in batch.blobs[trig.bucket]["t"]:
        batch.edge(trig, event, holds, now, discrete, feats=feats, detail=detail)


def reset_state() -> None:
    """Forget every trigger's state (holding flags, cooldowns, reference prices)."""
    redis_client().delete(STATE_KEY)
