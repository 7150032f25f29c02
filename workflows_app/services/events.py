"""Event ingestion: every event (poller tick or article, signed webhook, schedule, manual) is put on
the ``events`` named queue, deduplicated there by its id, and matched against triggers by the
queue's consumer (``handle_batch``), in order per symbol (the message group).

Webhooks: ``X-Nexus-Signature`` is ``hex(HMAC-SHA256(secret, f"{timestamp}." + body))`` (a
``sha256=`` prefix is accepted); the secret is per source (``NEXUS_WEBHOOK_SECRETS`` =
``"source:secret,..."`` or a dict); the timestamp must be within ``NEXUS_WEBHOOK_TOLERANCE``
seconds of now; a signature already seen is refused (a durable ``Guard``, so a Redis restart does
not reopen the replay window), so a captured request cannot be replayed. A webhook without an ``id``
gets one from its source and content (canonical JSON, no timestamp), so a sender that re-signs its
retries with fresh timestamps is deduplicated within the events queue's window.

An event keeps its payload's fields, ``source`` included (an article's "Reuters"); who handed it to
Nexus is ``ingest_source`` (``manual``, a webhook's source, ``beat``, a poller). ``source`` defaults
to the ingest source when the payload has none.

Accepted events are durable (``queues.send`` stores them in the database inbox before the reply);
the pollers' batches (``ingest_many``) are not, by design (see ``workflows_app.queues.inbox``).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import UTC, datetime

from django.db import transaction

from workflows_app import conf, guards, market_calendar, queues
from workflows_app.errors import OperationError
from workflows_app.models import Trigger
from workflows_app.services import triggers

log = logging.getLogger(__name__)
EVENTS_QUEUE = "events"
KIND_PATTERN_MAX = 50


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def make_event(kind: str, payload: dict, *, source: str = "manual", event_id: str | None = None) -> dict:
    if not isinstance(kind, str) or not kind or len(kind) > KIND_PATTERN_MAX or not kind.replace("_", "").isalnum():
        raise OperationError("INVALID_INPUT_DATA", "kind must be a short word such as tick, news or event",
                             {"field": "kind"})
    if not isinstance(payload, dict):
        raise OperationError("INVALID_INPUT_DATA", "payload must be an object", {"field": "payload"})
    event = dict(payload)
    event["kind"] = kind
    event["ingest_source"] = str(source or "manual")[:100]
    if not isinstance(event.get("source"), str) or not event["source"]:
        event["source"] = event["ingest_source"]
    event["source"] = event["source"][:100]
    event["id"] = str(event_id or payload.get("id") or uuid.uuid4())[:200]
    event.setdefault("timestamp", _now_iso())
    if event.get("symbol"):
        event["symbol"] = str(event["symbol"]).upper()
    if "severity" in event:
        try:
            event["severity"] = max(0.0, min(1.0, float(event["severity"])))
        except (TypeError, ValueError):
            raise OperationError("INVALID_INPUT_DATA", "severity must be a number in 0..1",
                                 {"field": "payload.severity"}) from None
    if "priority" in event and event["priority"] not in ("high", "normal", "low"):
        raise OperationError("INVALID_INPUT_DATA", "priority must be high, normal or low",
                             {"field": "payload.priority"})
    return event


def _group(event: dict) -> str:
    return str(event.get("symbol") or event.get("name") or event["kind"])[:100]


def ingest(kind: str, payload: dict, *, source: str = "manual", event_id: str | None = None) -> dict:
    """Put one event on the events queue (deduplicated by its id within the queue's window)."""
    event = make_event(kind, payload, source=source, event_id=event_id)
    reply = queues.send(EVENTS_QUEUE, event, group_id=_group(event), dedup_id=f"{event['kind']}:{event['id']}")
    return {"event_id": event["id"], "kind": event["kind"], "message_id": reply["message_id"],
            "deduplicated": reply["deduplicated"], "queue": EVENTS_QUEUE}


def ingest_many(events: list[dict], *, notify: bool = True) -> list[dict]:
    """Put many already-built events (``make_event``) on the events queue in one round trip."""
    items = [{"body": e, "group_id": _group(e), "dedup_id": f"{e['kind']}:{e['id']}"} for e in events]
    return queues.send_many(EVENTS_QUEUE, items, notify=notify)


def _events(messages: list[queues.Message]) -> list[dict]:
    return [m.body for m in messages if isinstance(m.body, dict)]


def handle_batch(messages: list[queues.Message], prefetched=None):
    """The events queue's consumer: match the batch against triggers and fire. Returns the trigger
    states' write, which the consumer queues before the batch's acknowledgement (one round trip);
    ``prefetched``: the reads ``prefetch_batch`` queued on the consumer's previous round trip."""
    events = _events(messages)
    if events:
        return triggers.evaluate_batch(events, prefetched=prefetched)[1]
    return None


def prefetch_batch(messages: list[queues.Message]):
    """What evaluating these messages will read (index version, trigger states), for the consumer
    to read ahead in the round trip that acknowledges the batch before them."""
    events = _events(messages)
    return triggers.prefetch(events) if events else None


handle_batch.batch = True  # type: ignore[attr-defined]
handle_batch.prefetch = prefetch_batch  # type: ignore[attr-defined]


# --- schedules ----------------------------------------------------------------------------------
def fire_schedule(trigger_id: int, now: datetime | None = None, scheduled_for: str | None = None) -> dict:
    """Beat fired a schedule trigger: ingest a schedule event, at most once per local wall-clock
    minute (a repeated hour when DST ends, or a second beat, cannot fire it twice). `scheduled_for`
    (ISO, sent by the beat) is the firing's own time, so a catch-up or a late worker fires the
    minute that was due; a calendar-aware trigger refuses a time that is not one of its firings."""
    trigger = Trigger.objects.filter(pk=trigger_id, type__in=triggers.SCHEDULE_TYPES).first()
    if trigger is None:
        return {"fired": False, "reason": "no such schedule trigger"}
    params = trigger.params or {}
    at = datetime.fromisoformat(scheduled_for) if scheduled_for else (now or datetime.now(UTC))
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    wall = market_calendar.wall_clock(params, at)
    if market_calendar.is_calendar_aware(params):
        refused = market_calendar.is_firing(params, at)
        if refused:
            return {"fired": False, "reason": refused, "wall_clock": wall}
    local = at.astimezone(market_calendar.trigger_zone(params))
    # The minute's claim and its event commit together: a failed ingest can be retried, a fired
    # minute never fires again (a durable guard: not forgotten when Redis restarts empty).
    with transaction.atomic():
        if not guards.claim("schedule", triggers.schedule_guard_key(trigger, wall), 3 * 24 * 3600):
            return {"fired": False, "reason": "already fired at this wall-clock time", "wall_clock": wall}
        payload = {"trigger_id": trigger_id, "workflow_id": str(trigger.workflow_id), "wall_clock": wall,
                   "scheduled_for": local.isoformat(), "priority": "normal"}
        payload.update({k: params[k] for k in ("cron", "timezone", "calendar", "exchange", "at") if params.get(k)})
        reply = ingest("schedule", payload, source="beat", event_id=f"schedule:{trigger_id}:{wall}")
    return {"fired": True, "wall_clock": wall, **reply}


# --- webhooks -----------------------------------------------------------------------------------
def webhook_secrets() -> dict[str, str]:
    raw = conf.get("NEXUS_WEBHOOK_SECRETS")
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items() if v}
    secrets = {}
    for part in str(raw).split(","):
        source, sep, secret = part.strip().partition(":")
        if sep and source and secret:
            secrets[source.strip()] = secret.strip()
    return secrets


