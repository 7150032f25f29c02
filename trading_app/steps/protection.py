"""Protection steps: risk_check (exposure against the limits, and the risk governor's state and
headroom: ``governor_state``, ``governor_headroom``), hedge and stop_loss_management.

They work on the positions the execution's account holds (``trading_app.accounts.broker_for``) and
order only to reduce or protect exposure; every order still passes the kill switch and the caps.
"""
from __future__ import annotations

import math
from typing import Literal

from django.db import transaction
from pydantic import Field, field_validator

from trading_app import accounts, killswitch, risk
from trading_app.brokers import OrderRequest, client_order_id_for
from trading_app.governor import service as governor
from trading_app.models import BrokerAccount, Order
from trading_app.steps.common import (
    Params,
    SymbolsParams,
    account_of,
    audit_order,
    broker_step,
    empty_scope,
    market_data_of,
    step_scope,
)
from trading_app.symbols import normalise
from workflows_app.errors import PermanentStepError
from workflows_app.registry import StepContext


# --- risk_check / exposure ---------------------------------------------------------------------
class RiskCheckParams(Params):
    max_position_pct: float | None = Field(None, gt=0, le=1)
    max_gross_exposure: float | None = Field(None, gt=0, le=10)
    max_net_exposure: float | None = Field(None, gt=0, le=10)
    fail_on_breach: bool = Field(False, description="Fail the step (risk_limit_breach) when a limit is breached.")
    mark_to_market: bool = True

    # a monitor may watch tighter limits than the operator's, never looser ones
    _ceilings = field_validator("max_position_pct", "max_gross_exposure", "max_net_exposure")(
        lambda cls, v, info: risk.check_ceiling(info.field_name, v))


def risk_check(ctx: StepContext) -> dict:
    p: RiskCheckParams = ctx.params
    broker = accounts.broker_for(ctx)
    account = broker.get_account(mark=p.mark_to_market) if broker.name == "paper" else broker.get_account()
    positions = broker.get_positions()
    report = risk.exposure_report(account, positions, max_position_pct=p.max_position_pct,
                                  max_gross_exposure=p.max_gross_exposure, max_net_exposure=p.max_net_exposure,
                                  account_limits=getattr(broker, "account_row", None))
    ks = killswitch.kill_switch_state()
    gov = _governor(broker)
    out = {**report, "status": "breach" if report["breaches"] else "ok", "kill_switch": ks["active"],
           "positions": positions, "cash": account.get("cash"), "broker": broker.name,
           "risk_level": "high" if report["breaches"] or gov["state"] != "active" else "normal",
           "governor": gov, "governor_state": gov["state"],
           "governor_headroom": {k: v["headroom"] for k, v in gov["limits"].items() if v["headroom"] is not None}}
    if p.fail_on_breach and report["breaches"]:
        raise PermanentStepError(f"risk limits breached: {report['breaches']}", error_class="risk_limit_breach")
    return out


def _governor(broker) -> dict:
    """The account's risk governor after a fresh reading (the state every order of this account
    meets): its state and headroom per limit, for the conditions of the steps that follow."""
    acct = broker.governed_account()
    governor.observe_account(acct, broker)
    return governor.status(acct)


# --- hedge -------------------------------------------------------------------------------------
class HedgeParams(Params):
    method: Literal["inverse_etf", "reduce"] = Field(
        "inverse_etf", description="Hold an inverse ETF worth hedge_ratio x net long exposure (ordering only the "
                                   "difference to what is held), or sell that fraction of every long position.")
    instrument: str = Field("SH", description="Inverse ETF held by the inverse_etf method.")
    hedge_ratio: float = Field(0.5, gt=0, le=1)
    min_exposure: float = Field(0.0, ge=0, description="Do nothing below this net long exposure (currency).")


def _pending_buys(acct, symbol: str) -> float:
    """Unfilled buy orders of ``symbol`` on ``acct``: they count as held (a hedge waiting for the open
    must not be ordered again). Open sells (e.g. protective stops) do not count: they may never fill."""
    if acct is None:
        return 0.0
    return float(sum((o.qty - o.filled_qty for o in Order.objects.filter(
        account=acct, symbol=symbol, side="buy", status__in=Order.OPEN_STATUSES, parent__isnull=True,
    ).exclude(order_type="stop")), 0))


def hedge(ctx: StepContext) -> dict:
    """Hedge towards a target: the inverse ETF position worth ``hedge_ratio x`` the net long exposure of
    the other positions, INCLUDING the hedge already held (and open hedge orders); only the difference
    is ordered, the target is capped like any order (per-symbol and gross caps), and hedges of one
    account are serialised on its row, so repeated or simultaneous triggers never stack."""
    p: HedgeParams = ctx.params
    broker = accounts.broker_for(ctx)
    md = market_data_of(broker, ctx.test_mode)
    acct = account_of(broker)
    with transaction.atomic():
        if acct is not None:  # one hedge at a time per account: the next one sees this one's order
            BrokerAccount.objects.select_for_update().filter(pk=acct.pk).first()
        if p.method == "inverse_etf":
            return _hedge_inverse(ctx, p, broker, md, acct)
        return _hedge_reduce(ctx, p, broker, acct)


