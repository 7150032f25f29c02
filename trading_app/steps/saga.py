"""The saga's step pairs (each step idempotent per ``ctx.idempotency_key``; each compensation
receives ``ctx.compensating`` = the output of the step it undoes, and is itself idempotent):

* ``reserve_funds``  sets cash aside in the local ledger (paper account ``reserved_cash``);
  ``release_funds`` gives it back.
* ``place_order``    submits an order sized from the reservation (or ``qty``), consuming it;
  ``cancel_order``  cancels it if still open, or flattens the filled quantity with an offsetting order.
* ``update_portfolio`` books the order into the portfolio journal and snapshots the account;
  ``revert_portfolio`` marks that entry reverted and snapshots again.

``send_notification`` / ``send_failure_alert``, the saga's last pair, are in ``notifications``.
"""
from __future__ import annotations

import math
from decimal import Decimal
from typing import Literal

from django.db import transaction
from django.utils import timezone
from pydantic import Field

from trading_app import accounts, killswitch
from trading_app.brokers import OrderRequest, client_order_id_for
from trading_app.models import FundsReservation, Order, PaperAccount, PortfolioEntry
from trading_app.steps.common import Params, audit_order, broker_step, market_data_of
from trading_app.symbols import normalise, symbol_scope
from workflows_app.errors import PermanentStepError
from workflows_app.registry import StepContext


def _ctx_value(ctx: StepContext, *keys, default=None):
    for key in keys:
        value = (ctx.context or {}).get(key)
        if value is not None:
            return value
        value = (ctx.input_data or {}).get(key)
        if value is not None:
            return value
    return default


def _symbol(ctx: StepContext, symbol: str | None) -> str:
    """An explicit ``symbol`` param is what the workflow says in as many words; otherwise the scope
    rule's first symbol (a JPM event never places an AAPL order because a previous step listed AAPL)."""
    if symbol:
        return normalise(symbol)
    scope = symbol_scope(ctx, None)
    if not scope["symbols"]:
        raise PermanentStepError(f"no symbols in scope: {scope.get('reason')}", error_class="empty_symbol_scope")
    return scope["symbols"][0]


# --- reserve_funds / release_funds -------------------------------------------------------------
class ReserveFundsParams(Params):
    amount: float | None = Field(None, gt=0, description="Currency to reserve; default pct_of_equity x equity.")
    pct_of_equity: float = Field(0.02, gt=0, le=1)


def reserve_funds(ctx: StepContext) -> dict:
    p: ReserveFundsParams = ctx.params
    key = ctx.idempotency_key
    existing = FundsReservation.objects.filter(key=key).first()
    if existing:
        return _reservation_dict(existing, duplicate=True)
    broker = accounts.broker_for(ctx)
    account_row = broker.account_row
    killswitch.ensure_trading_allowed(account_row)
    account = broker.get_account()
    amount = Decimal(str(p.amount if p.amount else p.pct_of_equity * float(account["equity"]))).quantize(Decimal("0.01"))
    with transaction.atomic():
        acct = PaperAccount.objects.select_for_update().get(pk=account_row.pk)
        existing = FundsReservation.objects.filter(key=key).first()
        if existing:
            return _reservation_dict(existing, duplicate=True)
        available = Decimal(str(account.get("buying_power", account["cash"])))
        if broker.name != "paper":
            available -= acct.reserved_cash
        if amount > available:
            raise PermanentStepError(f"insufficient funds: reserve {amount}, available {available:.2f}",
                                     error_class="insufficient_funds")
        res = FundsReservation.objects.create(account=acct, key=key, amount=amount)
        acct.reserved_cash += amount
        acct.save(update_fields=["reserved_cash", "updated_at"])
    return _reservation_dict(res)


def _reservation_dict(res: FundsReservation, duplicate: bool = False) -> dict:
    return {"reservation_id": res.pk, "amount": float(res.amount), "status": res.status, "key": res.key,
            "reserved": res.status == "active", "duplicate": duplicate}


def _release(res: FundsReservation, new_status: str) -> bool:
    with transaction.atomic():
        res = FundsReservation.objects.select_for_update().get(pk=res.pk)
        if res.status != "active":
            return False
        acct = PaperAccount.objects.select_for_update().get(pk=res.account_id)
        acct.reserved_cash = max(Decimal("0"), acct.reserved_cash - res.amount)
        acct.save(update_fields=["reserved_cash", "updated_at"])
        res.status = new_status
        res.released_at = timezone.now()
        res.save()
        return True


