"""The paper broker's bookkeeping: execution prices, commissions, fills and bracket legs.

Every function here runs inside the caller's ``transaction.atomic()`` block with the account row
locked (``select_for_update``), as ``trading_app.paper.PaperBroker`` does. A fill moves the
position (average price, realised P&L when it closes), the cash and the order, records a ``Fill``
and an ``AccountSnapshot``, checks the accounting identity

    equity = cash + sum(qty x last_price) = starting_cash + realized P&L + unrealized P&L - commissions

and, for a filled bracket entry, creates its exit legs (a filled leg cancels its sibling: OCO).
``exit_qty`` is the rule for an exit leg that comes due (the paper and the backtest broker both call it).
"""
from __future__ import annotations

import logging
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from trading_app import conf
from trading_app.models import AccountSnapshot, Fill, Order, PaperAccount, Position

logger = logging.getLogger("nexus.trading.paper")
Q_PRICE = Decimal("0.0001")
Q_CENT = Decimal("0.01")
ZERO = Decimal("0")
BPS = Decimal("10000")


def D(x) -> Decimal:
    return x if isinstance(x, Decimal) else Decimal(str(x))


def default_account(name: str = "default") -> PaperAccount:
    """The named paper account (``default`` = the house account), created on first use."""
    acct = PaperAccount.objects.filter(name=name).first()
    if acct:
        return acct
    cash = D(conf.get("NEXUS_PAPER_STARTING_CASH"))
    try:
        with transaction.atomic():
            return PaperAccount.objects.create(
                name=name, starting_cash=cash, cash=cash,
                slippage_bps=D(conf.get("NEXUS_PAPER_SLIPPAGE_BPS")),
                commission_per_share=D(conf.get("NEXUS_PAPER_COMMISSION_PER_SHARE")),
                commission_min=D(conf.get("NEXUS_PAPER_COMMISSION_MIN")),
            )
    except IntegrityError:  # created concurrently by another worker
        return PaperAccount.objects.get(name=name)


def exec_price(acct: PaperAccount, side: str, market: Decimal) -> Decimal:
    """The market price moved against the order by the account's slippage."""
    slip = acct.slippage_bps / BPS
    px = market * (1 + slip) if side == "buy" else market * (1 - slip)
    return px.quantize(Q_PRICE, ROUND_HALF_UP)


def commission(acct: PaperAccount, qty: Decimal) -> Decimal:
    return max(acct.commission_min, acct.commission_per_share * qty).quantize(Q_CENT, ROUND_HALF_UP)


def totals(acct: PaperAccount) -> tuple[Decimal, Decimal, Decimal]:
    """(positions value, gross exposure value, equity) of the account at its positions' last prices."""
    return _totals_of(acct, list(Position.objects.filter(account=acct).exclude(qty=0)))


def _totals_of(acct: PaperAccount, positions: list[Position]) -> tuple[Decimal, Decimal, Decimal]:
    positions = [p for p in positions if p.qty != 0]
    value = sum((p.qty * p.last_price for p in positions), ZERO)
    gross = sum((abs(p.qty * p.last_price) for p in positions), ZERO)
    return value, gross, acct.cash + value


def open_positions(acct: PaperAccount) -> list[dict]:
    return [p.as_dict() for p in Position.objects.filter(account=acct).exclude(qty=0)]


def marketable(order: Order, market: Decimal, acct: PaperAccount) -> Decimal | None:
    """The fill price if ``order`` executes at ``market`` now, else None."""
    if order.order_type == "market":
        return exec_price(acct, order.side, market)
    if order.order_type == "limit":
        px = exec_price(acct, order.side, market)
        if order.side == "buy" and market <= order.limit_price:
            return min(px, order.limit_price)
        if order.side == "sell" and market >= order.limit_price:
            return max(px, order.limit_price)
        return None
    if order.order_type == "stop":
        if (order.side == "sell" and market <= order.stop_price) or (
                order.side == "buy" and market >= order.stop_price):
            return exec_price(acct, order.side, market)
    return None


def fill(acct: PaperAccount, order: Order, market: Decimal, *, price: Decimal | None = None,
         qty: Decimal | None = None, at: datetime | None = None) -> Fill:
    """Fill ``order`` (inside the caller's transaction, account row locked)."""
    qty = D(qty if qty is not None else order.qty - order.filled_qty)
    price = price if price is not None else exec_price(acct, order.side, market)
    fee = commission(acct, qty)
    delta = qty if order.side == "buy" else -qty
    realized = _move_position(acct, order.symbol, delta, price, market)
    acct.cash -= delta * price + fee
    acct.realized_pnl += realized
    acct.total_commission += fee
    acct.save(update_fields=["cash", "realized_pnl", "total_commission", "updated_at"])
    now = at or timezone.now()
    _move_order(order, qty, price, now)
    positions = list(Position.objects.filter(account=acct))  # read once for the totals, identity and snapshot
    value, gross, equity = _totals_of(acct, positions)
    booked = Fill.objects.create(
        order=order, account=acct, symbol=order.symbol, side=order.side, qty=qty, price=price,
        market_price=market, commission=fee, realized_pnl=realized, cash_after=acct.cash,
        positions_value_after=value, equity_after=equity, timestamp=now,
    )
    check_identity(acct, equity, positions)
    AccountSnapshot.objects.create(
        broker=order.broker, account=acct, cash=acct.cash, positions_value=value, equity=equity,
        gross_exposure=gross, net_exposure=value, reason=f"fill {order.side} {order.symbol}",
        execution_id=order.execution_id, taken_at=now, positions=[p.as_dict() for p in positions if p.qty != 0],
    )
    if order.status == Order.Status.FILLED:
        if order.stop_loss_price or order.take_profit_price:
            create_legs(order)
        if order.parent_id and order.leg:
            Order.objects.filter(parent_id=order.parent_id, status__in=Order.OPEN_STATUSES).exclude(
                pk=order.pk).update(status=Order.Status.CANCELED, canceled_at=now)
    return booked


