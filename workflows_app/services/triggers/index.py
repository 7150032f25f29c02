"""The event-trigger index: (event kind, symbol) -> triggers, built per process from the database
and rebuilt when a workflow changes (a version token in Redis), so a tick only touches the triggers
of its own symbol."""
from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from workflows_app.circuit import redis_client
from workflows_app.models import Trigger, Workflow
from workflows_app.registry import registry

log = logging.getLogger(__name__)

INDEX_VERSION_KEY = "nexus:triggers:version"


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
        rows = Trigger.objects.filter(enabled=True, workflow__status=Workflow.Status.ACTIVE).values_list(
            "id", "workflow_id", "type", "position", "symbol", "params", "cooldown_seconds")
        return cls.from_rows(rows)

    @classmethod
    def for_definition(cls, workflow_id: str, triggers: list[dict]) -> TriggerIndex:
        """The index of one definition's triggers (ids are their positions), as ``build`` would make
        it from their rows: a backtest evaluates a workflow version's triggers with the live code."""
        rows = []
        for position, trig in enumerate(triggers):
            params = {k: v for k, v in trig.items() if k != "type"}
            rows.append((position, str(workflow_id), trig["type"], position, str(params.get("symbol") or "").upper(),
                         params, int(params.get("cooldown", 300))))
        return cls.from_rows(rows)

    @classmethod
    def from_rows(cls, rows) -> TriggerIndex:
        index = cls()
        groups: dict[tuple, ThresholdGroup] = {}
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


def cached_index() -> TriggerIndex | None:
    """The process's index as last built (None: not yet); ``is_current`` says whether it still is."""
    cached = _index
    return cached[1] if cached is not None else None


def is_current(index: TriggerIndex, version: str | None) -> bool:
    """Whether ``index`` is the process's index and was built at this version (read from Redis)."""
    cached = _index
    return cached is not None and cached[1] is index and version is not None and cached[0] == version


def current_index(client=None) -> TriggerIndex:
    """The process's index, rebuilt when the version in Redis moved (one GET per call). A Redis
    with no version (it restarted empty, or was flushed) gets a fresh token, so every process
    rebuilds its index once, not on every call."""
    global _index
    client = client or redis_client()
    version = client.get(INDEX_VERSION_KEY)
    if version is None:
        client.set(INDEX_VERSION_KEY, uuid.uuid4().hex, nx=True)
        version = client.get(INDEX_VERSION_KEY)
    cached = _index
    if cached is not None and cached[0] == version and version is not None:
        return cached[1]
    with _index_lock:
        index = TriggerIndex.build()
        _index = (version, index)
        return index
