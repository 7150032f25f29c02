"""The governor's durable state: one ``RiskState`` per broker account (locked for every order) and
the ``RiskEvent`` log of its decisions, breaches, warnings and resets (imported by trading_app.models)."""
from __future__ import annotations

from django.db import models


class RiskState(models.Model):
    """Where an account stands (active / reduce_only / halted: latching until an operator resets it),
    the baselines its loss limits are measured from, the streaks of breaching readings, and the
    account's own limits (each may only tighten the operator's ceiling of the same name)."""

    class State(models.TextChoices):
        ACTIVE = "active"
        REDUCE_ONLY = "reduce_only"
        HALTED = "halted"

    account = models.OneToOneField("trading_app.BrokerAccount", on_delete=models.CASCADE, related_name="risk_state")
    state = models.CharField(max_length=12, choices=State.choices, default=State.ACTIVE)
    reason = models.CharField(max_length=300, blank=True, default="")
    breached_limit = models.CharField(max_length=32, blank=True, default="")
    since = models.DateTimeField(null=True, blank=True)
    day = models.DateField(null=True, blank=True, help_text="exchange-local date of day_open_equity")
    day_open_equity = models.FloatField(null=True, blank=True)
    peak_equity = models.FloatField(null=True, blank=True)
    last_reading = models.JSONField(default=dict, blank=True)  # usage per limit at the last valid reading
    streaks = models.JSONField(default=dict, blank=True)  # limit -> consecutive valid breaching readings
    warned = models.JSONField(default=dict, blank=True)  # limit -> exchange date of its 80 % warning
    order_times = models.JSONField(default=list, blank=True)  # epoch seconds of the last minute's orders
    max_daily_loss = models.FloatField(null=True, blank=True, help_text="tightens NEXUS_RISK_MAX_DAILY_LOSS")
    max_drawdown = models.FloatField(null=True, blank=True, help_text="tightens NEXUS_RISK_MAX_DRAWDOWN")
    max_net_exposure = models.FloatField(null=True, blank=True, help_text="tightens NEXUS_RISK_MAX_NET_EXPOSURE")
    max_order_notional = models.FloatField(null=True, blank=True, help_text="tightens NEXUS_RISK_MAX_ORDER_NOTIONAL")
    max_orders_per_minute = models.FloatField(null=True, blank=True,
                                              help_text="tightens NEXUS_RISK_MAX_ORDERS_PER_MINUTE")
    reset_by = models.CharField(max_length=150, blank=True, default="")
    reset_reason = models.CharField(max_length=300, blank=True, default="")
    reset_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"risk state of {self.account_id}: {self.state}"

    def clean(self):
        from django.core.exceptions import ValidationError

        from trading_app.governor.limits import OverrideTooLoose, check_override

        for field in ("max_daily_loss", "max_drawdown", "max_net_exposure", "max_order_notional",
                      "max_orders_per_minute"):
            try:
                check_override(field, getattr(self, field))
            except OverrideTooLoose as exc:
                raise ValidationError({field: str(exc)}) from None


class RiskEvent(models.Model):
    """One governor event: an order decision (allowed / reduced / refused), a breach, a warning, a reset."""

    account = models.ForeignKey("trading_app.BrokerAccount", on_delete=models.CASCADE, related_name="risk_events")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=16)  # decision / breach / warning / reset
    decision = models.CharField(max_length=12, blank=True, default="")  # allowed / reduced / refused
    limit = models.CharField(max_length=32, blank=True, default="")
    reason = models.CharField(max_length=500, blank=True, default="")
    state = models.CharField(max_length=12, blank=True, default="")
    execution_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    step = models.CharField(max_length=128, blank=True, default="")
    client_order_id = models.CharField(max_length=128, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.decision} {self.limit}".strip()