def _hedge_inverse(ctx: StepContext, p: HedgeParams, broker, md, acct) -> dict:
    inst = normalise(p.instrument)
    coid = client_order_id_for(ctx.idempotency_key, inst)
    existing = broker.get_order_by_client_id(coid)
    if existing is not None:  # this step already ordered (retry / redelivery)
        return {"method": p.method, "status": "hedged", "orders": [{**existing, "duplicate": True}],
                "order_id": existing.get("order_id"), "broker": broker.name}
    all_positions = broker.get_positions()
    others = [x for x in all_positions if x["symbol"] != inst]
    net_long = sum(float(x["market_value"]) for x in others)
    position = next((float(x["qty"]) for x in all_positions if x["symbol"] == inst), 0.0)
    held = position + _pending_buys(acct, inst)
    price = float(md.latest_price(inst))
    account = broker.get_account()
    equity = float(account["equity"])
    hedge_value = held * price
    lim = risk.limits(acct)
    target_value = p.hedge_ratio * net_long if net_long > max(p.min_exposure, 0.0) else 0.0
    capped_by = []
    if target_value > lim["max_position_pct"] * equity:
        target_value, capped_by = lim["max_position_pct"] * equity, ["max_position_pct"]
    target_qty = math.floor(max(0.0, target_value) / price)
    diff = target_qty - held
    if diff > 0:  # the gross cap bounds what a hedge may add, like any order
        gross = sum(abs(float(x["market_value"])) for x in all_positions)
        room = math.floor(max(0.0, lim["max_gross_exposure"] * equity - gross) / price)
        if room < diff:
            diff, capped_by = room, capped_by + ["max_gross_exposure"]
    if diff < 0:  # over-hedged (longs shrank): sell back down to the target, never below zero
        diff = -min(-diff, max(0.0, position))
    base = {"method": p.method, "instrument": inst, "hedge_ratio": p.hedge_ratio, "broker": broker.name,
            "net_long_exposure": round(net_long, 2), "existing_hedge_qty": held,
            "existing_hedge_value": round(hedge_value, 2), "net_exposure_before": round(net_long - hedge_value, 2),
            "target_hedge_qty": target_qty, "target_hedge_value": round(target_qty * price, 2),
            "capped_by": capped_by}
    qty = int(diff)
    if qty == 0:
        reason = "hedge already at its target" if held else (
            "no net long exposure to hedge" if target_value <= 0 else "hedge rounds to zero shares")
        return {**base, "status": "skipped", "orders": [], "hedged_value": round(hedge_value, 2), "reason": reason,
                "net_exposure_after_estimate": round(net_long - hedge_value, 2), "order_id": None}
    killswitch.ensure_trading_allowed(acct)
    order = broker.submit_order(OrderRequest(
        symbol=inst, side="buy" if qty > 0 else "sell", qty=abs(qty), client_order_id=coid,
        execution_id=ctx.execution_id, step_name=ctx.step_name, test_mode=ctx.test_mode))
    audit_order(ctx, order, intent="hedge")
    after = (held + qty) * price
    return {**base, "status": "hedged", "orders": [order], "ordered_qty": qty, "hedged_value": round(after, 2),
            "net_exposure_after_estimate": round(net_long - after, 2), "order_id": order.get("order_id")}


def _hedge_reduce(ctx: StepContext, p: HedgeParams, broker, acct) -> dict:
    positions = [x for x in broker.get_positions() if float(x["qty"]) > 0]
    net_long = sum(float(x["market_value"]) for x in positions)
    base = {"method": p.method, "hedge_ratio": p.hedge_ratio, "net_exposure_before": round(net_long, 2),
            "broker": broker.name}
    if net_long <= max(p.min_exposure, 0.0):
        return {**base, "status": "skipped", "orders": [], "hedged_value": 0.0,
                "reason": "no net long exposure to hedge"}
    killswitch.ensure_trading_allowed(acct)
    orders, hedged = [], 0.0
    for pos in positions:
        qty = math.floor(float(pos["qty"]) * p.hedge_ratio)
        if qty < 1:
            continue
        coid = client_order_id_for(ctx.idempotency_key, pos["symbol"])
        existing = broker.get_order_by_client_id(coid)
        orders.append(existing or broker.submit_order(OrderRequest(
            symbol=pos["symbol"], side="sell", qty=qty, client_order_id=coid, execution_id=ctx.execution_id,
            step_name=ctx.step_name, test_mode=ctx.test_mode)))
        hedged += qty * float(pos["last_price"])
    return {**base, "status": "hedged" if orders else "skipped", "orders": orders, "hedged_value": round(hedged, 2),
            "net_exposure_after_estimate": round(net_long - hedged, 2),
            "order_id": orders[0]["order_id"] if orders else None}