def tolerance() -> int:
    return conf.get("NEXUS_WEBHOOK_TOLERANCE")


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _refuse(reason: str, message: str) -> OperationError:
    return OperationError("PERMISSION_DENIED", message, {"field": "signature", "reason": reason})


def verify_webhook(source: str, body: bytes, signature: str, timestamp, *, now: float | None = None) -> None:
    secret = webhook_secrets().get(str(source or ""))
    if not secret:
        raise _refuse("unknown_source", f"no webhook secret configured for source '{source}'")
    try:
        ts = int(str(timestamp).strip())
    except (TypeError, ValueError):
        raise _refuse("bad_timestamp", "timestamp must be Unix seconds") from None
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance():
        raise _refuse("stale", f"timestamp is outside the {tolerance()} s tolerance window")
    given = str(signature or "").strip()
    if given.startswith("sha256="):
        given = given[len("sha256="):]
    expected = sign(secret, ts, body)
    if not hmac.compare_digest(given.lower(), expected):
        raise _refuse("bad_signature", "signature does not match")
    if not guards.claim(f"webhook-seen:{source}", expected, 2 * tolerance() + 60, value=str(ts)):
        raise _refuse("replayed", "this signature was already used")


def receive_webhook(source: str, body: bytes, signature: str, timestamp) -> dict:
    if isinstance(body, str):
        body = body.encode()
    if not isinstance(body, bytes | bytearray) or len(body) > 256 * 1024:
        raise OperationError("INVALID_INPUT_DATA", "body must be at most 256 KiB of bytes", {"field": "body"})
    with transaction.atomic():  # the signature's guard and the accepted event commit together
        verify_webhook(source, bytes(body), signature, timestamp)
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise OperationError("INVALID_INPUT_DATA", "body must be JSON", {"field": "body"}) from None
        if not isinstance(data, dict):
            raise OperationError("INVALID_INPUT_DATA", "body must be a JSON object", {"field": "body"})
        name = data.get("event") or data.get("name") or data.get("type")
        payload = {k: v for k, v in data.items() if k not in ("kind", "ingest_source")}
        if name:
            payload["event"] = str(name)[:100]
        event_id = str(data.get("id") or content_event_id(source, data))
        return ingest("webhook", payload, source=source, event_id=event_id)


def content_event_id(source: str, data: dict) -> str:
    """The id of a webhook that has none, from its source and content (not its timestamp or
    signature): a retry re-signed with a fresh timestamp within the events queue's deduplication
    window gets the id of the first delivery, so it is deduplicated; the same content after the
    window is a new event (a new id, so the trigger's per-event guard does not swallow it)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    window = queues.get_queue(EVENTS_QUEUE).deduplication_window
    candidate = f"{source}:content:{digest}:{uuid.uuid4().hex[:8]}"
    scope = f"webhook-content:{source}"
    if guards.claim(scope, digest, window, value=candidate):
        return candidate
    held = guards.holder(scope, digest)
    return held.value if held else candidate
