"""Order steps: trade_execution (risk-sized bracket orders from the signals) and position_sizing.

Orders carry a ``client_order_id`` derived from ``ctx.idempotency_key`` (execution + step) and the
symbol, so a retried or redelivered step finds its order instead of placing a second one. Sizing
is ``trading_app.risk``'s rule under the operator's ceilings; the kill switch is checked before
every order.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from trading_app import accounts, indicators, killswitch, risk
from trading_app.brokers import OrderRequest, client_order_id_for
from trading_app.steps.common import (
    SymbolsParams,
    account_and_positions,
    account_of,
    audit_order,
    broker_step,
    empty_scope,
    find_in_context,
    market_data_of,
    provider_modes,
    step_scope,
)
from workflows_app.errors import PermanentStepError
from workflows_app.registry import StepContext


# --- trade_execution -------------------------------------------------------------------------
class TradeParams(SymbolsParams):
    risk_limit: float = Field(0.02, gt=0.0, le=0.5, description="Max loss entry->stop, fraction of equity.")
    order_type: Literal["market", "limit"] = "market"
    limit_offset_bps: float = Field(10.0, ge=0, le=1000, description="Limit orders: price improvement allowed.")
    stop_loss_pct: float | None = Field(None, gt=0, lt=0.5, description="Stop distance; default atr_multiple x ATR.")
    atr_multiple: float = Field(2.0, gt=0, le=20)
    take_profit_ratio: float | None = Field(2.0, gt=0, le=20, description="Take-profit at this many times the risk.")
    trail_percent: float | None = Field(None, gt=0, lt=0.5)
    max_position_pct: float | None = Field(None, gt=0, le=1)
    max_gross_exposure: float | None = Field(None, gt=0, le=10)
    allow_short: bool = False
    signal: Literal["BUY", "SELL"] | None = Field(None, description="Override the context's signal.")

    _ceilings = field_validator("risk_limit", "max_position_pct", "max_gross_exposure")(
        lambda cls, v, info: risk.check_ceiling(info.field_name, v))


def _signal_for(ctx: StepContext, sym: str, primary: str) -> tuple[str | None, float | None]:
    sig = find_in_context(ctx, sym, "signal", primary)
    conf_ = find_in_context(ctx, sym, "confidence", primary)
    return (sig.upper() if isinstance(sig, str) else None), conf_


def execute_one(ctx: StepContext, broker, md, sym: str, side_signal: str, p: TradeParams,
                account: dict, positions: dict, bars=None) -> dict:
    """Size and submit one order for ``sym``; returns an order dict or a skipped record.

    A SELL closes a long position and a BUY covers a short one; otherwise the signal opens a
    risk-sized bracket order (``_open_position``)."""
    coid = client_order_id_for(ctx.idempotency_key, sym)
    existing = broker.get_order_by_client_id(coid)
    if existing is not None:  # this step already placed it (retry / redelivery)
        return audit_order(ctx, {**existing, "duplicate": True})
    pos = positions.get(sym)
    held = float(pos["qty"]) if pos else 0.0
    entry = float(md.latest_price(sym))
    if side_signal == "SELL" and held > 0:
        return _close_position(ctx, broker, sym, coid, "sell", held, "close_long")
    if side_signal == "SELL" and not p.allow_short:
        return {"status": "skipped", "symbol": sym, "side": "sell", "qty": 0,
                "reason": "SELL signal but no long position to close and shorting is disabled (allow_short=false)"}
    if side_signal == "BUY" and held < 0:
        return _close_position(ctx, broker, sym, coid, "buy", abs(held), "close_short")
    side = "buy" if side_signal == "BUY" else "sell"
    return _open_position(ctx, broker, md, sym, side, entry, coid, p, account, positions, bars)


def _close_position(ctx: StepContext, broker, sym: str, coid: str, side: str, qty: float, intent: str) -> dict:
    killswitch.ensure_trading_allowed(account_of(broker))
    req = OrderRequest(symbol=sym, side=side, qty=qty, client_order_id=coid, execution_id=ctx.execution_id,
                       step_name=ctx.step_name, test_mode=ctx.test_mode)
    return audit_order(ctx, {**broker.submit_order(req), "intent": intent})


def take_profit_for(side: str, entry: float, stop: float, ratio: float | None) -> float | None:
    """The take-profit ``ratio`` times the risk (entry to stop) away from the entry; None without a ratio."""
    if not ratio:
        return None
    dist = abs(entry - stop) * ratio
    return entry + dist if side == "buy" else entry - dist


def _open_position(ctx: StepContext, broker, md, sym: str, side: str, entry: float, coid: str, p: TradeParams,
                   account: dict, positions: dict, bars) -> dict:
    atr_value = find_in_context(ctx, sym, "atr")  # from a technical_analysis step, when there was one
    if atr_value is None:
        bars = md.daily_bars(sym, limit=60) if bars is None else bars
        atr_value = indicators.atr(bars) if len(bars) > 1 else None
    stop = risk.stop_price_for(side, entry, atr=atr_value, atr_multiple=p.atr_multiple, stop_loss_pct=p.stop_loss_pct)
    take_profit = take_profit_for(side, entry, stop, p.take_profit_ratio)
    # the operator's ceilings, tightened by the account's and the step's own limits (never loosened)
    lim = risk.limits(account_of(broker), max_position_pct=p.max_position_pct, max_gross_exposure=p.max_gross_exposure)
    sizing = _size(side, entry, stop, take_profit, p.risk_limit, account, positions, sym, lim)
    if sizing.qty <= 0:
        return {"status": "skipped", "symbol": sym, "side": side, "qty": 0, "reason": sizing.reason,
                "sizing": sizing.as_dict()}
    killswitch.ensure_trading_allowed(account_of(broker))
    limit_price = None
    if p.order_type == "limit":
        off = p.limit_offset_bps / 10_000
        limit_price = round(entry * (1 + off) if side == "buy" else entry * (1 - off), 2)
    req = OrderRequest(
        symbol=sym, side=side, qty=sizing.qty, client_order_id=coid, type=p.order_type, limit_price=limit_price,
        stop_loss=round(stop, 2), take_profit=round(take_profit, 2) if take_profit else None,
        trail_percent=p.trail_percent, execution_id=ctx.execution_id, step_name=ctx.step_name,
        test_mode=ctx.test_mode)
    order = broker.submit_order(req)
    return audit_order(ctx, {**order, "sizing": sizing.as_dict(), "intent": "open"},
                       max_loss=round(sizing.max_loss, 2), risk_budget=round(sizing.risk_budget, 2))


def _size(side: str, entry: float, stop: float, take_profit: float | None, risk_limit: float, account: dict,
          positions: dict, sym: str, lim: dict) -> risk.Sizing:
    """``risk.size_position`` on the account's figures (equity, costs, buying power) and positions."""
    pos = positions.get(sym)
    gross = sum(abs(float(x.get("market_value") or 0)) for x in positions.values())
    return risk.size_position(
        side=side, equity=float(account["equity"]), entry=entry, stop=stop,
        risk_limit=risk.effective_risk_limit(risk_limit),
        take_profit=take_profit, slippage_bps=float(account.get("slippage_bps", 0.0)),
        commission_per_share=float(account.get("commission_per_share", 0.0)),
        commission_min=float(account.get("commission_min", 0.0)),
        max_position_pct=lim["max_position_pct"],
        current_position_value=float(pos["market_value"]) if pos else 0.0,
        max_gross_exposure=lim["max_gross_exposure"],
        gross_exposure=gross, buying_power=float(account.get("buying_power", account["equity"])),
    )


