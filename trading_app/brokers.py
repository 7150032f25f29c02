"""What every broker takes and raises: the order request, and the errors of a refused order."""
from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

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


class Broker:
    """What every broker is: ``submit_order`` is this class's and no broker may override it, so every
    order of every step type passes the risk governor (``trading_app.governor.gate.submit``).

    A broker implements ``_place`` (send the judged order), ``risk_reading`` (equity, positions and
    the symbol's price for the governor), ``governed_account`` (the account row it trades for), and
    may refine ``normalise`` (the symbol), ``existing_order`` (a retry finds its order before any
    judgement) and ``resolve_refused`` (a refused retry that did go through resolves to it)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "submit_order" in vars(cls):
            raise TypeError(f"{cls.__name__} overrides submit_order: orders must pass the risk governor "
                            f"(implement _place instead)")

    def submit_order(self, req: OrderRequest) -> dict:
        from trading_app.governor import gate

        self.normalise(req)
        existing = self.existing_order(req.client_order_id)
        if existing is not None:
            return existing
        req.validate()
        try:
            return gate.submit(self, req)
        except RiskRejected:
            found = self.resolve_refused(req)
            if found is not None:
                return found
            raise

    def normalise(self, req: OrderRequest) -> None:
        return None

    def existing_order(self, client_order_id: str) -> dict | None:
        return None

    def resolve_refused(self, req: OrderRequest) -> dict | None:
        return None

    def governed_account(self):
        raise NotImplementedError

    def now(self):
        """The broker's clock, by which the governor counts its day and its orders per minute (a
        backtest's broker answers with the simulated time)."""
        return timezone.now()

    def risk_reading(self, symbol: str):
        raise NotImplementedError

    def _place(self, req: OrderRequest) -> dict:
        raise NotImplementedError


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
