"""Trading records: broker accounts, orders, fills, positions, account snapshots, news, kill switch.

Money and quantities are Decimals (exact accounting). Orders placed through Alpaca are recorded
here too (``broker="alpaca"``) so the trades-executed counter and the admin see every order.
"""
from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from trading_app.risk import check_ceiling

MONEY = {"max_digits": 20, "decimal_places": 6}
ZERO = Decimal("0")


class BrokerAccount(models.Model):
    """An account orders go to: a built-in paper account, or the Alpaca account configured from
    settings (``broker="alpaca"``). Every order, fill, position and snapshot belongs to one.

    ``kind``: ``user`` (a user's own paper account, created on first use: ``default_for``), ``demo``
    (the demo's), ``house`` (the operator's: owner-less workflows, the Alpaca row). Positions,
    orders and P&L are visible to ``owners`` and staff only. ``halted`` is this account's kill
    switch (the global one still stops everything); ``max_position_pct`` / ``max_gross_exposure``
    tighten the operator's ceilings for this account (never loosen them).
    """

    class Kind(models.TextChoices):
        USER = "user"
        DEMO = "demo"
        HOUSE = "house"
        BACKTEST = "backtest"  # one per backtest run: nothing else trades on it

    name = models.CharField(max_length=64, unique=True, default="default")
    broker = models.CharField(max_length=16, default="paper")  # paper / alpaca
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.HOUSE)
    owners = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="broker_accounts")
    default_for = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="default_broker_account")
    halted = models.BooleanField(default=False, help_text="this account's kill switch")
    halt_reason = models.CharField(max_length=300, blank=True, default="")
    max_position_pct = models.FloatField(null=True, blank=True, help_text="tightens NEXUS_MAX_POSITION_PCT")
    max_gross_exposure = models.FloatField(null=True, blank=True, help_text="tightens NEXUS_MAX_GROSS_EXPOSURE")
    starting_cash = models.DecimalField(**MONEY)
    cash = models.DecimalField(**MONEY)
    reserved_cash = models.DecimalField(default=ZERO, **MONEY)
    realized_pnl = models.DecimalField(default=ZERO, **MONEY)
    total_commission = models.DecimalField(default=ZERO, **MONEY)
    slippage_bps = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("5"))
    commission_per_share = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0.005"))
    commission_min = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("1"))
    allow_short = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.broker} account {self.name}"

    def clean(self):
        for name in ("max_position_pct", "max_gross_exposure"):
            try:
                check_ceiling(name, getattr(self, name))
            except ValueError as exc:
                raise ValidationError({name: str(exc)}) from None


PaperAccount = BrokerAccount  # the name before accounts had owners (kept for imports)


