"""The built-in paper broker: cash, positions, market/limit/stop orders and bracket exits, in the database.

Accounting (checked after every fill and by tests):

    equity = cash + sum(qty x last_price)                        (by definition)
           = starting_cash + realized P&L + unrealized P&L - commissions

Fills happen at the current market price moved against the order by ``slippage_bps``; each fill
pays ``max(commission_min, commission_per_share x qty)``. A limit order fills when marketable, at
no worse than its limit; a stop order becomes a market order when the price crosses its stop.
Bracket exits (stop-loss and take-profit legs, OCO) are created when the entry fills and are
triggered by ``on_price(symbol, price)``; a trailing stop (``trail_percent``) ratchets up with the
high-water mark; a leg that comes due after its position was closed is cancelled ("position already
closed", ``paper_ledger.exit_qty``, the backtest broker's rule too). Every change runs in one
``transaction.atomic()`` block with the account row locked (``select_for_update``); a duplicate
``client_order_id`` returns the existing order.
Every new order first checks the kill switch. Outside regular market hours (XNYS calendar) orders
fill at the last price when ``NEXUS_PAPER_FILL_OUTSIDE_HOURS`` is true (the default); set it false
and they stay ``accepted`` until the open (``process_open_orders`` / ``on_price`` fills them then).
The bookkeeping of a fill (position, cash, order, fill record, snapshot, legs) is ``paper_ledger``.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.utils import timezone

from trading_app import conf, paper_ledger, risk
from trading_app.brokers import Broker, BrokerRejected, OrderRequest, RiskRejected
from trading_app.governor import readings
from trading_app.killswitch import ensure_trading_allowed
from trading_app.models import AccountSnapshot, Order, PaperAccount, Position
from trading_app.paper_ledger import Q_PRICE, ZERO, D
from trading_app.providers import get_market_data


class PaperBroker(Broker):
    name = "paper"

    def __init__(self, market_data=None, account_name: str = "default", account: PaperAccount | None = None):
        if market_data is None:
            market_data = get_market_data()  # the configured provider (simulated unless set otherwise)
        self.market_data = market_data
        self.account_name = account.name if account is not None else account_name
        self._bound = account

    # --- helpers ---------------------------------------------------------------------------
    def _account(self) -> PaperAccount:
        return self._bound if self._bound is not None else paper_ledger.default_account(self.account_name)

    @property
    def account_row(self) -> PaperAccount:
        """The account this broker trades on (its limits and kill switch apply to every order)."""
        return PaperAccount.objects.get(pk=self._account().pk)

    # --- broker interface (submit_order is brokers.Broker's: every order passes the governor) ----------
    def normalise(self, req: OrderRequest) -> None:
        req.symbol = self.market_data.validate_symbol(req.symbol)

    def existing_order(self, client_order_id: str) -> dict | None:
        existing = Order.objects.filter(client_order_id=client_order_id).first()
        return self._duplicate(existing) if existing is not None else None

    def governed_account(self) -> PaperAccount:
        return self._account()

    def risk_reading(self, symbol: str):
        """Cash and positions from the ledger, priced now by the market data (for the governor)."""
        acct = PaperAccount.objects.get(pk=self._account().pk)
        held = {p.symbol: float(p.qty) for p in Position.objects.filter(account=acct).exclude(qty=0)}
        return readings.paper_reading(self.market_data, float(acct.cash), held, symbol)

    def _place(self, req: OrderRequest) -> dict:
        symbol = req.symbol
        ensure_trading_allowed()
        market = D(self.market_data.latest_price(symbol)).quantize(Q_PRICE, ROUND_HALF_UP)
        rejected: Order | None = None
        with transaction.atomic():
            acct = PaperAccount.objects.select_for_update().get(pk=self._account().pk)
            existing = Order.objects.filter(client_order_id=req.client_order_id).first()
            if existing is not None:
                return self._duplicate(existing)
            ensure_trading_allowed(acct)
            order = Order(
                broker=self.name, account=acct, client_order_id=req.client_order_id, symbol=symbol,
                side=req.side, order_type=req.type, qty=D(req.qty),
                limit_price=D(req.limit_price) if req.limit_price else None,
                stop_price=D(req.stop_price) if req.stop_price else None, time_in_force=req.time_in_force,
                stop_loss_price=D(req.stop_loss).quantize(Q_PRICE) if req.stop_loss else None,
                take_profit_price=D(req.take_profit).quantize(Q_PRICE) if req.take_profit else None,
                trail_percent=D(req.trail_percent) if req.trail_percent else None,
                order_class="bracket" if (req.stop_loss or req.take_profit) else "simple",
                execution_id=req.execution_id, step_name=req.step_name, test_mode=req.test_mode,
                status=Order.Status.ACCEPTED,
            )
            reason = self._rejection(acct, order, market)
            if reason:
                order.status = Order.Status.REJECTED
                order.reject_reason = reason
                order.save()
                rejected = order
            else:
                order.save()
                fill_price = paper_ledger.marketable(order, market, acct) if self._can_fill_now() else None
                if fill_price is not None:
                    paper_ledger.fill(acct, order, market, price=fill_price)
        if rejected is not None:
            cls = RiskRejected if rejected.reject_reason.startswith("risk limit:") else BrokerRejected
            raise cls(f"order rejected: {rejected.reject_reason}", rejected.as_dict())
        order.refresh_from_db()
        return {**order.as_dict(), "duplicate": False, "market_price": float(market)}

    def _duplicate(self, existing: Order) -> dict:
        if existing.status == Order.Status.REJECTED:
            raise BrokerRejected(f"order rejected: {existing.reject_reason}", existing.as_dict())
        return {**existing.as_dict(), "duplicate": True}

    def _rejection(self, acct: PaperAccount, order: Order, market: Decimal) -> str | None:
        if order.qty != order.qty.to_integral_value():
            return "fractional quantities are not supported by the paper broker"
        pos = Position.objects.filter(account=acct, symbol=order.symbol).first()
        held = pos.qty if pos else ZERO
        if order.side == "buy" and held >= 0:
            ref = order.limit_price if order.order_type == "limit" else market
            cost = paper_ledger.exec_price(acct, "buy", ref) * order.qty + paper_ledger.commission(acct, order.qty)
            available = acct.cash - acct.reserved_cash
            if cost > available:
                return f"insufficient buying power: need {cost:.2f}, available {available:.2f}"
        if order.side == "sell" and not acct.allow_short:
            open_sells = sum((o.qty - o.filled_qty for o in Order.objects.filter(
                account=acct, symbol=order.symbol, side="sell", status__in=Order.OPEN_STATUSES, parent__isnull=True)),
                ZERO)
            if order.qty > held - open_sells:
                return f"short selling is disabled: sell {order.qty} but {held - open_sells} held"
        return self._over_caps(acct, order, market, held)

    def _over_caps(self, acct: PaperAccount, order: Order, market: Decimal, held: Decimal) -> str | None:
        """The operator's caps, checked again with the account row locked: the last word before a
        fill, whatever step (trade, hedge, saga, stop) sized the order. A buy counts the symbol's
        open market/limit buys as if filled, so orders waiting for the open cannot stack past the cap
        (stop orders and open sells may never fill: they do not count; shorts have their own check)."""
        value, gross, equity = paper_ledger.totals(acct)
        pending = ZERO
        if order.side == "buy":
            pending = sum((o.qty - o.filled_qty for o in Order.objects.filter(
                account=acct, symbol=order.symbol, side="buy", status__in=Order.OPEN_STATUSES,
                parent__isnull=True).exclude(order_type="stop")), ZERO)
        try:
            risk.check_order(side=order.side, qty=float(order.qty), price=float(market), equity=float(equity),
                             held_qty=float(held + pending), gross_value=float(gross),
                             lim=risk.limits(acct), symbol=order.symbol)
        except risk.RiskLimitExceeded as exc:
            return f"risk limit: {exc}"
        return None

    def _can_fill_now(self) -> bool:
        """Orders fill while the market is open; outside regular hours only if
        NEXUS_PAPER_FILL_OUTSIDE_HOURS (default true: at the last price). Otherwise they wait for the open."""
        if conf.get("NEXUS_PAPER_FILL_OUTSIDE_HOURS"):
            return True
        try:
            return bool(self.market_data.market_clock().get("is_open", True))
        except Exception:  # noqa: BLE001 - no clock: behave like the simple broker
            return True

    def on_price(self, symbol: str, price, at: datetime | None = None) -> list[dict]:
        """A price update: mark positions, trigger limit/stop orders and bracket legs; returns fills."""
        market = D(price).quantize(Q_PRICE, ROUND_HALF_UP)
        fills: list[dict] = []
        can_fill = self._can_fill_now()
        with transaction.atomic():
            acct = PaperAccount.objects.select_for_update().get(pk=self._account().pk)
            Position.objects.filter(account=acct, symbol=symbol).update(last_price=market)
            if not can_fill:
                return fills
            for order in Order.objects.select_for_update().filter(
                    account=acct, symbol=symbol, status__in=("new", "accepted", "partially_filled")
            ).order_by("created_at"):
                order.refresh_from_db()
                if not order.is_open:
                    continue
                if order.leg == "stop_loss" and order.trail_percent:
                    hwm = max(order.high_water_mark or market, market)
                    trailed = (hwm * (1 - order.trail_percent)).quantize(Q_PRICE)
                    if trailed > order.stop_price or hwm != order.high_water_mark:
                        order.high_water_mark = hwm
                        order.stop_price = max(order.stop_price, trailed)
                        order.save(update_fields=["high_water_mark", "stop_price", "updated_at"])
                fill_price = paper_ledger.marketable(order, market, acct)
                if fill_price is None:
                    continue
                qty = order.qty - order.filled_qty
                if order.leg and not (qty := paper_ledger.exit_qty(acct, order, qty, at)):
                    continue  # cancelled: its position is already closed
                booked = paper_ledger.fill(acct, order, market, price=fill_price, qty=qty, at=at)
                fills.append({"order_id": str(order.id), "leg": order.leg or None, "side": order.side,
                              "qty": float(booked.qty), "price": float(booked.price)})
        return fills

    def process_open_orders(self) -> list[dict]:
        """Check every open order of every paper account against the current market price."""
        fills = []
        pairs = Order.objects.filter(broker="paper", account__isnull=False,
                                     status__in=("new", "accepted", "partially_filled")).values_list(
            "account_id", "symbol").distinct()
        for account_id, symbol in sorted(pairs):
            broker = PaperBroker(self.market_data, account=PaperAccount.objects.get(pk=account_id))
            fills.extend(broker.on_price(symbol, self.market_data.latest_price(symbol)))
        return fills

    def get_order(self, order_id: str) -> dict | None:
        order = Order.objects.filter(pk=order_id).first() if _is_uuid(order_id) else None
        return order.as_dict() if order else None

    def get_order_by_client_id(self, client_order_id: str) -> dict | None:
        order = Order.objects.filter(client_order_id=client_order_id).first()
        return order.as_dict() if order else None

    def cancel_order(self, order_id: str | None = None, client_order_id: str | None = None) -> dict:
        with transaction.atomic():
            qs = Order.objects.select_for_update()
            order = qs.filter(pk=order_id).first() if order_id and _is_uuid(order_id) else None
            if order is None and client_order_id:
                order = qs.filter(client_order_id=client_order_id).first()
            if order is None:
                return {"canceled": False, "reason": "order not found", "order_id": order_id,
                        "client_order_id": client_order_id}
            now = timezone.now()
            canceled = False
            if order.is_open:
                order.status = Order.Status.CANCELED
                order.canceled_at = now
                order.save()
                canceled = True
            legs = Order.objects.filter(parent=order, status__in=Order.OPEN_STATUSES).update(
                status=Order.Status.CANCELED, canceled_at=now)
            return {"canceled": canceled, "legs_canceled": legs, **order.as_dict()}

    def replace_stop(self, order_id: str, stop_price=None, trail_percent=None) -> dict:
        """Move a stop-loss leg (never loosening a long's stop below its current level unless asked)."""
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=order_id)
            if not order.is_open or order.order_type != "stop":
                raise BrokerRejected(f"order {order_id} is not an open stop order")
            if stop_price is not None:
                order.stop_price = D(stop_price).quantize(Q_PRICE)
            if trail_percent is not None:
                order.trail_percent = D(trail_percent)
            order.save()
            return order.as_dict()

    def open_stop_orders(self, symbol: str) -> list[dict]:
        return [o.as_dict() for o in Order.objects.filter(
            account=self._account(), symbol=symbol, order_type="stop", status__in=("new", "accepted"))]

    def get_positions(self) -> list[dict]:
        return [p.as_dict() for p in Position.objects.filter(account=self._account()).exclude(qty=0)]

    def get_position(self, symbol: str) -> dict | None:
        p = Position.objects.filter(account=self._account(), symbol=symbol).exclude(qty=0).first()
        return p.as_dict() if p else None

    def mark_to_market(self) -> None:
        acct = self._account()
        for pos in Position.objects.filter(account=acct).exclude(qty=0):
            price = D(self.market_data.latest_price(pos.symbol)).quantize(Q_PRICE, ROUND_HALF_UP)
            Position.objects.filter(pk=pos.pk).update(last_price=price)

    def get_account(self, mark: bool = False) -> dict:
        if mark:
            self.mark_to_market()
        acct = self._account()
        acct.refresh_from_db()
        value, gross, equity = paper_ledger.totals(acct)
        return {
            "broker": "paper", "account": acct.name, "cash": float(acct.cash), "equity": float(equity),
            "positions_value": float(value), "gross_exposure_value": float(gross),
            "reserved_cash": float(acct.reserved_cash),
            "buying_power": float(acct.cash - acct.reserved_cash),
            "starting_cash": float(acct.starting_cash), "realized_pnl": float(acct.realized_pnl),
            "total_commission": float(acct.total_commission), "slippage_bps": float(acct.slippage_bps),
            "commission_per_share": float(acct.commission_per_share), "commission_min": float(acct.commission_min),
            "allow_short": acct.allow_short,
        }

    def snapshot(self, reason: str = "manual", execution_id: str = "") -> dict:
        acct = self._account()
        value, gross, equity = paper_ledger.totals(acct)
        snap = AccountSnapshot.objects.create(
            broker="paper", account=acct, cash=acct.cash, positions_value=value, equity=equity, gross_exposure=gross,
            net_exposure=value, reason=reason, execution_id=execution_id,
            positions=paper_ledger.open_positions(acct))
        return {"snapshot_id": snap.pk, "equity": float(equity), "cash": float(acct.cash),
                "positions_value": float(value)}

    def get_clock(self) -> dict:
        return self.market_data.market_clock()


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False