def release_funds(ctx: StepContext) -> dict:
    comp = ctx.compensating or {}
    res = None
    if comp.get("reservation_id"):
        res = FundsReservation.objects.filter(pk=comp["reservation_id"]).first()
    if res is None:
        res = FundsReservation.objects.filter(key=comp.get("key") or ctx.idempotency_key).first()
    if res is None:
        return {"released": False, "reason": "no reservation found"}
    released = _release(res, "released")
    res.refresh_from_db()
    return {"released": released, "reservation_id": res.pk, "amount": float(res.amount), "status": res.status,
            **({"reason": f"reservation already {res.status}"} if not released else {})}


# --- place_order / cancel_order ---------------------------------------------------------------
class PlaceOrderParams(Params):
    symbol: str | None = None
    side: Literal["buy", "sell", "auto"] = Field("buy", description="auto: BUY/SELL from the context's signal.")
    qty: float | None = Field(None, gt=0, description="Default: the reserved amount / price.")
    type: Literal["market", "limit", "stop"] = "market"
    limit_price: float | None = Field(None, gt=0)
    stop_price: float | None = Field(None, gt=0)
    stop_loss: float | None = Field(None, gt=0)
    take_profit: float | None = Field(None, gt=0)


def place_order(ctx: StepContext) -> dict:
    p: PlaceOrderParams = ctx.params
    symbol = _symbol(ctx, p.symbol)
    coid = client_order_id_for(ctx.idempotency_key, symbol)
    broker = accounts.broker_for(ctx)
    existing = broker.get_order_by_client_id(coid)
    if existing:
        return {**existing, "duplicate": True}
    side = p.side
    if side == "auto":
        sig = str(_ctx_value(ctx, "signal", default="HOLD")).upper()
        if sig not in ("BUY", "SELL"):
            raise PermanentStepError(f"place_order side=auto but the signal is {sig}", error_class="no_signal")
        side = sig.lower()
    reservation = FundsReservation.objects.filter(
        key__startswith=f"{ctx.execution_id}:", status="active").order_by("-created_at").first()
    qty = p.qty
    if qty is None:
        budget = float(reservation.amount) if reservation else None
        if budget is None:
            raise PermanentStepError("place_order needs qty or a reserve_funds step before it", error_class="invalid_params")
        md = market_data_of(broker, ctx.test_mode)
        price = float(md.latest_price(symbol)) * 1.002  # room for slippage and commission
        qty = math.floor(budget / price)
        if qty < 1:
            raise PermanentStepError(f"reserved {budget} buys no share of {symbol}", error_class="insufficient_funds")
    killswitch.ensure_trading_allowed(broker.account_row)
    consumed = reservation is not None and _release(reservation, "consumed")
    try:
        order = broker.submit_order(OrderRequest(
            symbol=symbol, side=side, qty=qty, client_order_id=coid, type=p.type, limit_price=p.limit_price,
            stop_price=p.stop_price, stop_loss=p.stop_loss, take_profit=p.take_profit,
            execution_id=ctx.execution_id, step_name=ctx.step_name, test_mode=ctx.test_mode))
    except Exception:
        if consumed:  # give the reservation back: release_funds must still find it active
            with transaction.atomic():
                res = FundsReservation.objects.select_for_update().get(pk=reservation.pk)
                acct = PaperAccount.objects.select_for_update().get(pk=res.account_id)
                acct.reserved_cash += res.amount
                acct.save(update_fields=["reserved_cash", "updated_at"])
                res.status = "active"
                res.released_at = None
                res.save()
        raise
    return audit_order(ctx, {**order, "reservation_consumed": bool(consumed)})