def trade_execution(ctx: StepContext) -> dict:
    p: TradeParams = ctx.params
    scope = step_scope(ctx, p)
    if scope["source"] == "default":  # no symbols named anywhere: trade what the signal step scored
        sig_symbols = [s for s in ((ctx.context or {}).get("by_symbol") or {}) if find_in_context(ctx, s, "signal")]
        if sig_symbols:
            scope = {**scope, "symbols": sig_symbols, "source": "previous_step"}
    symbols = scope["symbols"]
    if not symbols:
        return empty_scope(scope, order_id=None, status="skipped", orders=[], skipped=[], risk_limit=p.risk_limit,
                            reason=scope.get("reason"), **provider_modes(ctx))
    primary = symbols[0]
    decisions = []
    for sym in symbols:
        sig, confidence = (p.signal, None) if p.signal else _signal_for(ctx, sym, primary)
        decisions.append((sym, sig, confidence))
    broker = accounts.broker_for(ctx)
    md = market_data_of(broker, ctx.test_mode)
    results = []
    account = positions = None
    for sym, sig, confidence in decisions:
        if sig not in ("BUY", "SELL"):
            results.append({"status": "skipped", "symbol": sym, "side": None, "qty": 0, "signal": sig or None,
                            "reason": "signal is HOLD: no order" if sig == "HOLD" else
                            "no signal for this symbol in the context"})
            continue
        if account is None:
            killswitch.ensure_trading_allowed(account_of(broker))
            account, positions = account_and_positions(broker)
        res = execute_one(ctx, broker, md, sym, sig, p, account, positions)
        res.update({"signal": sig, "confidence": confidence})
        results.append(res)
        if res.get("status") not in ("skipped",):
            account, positions = account_and_positions(broker)
    orders = [r for r in results if r.get("status") != "skipped"]
    first = orders[0] if orders else results[0]
    out = {
        "order_id": first.get("order_id"),
        "client_order_id": first.get("client_order_id"),
        "status": first.get("status"),
        "symbol": first.get("symbol"),
        "side": first.get("side"),
        "qty": first.get("qty"),
        "filled_avg_price": first.get("filled_avg_price"),
        "orders": orders,
        "skipped": [r for r in results if r.get("status") == "skipped"],
        "risk_limit": p.risk_limit,
        "broker": broker.name,
        "symbol_scope": scope,
        **provider_modes(ctx),
    }
    if first.get("status") == "skipped":
        out["reason"] = first.get("reason")
    if first.get("sizing"):
        out["sizing"] = first["sizing"]
    return out


