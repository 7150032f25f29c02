"""The governor's judgement, without the database: a reading's usage of each limit, the streaks that
confirm a breach, and the decision on one order. ``gate`` locks the state and stores what this returns.

A reading is *valid* when its equity and every price in it are finite and positive. An invalid one
changes nothing (no streak grows or resets) and the order it was taken for is refused with the
reason - it never passes unjudged. A breach latches only after ``NEXUS_RISK_CONFIRM_READINGS``
consecutive valid breaching readings; until then orders that add exposure are refused, naming it.
Halted refuses every order but a protective stop that can only reduce a position (leaving a losing
position unprotected would be the riskier choice); reduce-only lets every reducing order through.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

STATE_RANK = {"active": 0, "reduce_only": 1, "halted": 2}
CAP_FIELD = {"gross_exposure": "max_gross_exposure", "net_exposure": "max_net_exposure",
             "symbol_exposure": "max_position_pct"}


@dataclass
class Reading:
    """What the broker reports for one decision: equity, signed position values and quantities, and
    the price of the order's symbol; ``problems`` lists what is missing or absurd."""
    equity: float | None
    values: dict[str, float] = field(default_factory=dict)
    qty: dict[str, float] = field(default_factory=dict)
    price: float | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class Decision:
    decision: str  # allowed / reduced / refused
    qty: float
    reason: str = ""
    limit: str = ""
    latched: list = field(default_factory=list)  # (limit, new state, reason) of breaches this reading confirmed
    warnings: list = field(default_factory=list)  # (limit, value, limit value)


def sane(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def usage(reading: Reading, day_open: float, peak: float) -> dict[str, float]:
    eq = reading.equity
    gross = sum(abs(v) for v in reading.values.values())
    return {"daily_loss": max(0.0, (day_open - eq) / day_open), "drawdown": max(0.0, (peak - eq) / peak),
            "gross_exposure": gross / eq, "net_exposure": abs(sum(reading.values.values())) / eq,
            "symbol_exposure": max((abs(v) for v in reading.values.values()), default=0.0) / eq}


def judge_reading(state, limits: dict, reading: Reading, confirm: int) -> tuple[dict, list, list]:
    """Update ``state``'s baselines and streaks from a valid reading; returns (usage, confirmed,
    unconfirmed) where each breach is (limit, value)."""
    eq = reading.equity
    state.peak_equity = max(state.peak_equity or eq, eq)
    used = usage(reading, state.day_open_equity or eq, state.peak_equity)
    confirmed, unconfirmed, streaks = [], [], dict(state.streaks or {})
    for name, value in used.items():
        if value > limits[name].value + 1e-12:
            streaks[name] = int(streaks.get(name, 0)) + 1
            (confirmed if streaks[name] >= confirm else unconfirmed).append((name, value))
        else:
            streaks.pop(name, None)
    state.streaks = streaks
    state.last_reading = {"equity": round(eq, 2), "usage": {k: round(v, 6) for k, v in used.items()}}
    return used, confirmed, unconfirmed


def reducing(held: float, side: str, qty: float) -> tuple[bool, float]:
    """Whether an order only reduces the symbol's position, and the quantity that does so without
    flipping it (a sell of more than the long is cut to the long)."""
    if held > 0 and side == "sell":
        return True, min(qty, held)
    if held < 0 and side == "buy":
        return True, min(qty, -held)
    return False, qty


def exposures(values: dict[str, float], symbol: str, equity: float) -> dict[str, float]:
    return {"gross_exposure": sum(abs(v) for v in values.values()) / equity,
            "net_exposure": abs(sum(values.values())) / equity,
            "symbol_exposure": abs(values.get(symbol, 0.0)) / equity}


def projected(reading: Reading, symbol: str, side: str, qty: float) -> list[tuple[str, float, float]]:
    """(measure, before, after) of each exposure when the order fills at the reading's price."""
    delta = (qty if side == "buy" else -qty) * reading.price
    after = {**reading.values, symbol: reading.values.get(symbol, 0.0) + delta}
    before = exposures(reading.values, symbol, reading.equity)
    return [(k, before[k], v) for k, v in exposures(after, symbol, reading.equity).items()]


def _refuse(qty, reason, limit="", **kw) -> Decision:
    return Decision("refused", qty, reason, limit, **kw)


def order_checks(state_name: str, limits: dict, reading: Reading, req, recent_orders: int,
                 unconfirmed: list) -> Decision:
    """The decision on one order once the reading is judged (state already latched if it must)."""
    held = reading.qty.get(req.symbol, 0.0)
    is_reducing, qty = reducing(held, req.side, float(req.qty))
    if state_name == "halted":
        if req.type == "stop" and is_reducing and qty == float(req.qty):
            return Decision("allowed", qty, "protective stop: it can only reduce a position")
        return _refuse(req.qty, "account halted by the risk governor until an operator resets it", "state")
    rate = limits["order_rate"]
    if recent_orders + 1 > rate.value:
        return _refuse(req.qty, f"order_rate: {recent_orders + 1} orders in 60 s, above {rate.value:g}", "order_rate")
    if is_reducing:
        reason = f"reduced from {req.qty:g} to {qty:g}: reduce only, the position is not flipped" \
            if qty < float(req.qty) else ""
        return Decision("reduced" if reason else "allowed", qty, reason)
    if state_name == "reduce_only":
        return _refuse(req.qty, "account is reduce-only: only orders that reduce exposure pass", "state")
    if unconfirmed:
        name, value = unconfirmed[0]
        return _refuse(req.qty, f"{name} at {value:.4g} above {limits[name].value:g} on one reading: orders that "
                                f"add exposure are refused until it is confirmed or clears", name)
    notional = float(req.qty) * reading.price
    if notional > limits["order_notional"].value + 1e-9:
        return _refuse(req.qty, f"order_notional: {notional:.2f} above {limits['order_notional'].value:g}",
                       "order_notional")
    for name, before, value in projected(reading, req.symbol, req.side, float(req.qty)):
        if value > limits[name].value + 1e-9 and value > before + 1e-12:  # what shrinks a measure passes
            return _refuse(req.qty, f"{name} ({CAP_FIELD[name]}): the order would make it {value:.4g}, above "
                                    f"{limits[name].value:g}", name)
    return Decision("allowed", qty)


def warnings_for(limits: dict, used: dict, warn_at: float) -> list:
    return [(name, value, limits[name].value) for name, value in used.items()
            if value >= warn_at * limits[name].value]


def latch_for(limits: dict, confirmed: list, current: str) -> tuple[str, list]:
    """The state the confirmed breaches move the account to (never back towards active)."""
    new, latched = current, []
    for name, value in confirmed:
        action = limits[name].action
        if action not in STATE_RANK or STATE_RANK[action] <= STATE_RANK[current]:
            continue  # already there (or further): a breach is recorded when it moves the state
        new = action if STATE_RANK[action] > STATE_RANK[new] else new
        latched.append((name, action, f"{name} at {value:.4g} above {limits[name].value:g}"))
    return new, latched
