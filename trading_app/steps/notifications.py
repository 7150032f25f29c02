"""Notification steps: send_notification and its compensation send_failure_alert, and the
alert_user action. Each is recorded as a ``Notification`` (idempotent per step), logged, and delivered
to the outbound channels that take its kind (``workflows_app.services.notifications``; test mode
records the deliveries as skipped and sends nothing).
"""
from __future__ import annotations

import logging
import re
from typing import Literal

from pydantic import Field

from trading_app.models import Notification
from trading_app.steps.common import Params, data_step
from workflows_app.registry import StepContext
from workflows_app.steps import deliver_outbound

logger = logging.getLogger("nexus.trading.saga")


class NotificationParams(Params):
    channel: Literal["log"] = "log"
    subject: str | None = Field(None, max_length=300)
    message: str | None = Field(None, max_length=4000)
    channels: list[str] | None = Field(None, max_length=20, description="Outbound channels to deliver to; "
                                       "default: every channel taking the kind `notification`; [] for none.")


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\}")


def render(template: str | None, context: dict) -> str | None:
    """Fill ``{name}`` / ``{step.key}`` placeholders from the execution context (plain lookups only:
    no attribute access, no format specs); unknown names are left as they are."""
    if not template:
        return template

    def value(match):
        top = context.get(match.group(1))
        if match.group(2) is not None:
            top = top.get(match.group(2)) if isinstance(top, dict) else None
        if top is None or isinstance(top, dict | list):
            return match.group(0)
        return str(top)

    return _PLACEHOLDER.sub(value, template)


def context_summary(ctx: StepContext) -> dict:
    """The context's headline values (symbol, signal, order, ...) a notification or a queued signal carries."""
    keys = ("symbol", "signal", "confidence", "order_id", "status", "side", "qty", "filled_avg_price", "category",
            "risk_level", "sentiment")
    return {k: (ctx.context or {}).get(k) for k in keys if (ctx.context or {}).get(k) is not None}


def _notify(ctx: StepContext, kind: str, subject: str, body: dict, channel: str = "log",
            channels: list[str] | None = None) -> dict:
    note, created = Notification.objects.get_or_create(key=f"{ctx.idempotency_key}:{kind}", defaults={
        "kind": kind, "channel": channel, "subject": subject[:300], "body": body, "execution_id": ctx.execution_id})
    if created:
        logger.warning("[%s] %s %s", kind, subject, body) if kind != "notification" else \
            logger.info("[%s] %s %s", kind, subject, body)
    payload = {"subject": note.subject, **note.body, "workflow": ctx.workflow_name, "execution_id": ctx.execution_id}
    return {"notification_id": note.pk, "kind": kind, "channel": note.channel, "subject": note.subject,
            "sent": True, "duplicate": not created, "body": note.body,
            "delivery_ids": deliver_outbound(ctx, kind, payload, channels)}


def send_notification(ctx: StepContext) -> dict:
    p: NotificationParams = ctx.params
    summary = context_summary(ctx)
    context = ctx.context or {}
    # `{signal}`, `{generate_signals.confidence}` placeholders are filled from the context
    subject = render(p.subject, context) or f"{ctx.workflow_name}: " + ", ".join(
        f"{k}={v}" for k, v in summary.items())
    return _notify(ctx, "notification", subject, {"message": render(p.message, context), **summary}, p.channel,
                   p.channels)


def send_failure_alert(ctx: StepContext) -> dict:
    comp = ctx.compensating or {}
    return _notify(ctx, "failure_alert", f"{ctx.workflow_name}: execution {ctx.execution_id} failed and was "
                                         f"compensated", {"retracts": comp.get("notification_id"),
                                                          "summary": context_summary(ctx)})


class AlertParams(Params):
    message: str | None = Field(None, max_length=4000)
    severity: Literal["info", "warning", "critical"] = "warning"


def alert_user(ctx: StepContext) -> dict:
    p: AlertParams = ctx.params
    summary = context_summary(ctx)
    subject = render(p.message, ctx.context or {}) or f"{ctx.workflow_name}: {summary or 'alert'}"
    return {**_notify(ctx, "alert", subject, {"severity": p.severity, **summary}), "severity": p.severity}


# --- declarations (trading_app.plugin collects them) ---------------------------------------------
STEP_TYPES = (
    data_step("send_notification", send_notification, NotificationParams,
              description="Saga: record a notification (compensate: send_failure_alert)."),
    data_step("send_failure_alert", send_failure_alert, description="Saga compensation of send_notification."),
    data_step("alert_user", alert_user, AlertParams, action=True,
              description="Action: record and log an alert with the context's summary."),
)