def _move_position(acct: PaperAccount, symbol: str, delta: Decimal, price: Decimal, market: Decimal) -> Decimal:
    """Apply ``delta`` shares at ``price`` to the position; returns the P&L it realises."""
    pos, _ = Position.objects.select_for_update().get_or_create(account=acct, symbol=symbol)
    q0, a0 = pos.qty, pos.avg_entry_price
    realized = ZERO
    if q0 == 0 or (q0 > 0) == (delta > 0):
        new_q = q0 + delta
        pos.avg_entry_price = ((q0 * a0 + delta * price) / new_q).quantize(Decimal("0.000001"))
        pos.qty = new_q
    else:
        closing = min(abs(delta), abs(q0))
        sign = Decimal(1) if q0 > 0 else Decimal(-1)
        realized = closing * (price - a0) * sign
        new_q = q0 + delta
        if new_q == 0:
            pos.avg_entry_price = ZERO
        elif (new_q > 0) != (q0 > 0):  # flipped: the remainder opens at this price
            pos.avg_entry_price = price
        pos.qty = new_q
    pos.realized_pnl += realized
    pos.last_price = market
    pos.save()
    return realized


def _move_order(order: Order, qty: Decimal, price: Decimal, now: datetime) -> None:
    prev_filled = order.filled_qty
    order.filled_qty = prev_filled + qty
    order.filled_avg_price = (((order.filled_avg_price or ZERO) * prev_filled + price * qty)
                              / order.filled_qty).quantize(Q_PRICE, ROUND_HALF_UP)
    order.status = Order.Status.FILLED if order.filled_qty >= order.qty else Order.Status.PARTIALLY_FILLED
    order.filled_at = now
    order.save()


def check_identity(acct: PaperAccount, equity: Decimal, positions: list[Position] | None = None) -> None:
    positions = Position.objects.filter(account=acct) if positions is None else positions
    unrealized = sum((p.qty * (p.last_price - p.avg_entry_price) for p in positions), ZERO)
    expected = acct.starting_cash + acct.realized_pnl + unrealized - acct.total_commission
    if abs(expected - equity) > Decimal("0.01"):
        logger.error("paper accounting drift: equity %s vs %s", equity, expected)
        raise AssertionError(f"paper accounting drift: equity {equity} != {expected}")


def exit_qty(acct: PaperAccount, order: Order, qty: Decimal, at: datetime | None = None) -> Decimal:
    """How much of exit leg ``order`` may fill now that its price is reached: at most the position
    held, so an exit never flips it. When that position is already closed (by a sell signal, another
    order, another bracket's leg) the leg is cancelled, "position already closed", and 0 returned: left
    open, it would fill against the next position opened in the symbol."""
    pos = Position.objects.filter(account=acct, symbol=order.symbol).first()
    qty = min(qty, abs(pos.qty) if pos else ZERO)
    if qty <= 0:
        order.status = Order.Status.CANCELED
        order.canceled_at = at or timezone.now()
        order.reject_reason = "position already closed"
        order.save()
        return ZERO
    return qty


def create_legs(parent: Order) -> None:
    """The stop-loss and take-profit exits of a filled bracket entry (one-cancels-other)."""
    exit_side = "sell" if parent.side == "buy" else "buy"
    common = {"broker": parent.broker, "account_id": parent.account_id, "symbol": parent.symbol, "side": exit_side,
              "qty": parent.filled_qty, "order_class": "oco", "parent": parent, "time_in_force": "gtc",
              "execution_id": parent.execution_id, "step_name": parent.step_name,
              "test_mode": parent.test_mode, "status": Order.Status.NEW}
    if parent.stop_loss_price:
        Order.objects.get_or_create(
            client_order_id=f"{parent.client_order_id}-sl"[:128],
            defaults={**common, "order_type": "stop", "stop_price": parent.stop_loss_price, "leg": "stop_loss",
                      "trail_percent": parent.trail_percent, "high_water_mark": parent.filled_avg_price})
    if parent.take_profit_price:
        Order.objects.get_or_create(
            client_order_id=f"{parent.client_order_id}-tp"[:128],
            defaults={**common, "order_type": "limit", "limit_price": parent.take_profit_price,
                      "leg": "take_profit"})
