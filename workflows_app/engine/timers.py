"""The timer: resume waiting executions whose wake-up time has come (a beat job, every
NEXUS_TIMER_EVERY s, on the `maintenance` queue), and a short wait's own delayed wake message.

It reads only the database (`status = waiting AND wake_at <= now`), so after a Redis loss or a
beat restart it still finds every due wait. A wait's end continues the execution; an approval's
expiry rejects it by default (its request marked `expired`, decided by "timer"). Two timers racing
resume each execution once (suspend.resume's conditional UPDATE); so do a timer and a decision.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from workflows_app import audit, conf, market_calendar
from workflows_app.engine.suspend import APPROVED, REJECTED, iso, resume
from workflows_app.models import ApprovalRequest, Execution, StepRun

S = Execution.Status
BATCH = 500  # due executions per pass; the next pass takes the rest


def resolve_until(value: str, now: datetime | None = None, exchange: str = "XNYS") -> datetime:
    """The time a wait's `until` names: an ISO 8601 timestamp with a timezone, or a moment of the
    exchange's calendar (``next_open``, ``next_close``, ``open+5m``, ``close-10m``, ``HH:MM`` in the
    exchange's time), the first one after `now` (holidays, early closes and DST applied). The one place
    it is resolved (at save: validity; at run: the time). Raises ValueError naming what is accepted."""
    text = str(value or "").strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is not None:
        if when.tzinfo is None:
            raise ValueError("needs a timezone (Z or an offset such as +01:00)")
        return when
    try:
        return market_calendar.next_market_moment(exchange, text, now or timezone.now(), session_only=False)
    except market_calendar.CalendarError as exc:
        raise ValueError("must be an ISO 8601 timestamp with a timezone (2026-12-02T14:30:00Z) or a market "
                         f"moment (next_open, next_close, open+5m, close-10m, HH:MM): {exc}") from None


def resume_due(now: datetime | None = None, limit: int = BATCH) -> list[str]:
    """Resume every waiting execution due by `now` (default: the current time); the ids resumed."""
    now = now or timezone.now()
    due = list(Execution.objects.filter(status=S.WAITING, wake_at__lte=now).order_by("wake_at")
               .values_list("pk", flat=True)[:limit])
    return [str(pk) for pk in due if wake(pk, now)]


def wake(execution_id, now: datetime | None = None) -> bool:
    """Resume one waiting execution if it is due: a wait ends, an approval expires (rejected)."""
    now = now or timezone.now()
    run = (StepRun.objects.filter(execution_id=execution_id, status=StepRun.Status.WAITING, is_compensation=False)
           .order_by("-id").first())
    if run is None:
        return False
    request = ApprovalRequest.objects.filter(step_run=run).first()
    if request is None:
        output = dict((run.result or {}).get("on_wake") or {})
        output.setdefault("resumed_at", iso(now))
        return resume(execution_id, APPROVED, output, reason="wait_over", due_by=now)
    with transaction.atomic():
        if not resume(execution_id, REJECTED, expired_output(request, now), reason="approval_expired", due_by=now):
            return False
        # Same transaction as the resume: the request is expired exactly when the execution moved on.
        ApprovalRequest.objects.filter(pk=request.pk, status=ApprovalRequest.Status.PENDING).update(
            status=ApprovalRequest.Status.EXPIRED, decided_at=now, decided_by_label="timer")
        audit.record("approval_expired", workflow_id=request.execution.workflow_id, execution_id=execution_id,
                     step=request.step_name, approval_id=str(request.id), expires_at=iso(request.expires_at))
    return True


def expired_output(request: ApprovalRequest, now: datetime) -> dict:
    return {"approved": False, "decision": "expired", "decided_by": "timer", "decided_at": iso(now),
            "comment": "", "expires_at": iso(request.expires_at)}


def timer_health(now: datetime | None = None) -> dict:
    """/health/: waits are resumed on time (none is overdue by more than ten timer periods, at least a
    minute); an overdue wait means the timer is not running (beat, or the maintenance consumer)."""
    now = now or timezone.now()
    grace = max(60.0, 10 * float(conf.get("NEXUS_TIMER_EVERY")))
    waiting = Execution.objects.filter(status=S.WAITING)
    overdue = waiting.filter(wake_at__lt=now - timedelta(seconds=grace))
    oldest = overdue.order_by("wake_at").values_list("wake_at", flat=True).first()
    reply = {"ok": oldest is None, "waiting": waiting.count(), "overdue": overdue.count() if oldest else 0}
    if oldest is not None:
        reply.update(oldest_due_at=iso(oldest), error="waits are overdue: is beat (nexus-timers) running, and a "
                                                      "worker consuming `maintenance`?")
    return reply