# --- position_sizing ---------------------------------------------------------------------------
class PositionSizingParams(SymbolsParams):
    risk_limit: float = Field(0.02, gt=0, le=0.5)
    side: Literal["buy", "sell"] = "buy"
    stop_loss_pct: float | None = Field(None, gt=0, lt=0.5)
    atr_multiple: float = Field(2.0, gt=0, le=20)
    take_profit_ratio: float | None = Field(2.0, gt=0, le=20)

    _ceilings = field_validator("risk_limit")(lambda cls, v, info: risk.check_ceiling(info.field_name, v))


def position_sizing(ctx: StepContext) -> dict:
    p: PositionSizingParams = ctx.params
    scope = step_scope(ctx, p)
    symbols = scope["symbols"]
    if not symbols:  # a later step would size nothing and act on it: fail, naming why
        raise PermanentStepError(f"no symbols in scope: {scope.get('reason')}", error_class="empty_symbol_scope")
    broker = accounts.broker_for(ctx)
    md = market_data_of(broker, ctx.test_mode)
    account, positions = account_and_positions(broker)
    lim = risk.limits(account_of(broker))
    by_symbol = {}
    for sym in symbols:
        entry = float(md.latest_price(sym))
        bars = md.daily_bars(sym, limit=60)
        stop = risk.stop_price_for(p.side, entry, atr=indicators.atr(bars), atr_multiple=p.atr_multiple,
                                   stop_loss_pct=p.stop_loss_pct)
        tp = take_profit_for(p.side, entry, stop, p.take_profit_ratio)
        by_symbol[sym] = _size(p.side, entry, stop, tp, p.risk_limit, account, positions, sym, lim).as_dict()
    first = by_symbol[symbols[0]]
    return {"symbol": symbols[0], "qty": first["qty"], "entry": first["entry"], "stop": first["stop"],
            "take_profit": first["take_profit"], "max_loss": first["max_loss"], "risk_limit": p.risk_limit,
            "equity": account["equity"], "by_symbol": by_symbol, "symbols": symbols, "symbol_scope": scope}


# --- declarations (trading_app.plugin collects them) ---------------------------------------------
STEP_TYPES = (
    broker_step("trade_execution", trade_execution, TradeParams,
                description="Risk-sized bracket order for each actionable signal (idempotent client_order_id)."),
    broker_step("position_sizing", position_sizing, PositionSizingParams, 60,
                description="Shares to trade so that the loss to the stop stays within risk_limit x equity."),
)