class Order(models.Model):
    class Side(models.TextChoices):
        BUY = "buy"
        SELL = "sell"

    class Type(models.TextChoices):
        MARKET = "market"
        LIMIT = "limit"
        STOP = "stop"

    class Status(models.TextChoices):
        NEW = "new"
        ACCEPTED = "accepted"
        PARTIALLY_FILLED = "partially_filled"
        FILLED = "filled"
        CANCELED = "canceled"
        REJECTED = "rejected"
        EXPIRED = "expired"
        HELD = "held"  # bracket leg waiting for its parent's fill

    OPEN_STATUSES = ("new", "accepted", "partially_filled", "held")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    broker = models.CharField(max_length=16, default="paper")
    account = models.ForeignKey(BrokerAccount, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="orders")
    client_order_id = models.CharField(max_length=128, unique=True)
    broker_order_id = models.CharField(max_length=128, blank=True, default="")
    symbol = models.CharField(max_length=16, db_index=True)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=8, choices=Type.choices, default=Type.MARKET)
    order_class = models.CharField(max_length=16, default="simple")  # simple / bracket / oco leg
    qty = models.DecimalField(**MONEY)
    limit_price = models.DecimalField(null=True, blank=True, **MONEY)
    stop_price = models.DecimalField(null=True, blank=True, **MONEY)
    time_in_force = models.CharField(max_length=8, default="day")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW, db_index=True)
    filled_qty = models.DecimalField(default=ZERO, **MONEY)
    filled_avg_price = models.DecimalField(null=True, blank=True, **MONEY)
    # bracket: the exits attached to an entry order, and the legs' link to their parent
    stop_loss_price = models.DecimalField(null=True, blank=True, **MONEY)
    take_profit_price = models.DecimalField(null=True, blank=True, **MONEY)
    trail_percent = models.DecimalField(max_digits=10, decimal_places=6, null=True, blank=True)
    high_water_mark = models.DecimalField(null=True, blank=True, **MONEY)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="legs")
    leg = models.CharField(max_length=16, blank=True, default="")  # stop_loss / take_profit
    reject_reason = models.TextField(blank=True, default="")
    execution_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    step_name = models.CharField(max_length=128, blank=True, default="")
    test_mode = models.BooleanField(default=False)
    raw = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    filled_at = models.DateTimeField(null=True, blank=True, db_index=True)
    canceled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "filled_at"])]

    def __str__(self) -> str:
        return f"{self.side} {self.qty} {self.symbol} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    def as_dict(self) -> dict:
        def f(v):
            return None if v is None else float(v)

        return {
            "order_id": str(self.id) if self.broker == "paper" else (self.broker_order_id or str(self.id)),
            "client_order_id": self.client_order_id,
            "broker": self.broker,
            "symbol": self.symbol,
            "side": self.side,
            "type": self.order_type,
            "order_class": self.order_class,
            "qty": f(self.qty),
            "filled_qty": f(self.filled_qty),
            "filled_avg_price": f(self.filled_avg_price),
            "limit_price": f(self.limit_price),
            "stop_price": f(self.stop_price),
            "stop_loss": f(self.stop_loss_price),
            "take_profit": f(self.take_profit_price),
            "status": self.status,
            "reject_reason": self.reject_reason or None,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "filled_at": self.filled_at.isoformat() if self.filled_at else None,
            "legs": [str(leg.id) for leg in self.legs.all()] if self.pk and self.order_class == "bracket" else [],
        }


class Fill(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="fills")
    account = models.ForeignKey(BrokerAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="fills")
    symbol = models.CharField(max_length=16)
    side = models.CharField(max_length=4)
    qty = models.DecimalField(**MONEY)
    price = models.DecimalField(**MONEY)
    market_price = models.DecimalField(null=True, blank=True, **MONEY)
    commission = models.DecimalField(default=ZERO, **MONEY)
    realized_pnl = models.DecimalField(default=ZERO, **MONEY)
    cash_after = models.DecimalField(null=True, blank=True, **MONEY)
    positions_value_after = models.DecimalField(null=True, blank=True, **MONEY)
    equity_after = models.DecimalField(null=True, blank=True, **MONEY)
    timestamp = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-timestamp"]

    def __str__(self) -> str:
        return f"fill {self.side} {self.qty} {self.symbol} @ {self.price}"


class Position(models.Model):
    account = models.ForeignKey(BrokerAccount, on_delete=models.CASCADE, related_name="positions")
    symbol = models.CharField(max_length=16)
    qty = models.DecimalField(default=ZERO, **MONEY)  # negative = short
    avg_entry_price = models.DecimalField(default=ZERO, **MONEY)
    last_price = models.DecimalField(default=ZERO, **MONEY)
    realized_pnl = models.DecimalField(default=ZERO, **MONEY)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "symbol"], name="trading_position_unique")]
        ordering = ["symbol"]

    def __str__(self) -> str:
        return f"{self.symbol} {self.qty}"

    @property
    def market_value(self) -> Decimal:
        return self.qty * self.last_price

    @property
    def unrealized_pnl(self) -> Decimal:
        return self.qty * (self.last_price - self.avg_entry_price)

    def as_dict(self) -> dict:
        return {
            "symbol": self.symbol, "qty": float(self.qty), "avg_entry_price": float(self.avg_entry_price),
            "last_price": float(self.last_price), "market_value": float(self.market_value),
            "unrealized_pnl": float(self.unrealized_pnl), "realized_pnl": float(self.realized_pnl),
            "side": "long" if self.qty >= 0 else "short",
        }


