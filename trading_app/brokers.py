"""What every broker takes and raises: the order request, and the errors of a refused order."""
from __future__ import annotations

from dataclasses import dataclass, field

from workflows_app.errors import PermanentStepError


class BrokerRejected(PermanentStepError):
    def __init__(self, message: str, order: dict | None = None):
        super().__init__(message, error_class="broker_rejected")
        self.order = order or {}


class RiskRejected(BrokerRejected):
    """Refused by the operator's caps in the order path (the last check before any order is sent)."""

    def __init__(self, message: str, order: dict | None = None):
        super().__init__(message, order)
        self.error_class = "risk_limit_breach"


@dataclass
class OrderRequest:
    symbol: str
    side: str  # buy / sell
    qty: float
    client_order_id: str
    type: str = "market"  # market / limit / stop
    limit_price: float | None = None
    stop_price: float | None = None
    time_in_force: str = "day"
    # bracket exits (attached to an entry order; handled on price updates by the paper broker)
    stop_loss: float | None = None
    take_profit: float | None = None
    trail_percent: float | None = None
    execution_id: str = ""
    step_name: str = ""
    test_mode: bool = False
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.side not in ("buy", "sell"):
            raise BrokerRejected(f"side must be buy or sell, got {self.side!r}")
        if self.type not in ("market", "limit", "stop"):
            raise BrokerRejected(f"order type must be market, limit or stop, got {self.type!r}")
        if not self.qty or self.qty <= 0:
            raise BrokerRejected(f"qty must be positive, got {self.qty!r}")
        if self.type == "limit" and not self.limit_price:
            raise BrokerRejected("a limit order needs limit_price")
        if self.type == "stop" and not self.stop_price:
            raise BrokerRejected("a stop order needs stop_price")
        if not self.client_order_id or len(self.client_order_id) > 128:
            raise BrokerRejected("client_order_id is required (at most 128 characters)")


def client_order_id_for(idempotency_key: str, suffix: str = "") -> str:
    """A client_order_id derived from the step's idempotency key: stable across retries/redeliveries.

    Alpaca allows 128 characters; long keys are hashed so the id stays unique and short.
    """
    import hashlib

    raw = f"nexus-{idempotency_key}" + (f"-{suffix}" if suffix else "")
    if len(raw) <= 48:
        return raw.replace(":", "-")
    digest = hashlib.sha256(raw.encode()).hexdigest()[:32]
    return f"nexus-{digest}"
