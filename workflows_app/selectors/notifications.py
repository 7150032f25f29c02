"""Reads of outbound notification deliveries and their attempts."""
from __future__ import annotations

from workflows_app.models import NotificationDelivery
from workflows_app.selectors.common import iso, sees_everything

MAX_ATTEMPTS_SHOWN = 20  # attempts listed per delivery (the newest), however many there were


def visible_deliveries(user):
    """Staff (and trusted local callers) see every delivery; a user those of their own workflows' executions."""
    qs = NotificationDelivery.objects.all()
    return qs if sees_everything(user) else qs.filter(execution__workflow__owner=user)


def delivery_row(delivery: NotificationDelivery, *, include_attempts: bool = False) -> dict:
    row = {"id": str(delivery.id), "kind": delivery.kind, "channel": delivery.channel,
           "format": delivery.channel_format, "status": delivery.status,
           "execution_id": str(delivery.execution_id) if delivery.execution_id else None,
           "attempts": delivery.attempts, "max_attempts": delivery.max_attempts, "last_error": delivery.last_error,
           "created_at": iso(delivery.created_at), "next_attempt_at": iso(delivery.next_attempt_at),
           "delivered_at": iso(delivery.delivered_at)}
    if include_attempts:
        newest = list(delivery.attempt_rows.order_by("-number")[:MAX_ATTEMPTS_SHOWN])
        row["attempt_log"] = [{"number": a.number, "status_code": a.status_code, "success": a.success,
                               "duration_ms": a.duration_ms, "error": a.error,
                               "response_excerpt": a.response_excerpt[:500], "at": iso(a.created_at)}
                              for a in reversed(newest)]
    return row
