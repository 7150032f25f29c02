"""Risk: position sizing, the operator's ceilings and exposure limits (the kill switch: ``killswitch``).

Sizing rule (``size_position``): the loss if the stop is hit, counted pessimistically - entry
moved against us by the slippage, exit at the stop moved against us by the slippage, commission
paid on the way in and out - never exceeds ``risk_limit x equity``:

    loss_per_share = entry x (1 + slip) - stop x (1 - slip) + 2 x commission_per_share   (long)
    qty = floor((risk_limit x equity - 2 x commission_min) / loss_per_share)

then ``qty`` is cut to the per-symbol cap (|position value| <= max_position_pct x equity), the gross
cap (sum |position values| <= max_gross_exposure x equity) and, for buys, the cash available.
Every cut is reported in ``capped_by``. A zero quantity is an honest "no trade" with a reason.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from trading_app import conf
from workflows_app.errors import PermanentStepError


@dataclass
class Sizing:
    qty: int
    side: str
    entry: float
    stop: float
    take_profit: float | None
    risk_budget: float
    loss_per_share: float
    max_loss: float
    capped_by: list[str] = field(default_factory=list)
    reason: str | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        for k in ("entry", "stop", "take_profit", "risk_budget", "loss_per_share", "max_loss"):
            if data[k] is not None:
                data[k] = round(data[k], 6)
        return data


def stop_price_for(side: str, entry: float, *, atr: float | None = None, atr_multiple: float = 2.0,
                   stop_loss_pct: float | None = None) -> float:
    """Stop distance: ``stop_loss_pct`` of the entry when given, else ``atr_multiple x ATR``, else 5%."""
    if stop_loss_pct:
        dist = entry * stop_loss_pct
    elif atr and atr > 0:
        dist = atr * atr_multiple
    else:
        dist = entry * 0.05
    dist = min(dist, entry * 0.5)
    return entry - dist if side == "buy" else entry + dist


def size_position(*, side: str, equity: float, entry: float, stop: float, risk_limit: float,
                  take_profit: float | None = None, slippage_bps: float = 0.0,
                  commission_per_share: float = 0.0, commission_min: float = 0.0,
                  max_position_pct: float | None = None, current_position_value: float = 0.0,
                  max_gross_exposure: float | None = None, gross_exposure: float = 0.0,
                  buying_power: float | None = None) -> Sizing:
    if side not in ("buy", "sell"):
        raise ValueError("side must be buy or sell")
    if entry <= 0 or equity <= 0 or risk_limit <= 0:
        return Sizing(0, side, entry, stop, take_profit, 0.0, 0.0, 0.0, [], "no equity, price or risk budget")
    if (side == "buy" and stop >= entry) or (side == "sell" and stop <= entry):
        return Sizing(0, side, entry, stop, take_profit, 0.0, 0.0, 0.0, [], "stop is on the wrong side of entry")
    slip = slippage_bps / 10_000.0
    if side == "buy":
        per_share = entry * (1 + slip) - stop * (1 - slip)
    else:
        per_share = stop * (1 + slip) - entry * (1 - slip)
    per_share += 2 * commission_per_share
    budget = risk_limit * equity
    qty = math.floor(max(0.0, budget - 2 * commission_min) / per_share) if per_share > 0 else 0
    capped: list[str] = []
    fill_px = entry * (1 + slip)
    if max_position_pct is not None:
        room = max_position_pct * equity - abs(current_position_value)
        cap = math.floor(max(0.0, room) / fill_px)
        if cap < qty:
            qty, capped = cap, capped + ["max_position_pct"]
    if max_gross_exposure is not None:
        room = max_gross_exposure * equity - gross_exposure
        cap = math.floor(max(0.0, room) / fill_px)
        if cap < qty:
            qty, capped = cap, capped + ["max_gross_exposure"]
    if side == "buy" and buying_power is not None:
        cap = math.floor(max(0.0, buying_power - commission_min) / (fill_px + commission_per_share))
        if cap < qty:
            qty, capped = cap, capped + ["buying_power"]
    qty = max(0, int(qty))
    max_loss = qty * per_share + (2 * max(commission_min, commission_per_share * qty) if qty else 0.0) \
        - (2 * commission_per_share * qty)
    reason = None
    if qty == 0:
        reason = "position size rounds to zero shares" + (f" (capped by {', '.join(capped)})" if capped else
                                                           " (risk budget smaller than one share's risk)")
    return Sizing(qty, side, entry, stop, take_profit, budget, per_share, max_loss, capped, reason)


# --- operator ceilings ------------------------------------------------------------------------------
CEILINGS = {"max_position_pct": "NEXUS_MAX_POSITION_PCT", "max_gross_exposure": "NEXUS_MAX_GROSS_EXPOSURE",
            "risk_limit": "NEXUS_MAX_RISK_LIMIT", "max_net_exposure": "NEXUS_MAX_GROSS_EXPOSURE"}


class RiskLimitExceeded(PermanentStepError):
    def __init__(self, message: str):
        super().__init__(message, error_class="risk_limit_breach")


def ceiling(name: str) -> float:
    """The operator's maximum for a limit (a Django setting / environment variable, see conf)."""
    return float(conf.get(CEILINGS[name]))


