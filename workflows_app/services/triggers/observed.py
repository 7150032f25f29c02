"""Why a trigger did or did not fire: what its last evaluation measured against its threshold, whether
the condition holds, the cooldown left, when it was last evaluated and fired.

Recording costs the event path almost nothing: a shared evaluator's features (a few numbers: price,
reference, change; volume, average, ratio; ...), which the evaluation computed anyway, are referenced
from the bucket's state blob under ``m`` (two dict writes per event), checked and rounded once per
bucket and batch (``settle``), and written with the blob in the batch's one HSET. A plain evaluator's bucket records only when it was
last evaluated (``e``). Reading (``trigger_states``) is one HMGET per call, and the threshold, the
measure and whether it holds are computed there, from the recorded features, by the trigger type's
own evaluator - not per tick."""
from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from workflows_app import codec
from workflows_app.circuit import redis_client
from workflows_app.models import Trigger
from workflows_app.registry import registry
from workflows_app.services.triggers.index import SharedEvaluator

log = logging.getLogger(__name__)

STATE_KEY = "nexus:triggers:state"  # the evaluation's hash: one field per bucket (see evaluation.evaluate)
MAX_FEATURES = 8  # features longer than this (or not plain numbers) are not recorded


def remember_features(blob: dict, shared_key: str, features, now: float) -> None:
    """Per event: two dict writes (the check and the rounding wait for ``settle``, once per batch)."""
    blob.setdefault("m", {})[shared_key] = (features, now)
    blob["e"] = now


def remember_evaluated(blob: dict, now: float) -> None:
    blob["e"] = now


def settle(blob: dict) -> None:
    """Once per bucket and batch, before the blob is written: keep only small numeric features."""
    for key, (features, ts) in list((blob.get("m") or {}).items()):
        if isinstance(features, list | tuple) and len(features) <= MAX_FEATURES and all(
                f is None or isinstance(f, int | float) for f in features):
            blob["m"][key] = [list(features), round(ts, 3)]
        else:
            del blob["m"][key]
    if "e" in blob:
        blob["e"] = round(blob["e"], 3)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


def _number(value):
    return None if value is None or value in (float("inf"), float("-inf")) else round(float(value), 6)


def _measured(evaluator: SharedEvaluator, params, features) -> dict:
    """The trigger's own view of the recorded features: value vs threshold, holds, the detail."""
    out: dict = {"holds": bool(evaluator.decide(params, features))}
    threshold = evaluator.threshold(params) if evaluator.threshold else None
    if threshold is not None and evaluator.measure is not None:
        out["value"] = _number(evaluator.measure(threshold[0], features))
        out["threshold"] = _number(threshold[1])
        if threshold[0]:
            out["measure"] = str(threshold[0])
    try:
        out["measured"] = evaluator.detail(params, features)
    except Exception:  # noqa: BLE001 - a detail that needs more than was recorded: value and holds remain
        out["measured"] = None
    return out


def _one(trigger: Trigger, trigger_type, blob: dict, now: float) -> dict:
    params = trigger_type.params_model.model_validate(trigger.params or {})
    cooldown = int(getattr(params, "cooldown", trigger.cooldown_seconds) or 0)
    key = f"{trigger.workflow_id}:{trigger.pk}"
    tstate = (blob.get("t") or {}).get(key) or {}
    state = {"symbol": trigger.symbol or None, "cooldown": cooldown, "value": None, "threshold": None,
             "holds": None, "holding": bool(tstate.get("h")), "measured": None,
             "last_evaluated_at": _iso(blob.get("e"))}
    evaluator = trigger_type.evaluator
    if isinstance(evaluator, SharedEvaluator):
        shared_key = f"{trigger.type}:{evaluator.key(params)}"
        recorded = (blob.get("m") or {}).get(shared_key)
        if recorded:
            state.update(_measured(evaluator, params, recorded[0]))
            state["last_evaluated_at"] = _iso(recorded[1])
    last = trigger.last_fired_at.timestamp() if trigger.last_fired_at else tstate.get("f")
    state["cooldown_remaining"] = round(max(0.0, last + cooldown - now), 3) if last and cooldown else 0.0
    return state


def trigger_states(triggers: list[Trigger], now: float | None = None) -> dict[int, dict]:
    """Each event trigger's observed state, by trigger id (schedules and manual triggers have none)."""
    now = time.time() if now is None else now
    wanted = []
    for trigger in triggers:
        trigger_type = registry.trigger_types.get(trigger.type)
        if trigger_type is not None and trigger_type.event_kinds and trigger_type.evaluator is not None:
            wanted.append((trigger, trigger_type, f"{trigger_type.event_kinds[0]}:{(trigger.symbol or '').upper()}"))
    if not wanted:
        return {}
    try:
        raw = redis_client().hmget(STATE_KEY, sorted({bucket for _, _, bucket in wanted}))
        blobs = dict(zip(sorted({bucket for _, _, bucket in wanted}), raw, strict=True))
    except Exception as exc:  # noqa: BLE001 - the status still answers, saying what it could not read
        return {t.pk: {"error": f"trigger state unavailable: {type(exc).__name__}"} for t, _, _ in wanted}
    out = {}
    for trigger, trigger_type, bucket in wanted:
        try:
            out[trigger.pk] = _one(trigger, trigger_type, codec.loads(blobs[bucket]) if blobs[bucket] else {}, now)
        except Exception as exc:  # noqa: BLE001 - one stale definition must not hide the others
            log.warning("trigger %s state unreadable: %s", trigger.pk, exc)
            out[trigger.pk] = {"error": f"state unreadable: {type(exc).__name__}"}
    return out