# --- stop_loss_management -------------------------------------------------------------------
class StopLossParams(SymbolsParams):
    mode: Literal["attach", "adjust", "trail"] = Field(
        "attach", description="attach: add a stop to positions without one; adjust: move stops to stop_loss_pct "
                              "below the current price (tighten only); trail: make stops trailing.")
    stop_loss_pct: float = Field(0.05, gt=0, lt=0.5)
    trail_percent: float = Field(0.05, gt=0, lt=0.5)
    allow_loosen: bool = False
    check_triggers: bool = Field(True, description="Paper broker: process open stops at the current price.")


def stop_loss_management(ctx: StepContext) -> dict:
    p: StopLossParams = ctx.params
    broker = accounts.broker_for(ctx)
    md = market_data_of(broker, ctx.test_mode)
    positions = {x["symbol"]: x for x in broker.get_positions()}
    if p.symbols:  # a list of its own: the scope rule, as for every step (the event narrows it, unless fixed)
        scope = step_scope(ctx, p, use_context=False)
    else:  # a protective step opens no exposure: without a list it protects every position, whatever the
        # trigger (a VIX/SPY spike must not leave the other positions without stops)
        scope = {"symbols": list(positions), "source": "positions", "mode": "all_positions"}
    wanted = scope["symbols"]
    if not wanted:
        return empty_scope(scope, mode=p.mode, actions=[], triggered=[], broker=broker.name, positions_checked=0)
    actions = []
    for sym in wanted:
        pos = positions.get(sym)
        if not pos or float(pos["qty"]) == 0:
            actions.append({"symbol": sym, "action": "none", "reason": "no position"})
            continue
        long = float(pos["qty"]) > 0
        price = float(md.latest_price(sym))
        target = price * (1 - p.stop_loss_pct) if long else price * (1 + p.stop_loss_pct)
        stops = broker.open_stop_orders(sym)
        if not stops:
            if p.mode == "adjust":
                actions.append({"symbol": sym, "action": "none", "reason": "no stop to adjust"})
                continue
            killswitch.ensure_trading_allowed(account_of(broker))
            coid = client_order_id_for(ctx.idempotency_key, sym)
            order = broker.get_order_by_client_id(coid) or broker.submit_order(OrderRequest(
                symbol=sym, side="sell" if long else "buy", qty=abs(float(pos["qty"])), type="stop",
                stop_price=round(target, 2), client_order_id=coid, time_in_force="gtc",
                trail_percent=p.trail_percent if p.mode == "trail" else None,
                execution_id=ctx.execution_id, step_name=ctx.step_name, test_mode=ctx.test_mode))
            actions.append({"symbol": sym, "action": "attached", "stop_price": order.get("stop_price"),
                            "order_id": order.get("order_id")})
            continue
        for stop in stops:
            current = float(stop["stop_price"])
            if p.mode == "trail":
                res = broker.replace_stop(stop["order_id"], trail_percent=p.trail_percent)
                actions.append({"symbol": sym, "action": "trailing", "order_id": stop["order_id"],
                                "trail_percent": p.trail_percent, "stop_price": res.get("stop_price")})
                continue
            tighter = target > current if long else target < current
            if p.mode == "attach" or (not tighter and not p.allow_loosen):
                actions.append({"symbol": sym, "action": "kept", "order_id": stop["order_id"], "stop_price": current})
                continue
            res = broker.replace_stop(stop["order_id"], stop_price=round(target, 2))
            actions.append({"symbol": sym, "action": "adjusted", "order_id": stop["order_id"], "from": current,
                            "stop_price": res.get("stop_price")})
    triggered = []
    if p.check_triggers and hasattr(broker, "on_price"):
        for sym in wanted:
            triggered.extend(broker.on_price(sym, md.latest_price(sym)))
    return {"mode": p.mode, "actions": actions, "triggered": triggered, "broker": broker.name,
            "positions_checked": len(wanted), "symbol_scope": scope}


# --- declarations (trading_app.plugin collects them) ---------------------------------------------
STEP_TYPES = (
    broker_step("risk_check", risk_check, RiskCheckParams, 60,
                description="Per-symbol, gross and net exposure against limits; breaches."),
    broker_step("hedge", hedge, HedgeParams, description="Offset net long exposure (inverse ETF or reduce positions)."),
    broker_step("stop_loss_management", stop_loss_management, StopLossParams,
                description="Attach, tighten or trail stop-losses on open positions."),
)