class AccountSnapshot(models.Model):
    broker = models.CharField(max_length=16, default="paper")
    account = models.ForeignKey(BrokerAccount, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="snapshots")
    cash = models.DecimalField(**MONEY)
    positions_value = models.DecimalField(**MONEY)
    equity = models.DecimalField(**MONEY)
    gross_exposure = models.DecimalField(default=ZERO, **MONEY)
    net_exposure = models.DecimalField(default=ZERO, **MONEY)
    reason = models.CharField(max_length=64, blank=True, default="")
    execution_id = models.CharField(max_length=64, blank=True, default="")
    positions = models.JSONField(default=list, blank=True)
    taken_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-taken_at"]

    def __str__(self) -> str:
        return f"{self.broker} equity {self.equity} at {self.taken_at:%Y-%m-%d %H:%M:%S}"


class FundsReservation(models.Model):
    """reserve_funds / release_funds: cash set aside by a saga step (idempotent per key)."""

    account = models.ForeignKey(BrokerAccount, on_delete=models.CASCADE, related_name="reservations")
    key = models.CharField(max_length=200, unique=True)
    amount = models.DecimalField(**MONEY)
    status = models.CharField(max_length=16, default="active")  # active / released / consumed
    created_at = models.DateTimeField(default=timezone.now)
    released_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"reservation {self.amount} ({self.status})"


class PortfolioEntry(models.Model):
    """update_portfolio / revert_portfolio: the portfolio book's record of an order (idempotent per key)."""

    key = models.CharField(max_length=200, unique=True)
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    symbol = models.CharField(max_length=16, blank=True, default="")
    qty_delta = models.DecimalField(default=ZERO, **MONEY)
    cost = models.DecimalField(default=ZERO, **MONEY)
    status = models.CharField(max_length=16, default="applied")  # applied / reverted
    created_at = models.DateTimeField(default=timezone.now)
    reverted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"portfolio entry {self.symbol} {self.qty_delta} ({self.status})"


class NewsItem(models.Model):
    provider = models.CharField(max_length=16)
    external_id = models.CharField(max_length=200)
    headline = models.TextField()
    summary = models.TextField(blank=True, default="")
    source = models.CharField(max_length=128, blank=True, default="")
    url = models.URLField(max_length=1000, blank=True, default="")
    symbols = models.JSONField(default=list, blank=True)
    published_at = models.DateTimeField(null=True, blank=True, db_index=True)
    breaking = models.BooleanField(default=False)
    sentiment = models.FloatField(null=True, blank=True)
    fetched_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-published_at"]
        constraints = [models.UniqueConstraint(fields=["provider", "external_id"], name="trading_news_unique")]

    def __str__(self) -> str:
        return self.headline[:80]


class Notification(models.Model):
    """send_notification / send_failure_alert / alert_user: what was sent, to whom, about what."""

    kind = models.CharField(max_length=32)  # notification / failure_alert / alert / retraction
    key = models.CharField(max_length=200, unique=True)
    channel = models.CharField(max_length=32, default="log")
    subject = models.CharField(max_length=300)
    body = models.JSONField(default=dict, blank=True)
    execution_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}"


class KillSwitch(models.Model):
    """Singleton (pk=1): while active, every order path refuses new orders."""

    active = models.BooleanField(default=False)
    reason = models.CharField(max_length=300, blank=True, default="")
    updated_by = models.CharField(max_length=150, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "kill switch"
        verbose_name_plural = "kill switch"

    def __str__(self) -> str:
        return "kill switch: " + ("ACTIVE" if self.active else "off")

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):  # a singleton is switched off, not deleted
        self.active = False
        self.save()

    @classmethod
    def load(cls) -> KillSwitch:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


from trading_app.backtest.bars import StoredBar  # noqa: E402,F401 - imported bars, a record of its own module
from trading_app.backtest.record import Backtest  # noqa: E402,F401 - a trading record of its own module
from trading_app.governor.models import RiskEvent, RiskState  # noqa: E402,F401 - the governor's records