def check_ceiling(name: str, value: float | None) -> float | None:
    """Params validators call this: a definition may tighten a ceiling, never loosen it."""
    if value is None:
        return value
    top = ceiling(name)
    if value > top + 1e-12:
        raise ValueError(f"{value} is above the operator's ceiling {CEILINGS[name]}={top:g}; "
                         f"a definition can only tighten it")
    return value


def limits(account=None, **requested) -> dict:
    """The limits in force: the settings' ceilings, tightened by the account's own limits and by
    what the step asked for (``requested``, None = not asked). Never looser than a ceiling."""
    out = {}
    for name in ("max_position_pct", "max_gross_exposure"):
        values = [ceiling(name), getattr(account, name, None), requested.get(name)]
        out[name] = min(float(v) for v in values if v is not None)
    return out


def effective_risk_limit(requested: float) -> float:
    return min(float(requested), ceiling("risk_limit"))


def check_order(*, side: str, qty: float, price: float, equity: float, held_qty: float,
                gross_value: float, lim: dict, symbol: str = "") -> None:
    """The last check before an order leaves: after the fill, the symbol's position value must stay
    within ``max_position_pct x equity`` and the gross within ``max_gross_exposure x equity``. An
    order that only shrinks exposure (closing, reducing) always passes: a cap never traps a position.
    Raises ``RiskLimitExceeded`` (error_class ``risk_limit_breach``)."""
    delta = qty if side == "buy" else -qty
    before, after = abs(held_qty) * price, abs(held_qty + delta) * price
    if after <= before + 1e-9:
        return
    if equity <= 0:
        raise RiskLimitExceeded(f"{side} {qty:g} {symbol}: no equity")
    cap = lim["max_position_pct"] * equity
    if after > cap + 1e-6:
        raise RiskLimitExceeded(
            f"{side} {qty:g} {symbol} would make the position {after:.2f} ({after / equity:.2%} of equity), "
            f"above max_position_pct {lim['max_position_pct']:g}")
    gross_after = gross_value - before + after
    gross_cap = lim["max_gross_exposure"] * equity
    if gross_after > gross_cap + 1e-6:
        raise RiskLimitExceeded(
            f"{side} {qty:g} {symbol} would make gross exposure {gross_after:.2f} "
            f"({gross_after / equity:.2f}x equity), above max_gross_exposure {lim['max_gross_exposure']:g}")


def exposure_report(account: dict, positions: list[dict], *, max_position_pct: float | None = None,
                    max_gross_exposure: float | None = None, max_net_exposure: float | None = None,
                    account_limits=None) -> dict:
    """Per-symbol, gross and net exposure as fractions of equity, with the limits they breach."""
    lim = limits(account_limits, max_position_pct=max_position_pct, max_gross_exposure=max_gross_exposure)
    max_position_pct, max_gross_exposure = lim["max_position_pct"], lim["max_gross_exposure"]
    if max_net_exposure is not None:
        max_net_exposure = min(max_net_exposure, ceiling("max_net_exposure"))
    equity = float(account.get("equity") or 0.0)
    per_symbol = {}
    gross = net = 0.0
    breaches = []
    for pos in positions:
        value = float(pos.get("market_value") or 0.0)
        gross += abs(value)
        net += value
        frac = abs(value) / equity if equity else 0.0
        per_symbol[pos["symbol"]] = {"market_value": round(value, 2), "pct_of_equity": round(frac, 4)}
        if frac > max_position_pct + 1e-9:
            breaches.append({"limit": "max_position_pct", "symbol": pos["symbol"], "value": round(frac, 4),
                             "limit_value": max_position_pct})
    gross_frac = gross / equity if equity else 0.0
    net_frac = net / equity if equity else 0.0
    if gross_frac > max_gross_exposure + 1e-9:
        breaches.append({"limit": "max_gross_exposure", "value": round(gross_frac, 4),
                         "limit_value": max_gross_exposure})
    if max_net_exposure is not None and abs(net_frac) > max_net_exposure + 1e-9:
        breaches.append({"limit": "max_net_exposure", "value": round(net_frac, 4), "limit_value": max_net_exposure})
    return {
        "equity": round(equity, 2), "gross_exposure": round(gross_frac, 4), "net_exposure": round(net_frac, 4),
        "gross_value": round(gross, 2), "net_value": round(net, 2), "per_symbol": per_symbol,
        "limits": {"max_position_pct": max_position_pct, "max_gross_exposure": max_gross_exposure,
                   "max_net_exposure": max_net_exposure},
        "breaches": breaches, "within_limits": not breaches,
    }
