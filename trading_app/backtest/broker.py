"""The backtest broker: the paper broker's interface, risk checks and ledger on a throw-away account,
with the pessimistic fill model of ``fills`` instead of filling at the current price.

``submit_order`` is the paper broker's own (validation, kill switch, buying power, short rules and
the operator's caps with the account row locked); nothing fills at submission. The replay then
calls ``on_open(symbol, bar)`` (market orders at the open, volume-capped) and ``on_close(symbol,
bar)`` (limit, stop and bracket legs against the bar's high/low), which book fills through
``paper_ledger.fill`` at the simulated time. Exit legs follow the paper broker's rules at the same
moments: a filled leg cancels its sibling (OCO, in ``paper_ledger.fill``), and a leg that comes due
after its position was closed is cancelled, "position already closed" (``paper_ledger.exit_qty``).
Orders are recorded with ``broker="backtest"`` and their simulated creation time, so no paper-broker
housekeeping ever touches them.
"""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction

from trading_app import paper_ledger
from trading_app.backtest import fills
from trading_app.brokers import OrderRequest
from trading_app.governor import readings
from trading_app.models import BrokerAccount, Order, Position
from trading_app.paper import PaperBroker
from trading_app.paper_ledger import D

OPEN = ("new", "accepted", "partially_filled")


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class BacktestBroker(PaperBroker):
    name = "backtest"

    def __init__(self, market_data, account: BrokerAccount, costs: fills.Costs, clock):
        super().__init__(market_data=market_data, account=account)
        self.costs, self.clock = costs, clock
        # Open orders per symbol, read once and kept until an order or a fill changes them: a bar that
        # can fill none of them costs no query (minute bars x held brackets would otherwise query each bar).
        self.book: dict[str, list[Order]] = {}
        self.fills: list[dict] = []
        # The account row and the client order ids on it, read once and kept until this broker writes
        # (it is the only writer: the account is the run's own). A decision looks an order up per symbol
        # and reads the row's limits several times per order; that was a query each.
        self._row: BrokerAccount | None = None
        self._coids: set[str] | None = None
        self._ledger: tuple[BrokerAccount, list[Position]] | None = None

    def _written(self) -> None:
        self._row = self._coids = None

    @property
    def account_row(self) -> BrokerAccount:
        if self._row is None:
            self._row = BrokerAccount.objects.get(pk=self._bound.pk)
        return self._row

    def get_order_by_client_id(self, client_order_id: str) -> dict | None:
        if self._coids is None:
            self._coids = set(Order.objects.filter(account_id=self._bound.pk).values_list("client_order_id", flat=True))
        if client_order_id not in self._coids:
            return None  # the run's client order ids embed its own id: none is on another account
        return super().get_order_by_client_id(client_order_id)

    def existing_order(self, client_order_id: str) -> dict | None:
        return super().existing_order(client_order_id) if self.get_order_by_client_id(client_order_id) else None

    # --- the ledger as the steps read it: cash and positions, read once per step -------------------
    # Within a step only fills (``_process``, never during a decision: nothing fills at submission) and
    # marks move them; ``forget`` is called before every step (another step type may write the account,
    # e.g. reserve_funds), so each step reads the ledger once instead of once per order.
    def forget(self) -> None:
        self._ledger = None

    def _ledger_now(self) -> tuple[BrokerAccount, list[Position]]:
        if self._ledger is None:
            acct = BrokerAccount.objects.get(pk=self._bound.pk)
            self._ledger = (acct, list(Position.objects.filter(account=acct).exclude(qty=0)))
        return self._ledger

    def get_account(self, mark: bool = False) -> dict:
        if mark:
            self.mark_to_market()
        acct, positions = self._ledger_now()
        value, gross, equity = paper_ledger._totals_of(acct, positions)
        return {
            "broker": "paper", "account": acct.name, "cash": float(acct.cash), "equity": float(equity),
            "positions_value": float(value), "gross_exposure_value": float(gross),
            "reserved_cash": float(acct.reserved_cash), "buying_power": float(acct.cash - acct.reserved_cash),
            "starting_cash": float(acct.starting_cash), "realized_pnl": float(acct.realized_pnl),
            "total_commission": float(acct.total_commission), "slippage_bps": float(acct.slippage_bps),
            "commission_per_share": float(acct.commission_per_share), "commission_min": float(acct.commission_min),
            "allow_short": acct.allow_short,
        }

    def get_positions(self) -> list[dict]:
        return [p.as_dict() for p in self._ledger_now()[1]]

    def risk_reading(self, symbol: str):
        acct, positions = self._ledger_now()
        return readings.paper_reading(self.market_data, float(acct.cash), {p.symbol: float(p.qty) for p in positions},
                                      symbol)

    def mark_to_market(self) -> None:
        """The paper broker's, in one UPDATE (bulk_update) instead of one per position."""
        held = list(Position.objects.filter(account_id=self._bound.pk).exclude(qty=0).only("id", "symbol"))
        for pos in held:
            pos.last_price = D(self.market_data.latest_price(pos.symbol)).quantize(paper_ledger.Q_PRICE,
                                                                                  ROUND_HALF_UP)
        if held:
            Position.objects.bulk_update(held, ["last_price"])
        self._ledger = None

    def _can_fill_now(self) -> bool:
        return False  # the next bar fills it (fills.py): never the price that produced the signal

    def now(self):
        return self.clock.now  # the governor judges a backtest's day and order rate on the simulated clock

    def _place(self, req: OrderRequest) -> dict:
        self._written()
        try:
            order = super()._place(req)
        finally:
            self._written()
        Order.objects.filter(client_order_id=req.client_order_id).update(created_at=self.clock.now)
        self.book.pop(order["symbol"], None)
        return order

    def _resting(self, symbol: str) -> list[Order]:
        if symbol not in self.book:
            self.book[symbol] = list(Order.objects.filter(account_id=self._bound.pk, symbol=symbol, status__in=OPEN))
        return self.book[symbol]

    def _may_fill(self, symbol: str, bar: fills.Bar, market: bool) -> bool:
        """Whether any open order of ``symbol`` could fill on ``bar`` (decided in memory, exactly
        as ``_fill_one`` prices it; the volume cap and the legs' held quantity are checked there: a leg
        due while its position is closed is cancelled there, as paper cancels it)."""
        until = _at(bar.start if market else bar.end)
        for o in self._resting(symbol):
            if o.created_at > until or (o.order_type == "market") != market:
                continue
            if market or fills.resting_price(o.order_type, o.side, float(o.limit_price if o.order_type == "limit"
                                                                           else o.stop_price), bar, self.costs):
                return True
        return False

    # --- the replay's bar events -------------------------------------------------------------------
    def on_open(self, symbol: str, bar: fills.Bar) -> list[dict]:
        """Market orders placed at or before the bar's open fill at it (volume-capped)."""
        return self._process(symbol, bar, market=True) if self._may_fill(symbol, bar, True) else []

    def on_close(self, symbol: str, bar: fills.Bar) -> list[dict]:
        """Limit, stop and bracket legs against the bar's high and low (stop-loss first)."""
        return self._process(symbol, bar, market=False) if self._may_fill(symbol, bar, False) else []

    def _process(self, symbol: str, bar: fills.Bar, *, market: bool) -> list[dict]:
        opened, booked = _at(bar.start), []
        with transaction.atomic():
            acct = BrokerAccount.objects.select_for_update().get(pk=self._bound.pk)
            orders = list(Order.objects.select_for_update().filter(
                account=acct, symbol=symbol, status__in=OPEN, created_at__lte=opened if market else _at(bar.end)))
            orders = sorted((o for o in orders if (o.order_type == "market") == market), key=lambda o: o.created_at)
            for _, order in fills.leg_order([(o.leg, o) for o in orders]):
                if booked:  # a fill may have cancelled this one (its sibling leg): read it again
                    order.refresh_from_db()
                if order.is_open:
                    fill = self._fill_one(acct, order, bar, opened)
                    if fill:
                        booked.append(fill)
        self.fills.extend(booked)
        self.book.pop(symbol, None)
        self._written()
        self._ledger = None
        return booked

    def _fill_one(self, acct: BrokerAccount, order: Order, bar: fills.Bar, opened: datetime) -> dict | None:
        if order.order_type == "market":
            price = fills.market_price(order.side, bar, self.costs)
        else:
            if order.leg == "take_profit" and order.created_at >= opened:
                return None  # born at this bar's open: the stop-loss only (tie-break, fills.py)
            level = order.limit_price if order.order_type == "limit" else order.stop_price
            price = fills.resting_price(order.order_type, order.side, float(level), bar, self.costs)
        if price is None:
            return None
        at = opened if order.order_type == "market" else _at(bar.end)
        remaining = order.qty - order.filled_qty
        if order.leg:  # the paper broker's rule: at most the position held; none held, the leg is cancelled
            remaining = paper_ledger.exit_qty(acct, order, remaining, at)
        qty = fills.capped(float(remaining), bar, self.costs)
        if qty <= 0:
            return None
        booked = paper_ledger.fill(acct, order, D(bar.open if order.order_type == "market" else bar.close),
                                   price=D(price).quantize(paper_ledger.Q_PRICE), qty=D(qty), at=at)
        Order.objects.filter(parent=order, created_at__gt=opened).update(created_at=opened)  # legs: simulated time
        return {"order_id": str(order.id), "client_order_id": order.client_order_id, "symbol": order.symbol,
                "side": order.side, "type": order.order_type, "leg": order.leg or None, "qty": float(booked.qty),
                "price": float(booked.price), "commission": float(booked.commission),
                "realized_pnl": float(booked.realized_pnl), "at": at.isoformat(),
                "partial": order.status == Order.Status.PARTIALLY_FILLED}

    def positions_and_cash(self) -> tuple[dict[str, float], float]:
        """(qty by symbol, cash): what the equity curve needs, read once after fills or decisions."""
        acct = BrokerAccount.objects.only("cash").get(pk=self._bound.pk)
        held = dict(Position.objects.filter(account=acct).exclude(qty=0).values_list("symbol", "qty"))
        return {s: float(q) for s, q in held.items()}, float(acct.cash)


def new_account(backtest_id, initial_cash: float, fill_model: dict) -> BrokerAccount:
    """The run's own paper account (kind ``backtest``, no owners: nothing else trades on it)."""
    cash = Decimal(str(initial_cash))
    return BrokerAccount.objects.create(
        name=f"backtest-{str(backtest_id)[:18]}", broker="backtest", kind=BrokerAccount.Kind.BACKTEST,
        starting_cash=cash, cash=cash,
        slippage_bps=Decimal(str(fill_model["spread_bps"] + fill_model["slippage_bps"])),
        commission_per_share=Decimal(str(fill_model["commission_per_share"])),
        commission_min=Decimal(str(fill_model["commission_min"])))