def cancel_order(ctx: StepContext) -> dict:
    comp = ctx.compensating or {}
    broker = accounts.broker_for(ctx)
    coid = comp.get("client_order_id")
    order = broker.get_order_by_client_id(coid) if coid else None
    if order is None:
        return {"canceled": False, "reason": "no order to cancel", "client_order_id": coid}
    if order["status"] in Order.OPEN_STATUSES:
        res = broker.cancel_order(order_id=order["order_id"], client_order_id=coid)
        order = broker.get_order_by_client_id(coid) or order
        if order["status"] not in ("filled", "partially_filled"):
            return {"canceled": True, "action": "canceled", "order_id": order["order_id"], "status": order["status"],
                    "detail": {k: v for k, v in res.items() if k in ("legs_canceled",)}}
    filled = float(order.get("filled_qty") or 0)
    if filled <= 0:
        return {"canceled": False, "action": "none", "order_id": order["order_id"], "status": order["status"]}
    # filled: undo the exposure with an offsetting order (idempotent through its own client_order_id)
    for leg_cancel in (order.get("legs") or []):
        broker.cancel_order(order_id=leg_cancel)
    revert_coid = client_order_id_for(ctx.idempotency_key, "revert")
    existing = broker.get_order_by_client_id(revert_coid)
    if existing is None:
        killswitch.ensure_trading_allowed(broker.account_row)
        existing = broker.submit_order(OrderRequest(
            symbol=order["symbol"], side="sell" if order["side"] == "buy" else "buy", qty=filled,
            client_order_id=revert_coid, execution_id=ctx.execution_id, step_name=ctx.step_name,
            test_mode=ctx.test_mode))
    return {"canceled": False, "action": "flattened", "order_id": order["order_id"],
            "offset_order_id": existing["order_id"], "offset_status": existing["status"], "qty": filled}


# --- update_portfolio / revert_portfolio -----------------------------------------------------------
class UpdatePortfolioParams(Params):
    snapshot: bool = True


def update_portfolio(ctx: StepContext) -> dict:
    p: UpdatePortfolioParams = ctx.params
    coid = _ctx_value(ctx, "client_order_id")
    order = Order.objects.filter(client_order_id=coid).first() if coid else None
    entry, created = PortfolioEntry.objects.get_or_create(key=ctx.idempotency_key, defaults={
        "order": order, "symbol": order.symbol if order else "",
        "qty_delta": (order.filled_qty if order.side == "buy" else -order.filled_qty) if order else 0,
        "cost": (order.filled_qty * (order.filled_avg_price or 0)) if order else 0,
    })
    broker = accounts.broker_for(ctx)
    snap = broker.snapshot(reason="update_portfolio", execution_id=ctx.execution_id) \
        if p.snapshot and hasattr(broker, "snapshot") else None
    return {"entry_id": entry.pk, "symbol": entry.symbol, "qty_delta": float(entry.qty_delta),
            "cost": float(entry.cost), "status": entry.status, "duplicate": not created,
            "positions": broker.get_positions(), "snapshot": snap}


def revert_portfolio(ctx: StepContext) -> dict:
    comp = ctx.compensating or {}
    entry = PortfolioEntry.objects.filter(pk=comp.get("entry_id")).first() if comp.get("entry_id") else None
    if entry is None:
        return {"reverted": False, "reason": "no portfolio entry found"}
    reverted = PortfolioEntry.objects.filter(pk=entry.pk, status="applied").update(
        status="reverted", reverted_at=timezone.now()) == 1
    broker = accounts.broker_for(ctx)
    snap = broker.snapshot(reason="revert_portfolio", execution_id=ctx.execution_id) \
        if hasattr(broker, "snapshot") else None
    return {"reverted": reverted, "entry_id": entry.pk, "snapshot": snap}


# --- declarations (trading_app.plugin collects them) ---------------------------------------------
STEP_TYPES = (
    broker_step("reserve_funds", reserve_funds, ReserveFundsParams, 60,
                description="Saga: set cash aside (compensate: release_funds)."),
    broker_step("release_funds", release_funds, timeout=60, description="Saga compensation of reserve_funds."),
    broker_step("place_order", place_order, PlaceOrderParams,
                description="Saga: submit an order from the reservation (compensate: cancel_order)."),
    broker_step("cancel_order", cancel_order,
                description="Saga compensation of place_order: cancel, or flatten a filled order."),
    broker_step("update_portfolio", update_portfolio, UpdatePortfolioParams, 60,
                description="Saga: book the order in the portfolio journal (compensate: revert_portfolio)."),
    broker_step("revert_portfolio", revert_portfolio, timeout=60, description="Saga compensation of update_portfolio."),
)
