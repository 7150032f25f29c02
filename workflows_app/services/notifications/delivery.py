"""Accept, send and recover deliveries.

Accepted means durable: ``notify`` writes the rows in the caller's transaction (a rolled-back step
leaves no delivery behind, a committed one cannot be lost) and sends the Celery message after the
commit. Redis may lose that message: the maintenance sweep re-enqueues due deliveries nobody took.
A worker claims a delivery with one conditional UPDATE before it posts, so two messages for the
same delivery (a re-run task, a sweep racing a slow worker) post it once; a success is final.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import timedelta

import requests
from celery import current_app
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from workflows_app import conf
from workflows_app.errors import OperationError
from workflows_app.models import Execution, NotificationAttempt, NotificationDelivery
from workflows_app.services.notifications import channels as ch

log = logging.getLogger("nexus.notifications")
S = NotificationDelivery.Status
DELIVER_TASK = "nexus.notifications.deliver"
# A claim outlives the delivery task's hard time limit (90 s): a worker still posting always holds it, so
# the sweep re-opens only the deliveries of a worker that died.
LEASE_SECONDS = 120.0
EARLY = timedelta(seconds=1)  # a countdown message may run this much before next_attempt_at (clock skew)
SWEEP_BATCH = 500


def _bad(message: str, field: str) -> OperationError:
    return OperationError("INVALID_INPUT_DATA", message, {"field": field})


def _choose(kind: str, names: list[str] | None) -> list[ch.Channel]:
    configured = ch.configured()
    if names is None:
        return [c for c in configured.values() if c.takes(kind)]
    unknown = [n for n in names if n not in configured]
    if unknown:
        raise _bad(f"no notification channel named {unknown[0]!r}", "channels")
    return [configured[n] for n in dict.fromkeys(names)]


def _execution(execution) -> Execution | None:
    if execution is None or isinstance(execution, Execution):
        return execution
    found = Execution.objects.filter(pk=execution).only("id", "test_mode").first()
    if found is None:
        raise OperationError("EXECUTION_NOT_FOUND", f"no execution {execution}", {"field": "execution"})
    return found


def notify(kind: str, payload: dict, *, execution=None, channels: list[str] | None = None,
           key: str | None = None) -> list[str]:
    """Record one delivery per channel (the named ones, else every channel taking ``kind``) and send
    each after the commit; the delivery ids. ``key`` makes a repeated call (a retried step) return the
    deliveries of the first. An execution in test mode gets rows marked ``skipped``: nothing is sent."""
    if not isinstance(kind, str) or not kind or len(kind) > 100:
        raise _bad("kind must be a string of 1 to 100 characters", "kind")
    if not isinstance(payload, dict):
        raise _bad("payload must be an object", "payload")
    if channels is not None and not (isinstance(channels, list | tuple) and all(isinstance(n, str) for n in channels)):
        raise _bad("channels must be a list of channel names", "channels")
    payload = _bounded(payload)
    chosen = _choose(kind, channels)
    if not chosen:
        return []  # no channel takes this kind: nothing to record
    execution = _execution(execution)
    test_mode = bool(execution and execution.test_mode)
    ids, due = [], []
    with transaction.atomic():
        for channel in chosen:
            delivery = _record(channel, kind, payload, execution, key, test_mode)
            ids.append(str(delivery.pk))
            if delivery.status == S.PENDING and delivery.attempts == 0:
                due.append(delivery.pk)
    transaction.on_commit(lambda: enqueue(due), robust=True)
    return ids


def _bounded(payload: dict) -> dict:
    """The payload as stored (JSON values; anything else as its text), refused above the size ceiling."""
    text = json.dumps(payload, default=str)
    limit = int(conf.get("NEXUS_NOTIFY_MAX_PAYLOAD_BYTES"))
    if len(text.encode()) > limit:
        raise _bad(f"the payload is {len(text.encode())} bytes as JSON; the limit is {limit}", "payload")
    return json.loads(text)


def _record(channel: ch.Channel, kind: str, payload: dict, execution, key, test_mode: bool):
    pk = uuid.uuid4()
    now = timezone.now()
    envelope = {"id": str(pk), "created_at": now.isoformat(),
                "execution_id": str(execution.pk) if execution else None}
    body = ch.render(channel, kind, payload, envelope)
    limit = int(conf.get("NEXUS_NOTIFY_MAX_PAYLOAD_BYTES"))
    if len(body.encode()) > limit:
        raise _bad(f"the notification is {len(body.encode())} bytes rendered; the limit is {limit}", "payload")
    fields = {"id": pk, "kind": kind, "channel_format": channel.format, "execution": execution,
              "payload": payload, "body": body,
              "status": S.SKIPPED if test_mode else S.PENDING, "max_attempts": channel.attempts(),
              "next_attempt_at": now, "last_error": "test mode: not sent" if test_mode else ""}
    if key is None:
        return NotificationDelivery.objects.create(channel=channel.name, **fields)
    delivery, _ = NotificationDelivery.objects.get_or_create(key=key[:255], channel=channel.name, defaults=fields)
    return delivery


def enqueue(ids, countdown: float | None = None) -> None:
    """Ask a worker to send these (a lost message is the sweep's to replace, so a failure is only logged)."""
    for pk in ids:
        try:
            current_app.send_task(DELIVER_TASK, args=(str(pk),), countdown=countdown)
        except Exception as exc:  # noqa: BLE001 - Redis down: the delivery is durable, the sweep re-sends it
            log.warning("notification %s not enqueued (%s); the sweep will", pk, type(exc).__name__)


def _claim(pk: str) -> bool:
    now = timezone.now()
    lease = now + timedelta(seconds=LEASE_SECONDS)
    claimable = Q(status=S.PENDING, next_attempt_at__lte=now + EARLY) | Q(status=S.SENDING, lease_until__lt=now)
    return bool(NotificationDelivery.objects.filter(claimable, pk=pk)
                .update(status=S.SENDING, lease_until=lease, attempts=F("attempts") + 1))


def deliver(delivery_id: str) -> dict:
    """One attempt at a delivery (the task's body); a delivery not due, or already final, is left alone."""
    delivery = NotificationDelivery.objects.filter(pk=delivery_id).only("channel").first()
    if delivery is None:
        return {"delivery_id": delivery_id, "sent": False, "status": "missing"}
    channel = ch.configured().get(delivery.channel)
    if not _claim(delivery_id):
        return {"delivery_id": delivery_id, "sent": False,
                "status": NotificationDelivery.objects.filter(pk=delivery_id).values_list("status", flat=True)
                .first()}
    delivery = NotificationDelivery.objects.get(pk=delivery_id)
    if channel is None:
        outcome = {"status_code": None, "excerpt": "", "duration_ms": 0.0,
                   "error": f"channel {delivery.channel!r} is no longer configured"}
        return _finish(delivery, outcome, give_up=True)
    return _finish(delivery, post(channel, delivery))


def post(channel: ch.Channel, delivery: NotificationDelivery) -> dict:
    """POST the stored body, freshly signed; status code, bounded reply excerpt, duration, error."""
    headers = ch.signed_headers(channel, delivery.body, str(delivery.pk), delivery.kind)
    limit = int(conf.get("NEXUS_NOTIFY_RESPONSE_EXCERPT"))
    started = time.monotonic()
    try:
        with requests.post(str(channel.url), data=delivery.body.encode(), headers=headers,
                           timeout=channel.timeout, allow_redirects=False, stream=True) as reply:
            excerpt = reply.raw.read(limit * 4, decode_content=True).decode("utf-8", "replace")[:limit]
            code = reply.status_code
        error = "" if 200 <= code < 300 else f"HTTP {code}"
    except requests.RequestException as exc:
        code, excerpt, error = None, "", _redact(f"{type(exc).__name__}: {exc}", channel)
    return {"status_code": code, "excerpt": excerpt, "error": error[:500],
            "duration_ms": round((time.monotonic() - started) * 1000, 1)}


def _redact(text: str, channel: ch.Channel) -> str:
    """An error names the host, never the URL's path or query (a Slack or bot URL is itself a credential)."""
    url = channel.url
    for secret_part in (str(url), url.path or "", url.query or "", channel.secret):
        if secret_part and secret_part != "/":
            text = text.replace(secret_part, "<redacted>")
    return text


def backoff(attempt: int) -> float:
    base, cap = float(conf.get("NEXUS_NOTIFY_BACKOFF")), float(conf.get("NEXUS_NOTIFY_BACKOFF_MAX"))
    return min(base * 2 ** max(attempt - 1, 0), cap)


def _finish(delivery: NotificationDelivery, outcome: dict, give_up: bool = False) -> dict:
    ok = not outcome["error"]
    now = timezone.now()
    retry_in = None if ok or give_up or delivery.attempts >= delivery.max_attempts else backoff(delivery.attempts)
    with transaction.atomic():
        NotificationAttempt.objects.create(
            delivery=delivery, number=delivery.attempts, status_code=outcome["status_code"], success=ok,
            duration_ms=outcome["duration_ms"], response_excerpt=outcome["excerpt"], error=outcome["error"])
        status = S.SUCCESS if ok else (S.PENDING if retry_in is not None else S.FAILED)
        NotificationDelivery.objects.filter(pk=delivery.pk, status=S.SENDING).update(
            status=status, lease_until=None, last_error=outcome["error"], updated_at=now,
            delivered_at=now if ok else None,
            next_attempt_at=now + timedelta(seconds=retry_in) if retry_in is not None else delivery.next_attempt_at)
        if retry_in is not None:
            transaction.on_commit(lambda: enqueue([delivery.pk], countdown=retry_in), robust=True)
    if not ok:
        log.warning("notification %s to %s: attempt %d failed (%s)%s", delivery.pk, delivery.channel,
                    delivery.attempts, outcome["error"], f"; next in {retry_in:.0f}s" if retry_in else "")
    return {"delivery_id": str(delivery.pk), "sent": True, "status": status, "attempt": delivery.attempts,
            "status_code": outcome["status_code"], "retry_in": retry_in}


def sweep(now=None) -> dict:
    """Re-enqueue deliveries nobody took: due for longer than NEXUS_NOTIFY_STALE_SECONDS (their message
    was lost), or claimed by a worker whose lease ran out (it died mid-send)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=float(conf.get("NEXUS_NOTIFY_STALE_SECONDS")))
    lost = Q(status=S.PENDING, next_attempt_at__lte=stale) | Q(status=S.SENDING, lease_until__lt=now)
    ids = list(NotificationDelivery.objects.filter(lost).order_by("next_attempt_at")
               .values_list("pk", flat=True)[:SWEEP_BATCH])
    # Moved to now: a backlogged worker that has not reached the message yet gets one extra message per
    # stale period at most, and either one finds the delivery claimable.
    NotificationDelivery.objects.filter(pk__in=ids, status=S.PENDING).update(next_attempt_at=now)
    enqueue(ids)
    return {"requeued": len(ids)}


def retry(delivery: NotificationDelivery) -> dict:
    """Re-open a failed delivery for another round of attempts (admin / notification_retry)."""
    if delivery.status != S.FAILED:
        raise OperationError("CONFLICT", f"delivery {delivery.pk} is {delivery.status}; only a failed one is "
                             "retried", {"field": "delivery_id"})
    channel = ch.configured().get(delivery.channel)
    extra = channel.attempts() if channel else int(conf.get("NEXUS_NOTIFY_MAX_ATTEMPTS"))
    with transaction.atomic():
        updated = NotificationDelivery.objects.filter(pk=delivery.pk, status=S.FAILED).update(
            status=S.PENDING, next_attempt_at=timezone.now(), max_attempts=F("attempts") + extra)
        if updated:
            transaction.on_commit(lambda: enqueue([delivery.pk]), robust=True)
    return {"delivery_id": str(delivery.pk), "status": S.PENDING if updated else delivery.status,
            "retried": bool(updated)}
