"""The backtest's fill model: pessimistic by default, pure (no database), tested on its own.

A bar spans ``start`` (its open) to ``end`` (its close). The rules:

* **Market orders** fill at the open of the first bar that *starts at or after* the order was
  placed - never the bar whose close produced the signal - moved against the order by the half
  spread plus the slippage (``spread_bps + slippage_bps``).
* **Volume cap**: at most ``volume_share`` of the bar's volume fills (whole shares); the rest stays
  open and fills at the next bar's open (a partial fill carried over).
* **Limit orders** fill only when the bar trades *through* the limit (a buy needs ``low < limit``;
  touching is not enough), at the limit moved by the spread and slippage but never beyond the limit;
  a bar that opens through the limit fills at the open (the better price), costs applied.
* **Stop orders** (and stop-loss legs) trigger when ``low <= stop`` (sell) / ``high >= stop`` (buy)
  and fill at the stop, or at the open when the bar gaps through it, moved against the order.
* **Tie-break**: when a bar reaches both legs of a bracket, the stop-loss fills and the take-profit is
  cancelled (we cannot know which came first; assume the worse). Legs created by an entry filled at
  this bar's open are evaluated against this bar for the stop-loss only.
* Commission: ``max(commission_min, commission_per_share x qty)`` per fill (booked by the ledger).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

BPS = 10_000.0


@dataclass(frozen=True)
class Bar:
    start: float  # epoch seconds of the open
    end: float  # epoch seconds of the close
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class Costs:
    spread_bps: float = 2.0
    slippage_bps: float = 5.0
    volume_share: float = 0.1

    @classmethod
    def of(cls, fill_model: dict) -> Costs:
        return cls(float(fill_model.get("spread_bps", 2.0)), float(fill_model.get("slippage_bps", 5.0)),
                   float(fill_model.get("volume_share", 0.1)))


def adverse(price: float, side: str, costs: Costs) -> float:
    """``price`` moved against the order by the half spread and the slippage."""
    move = (costs.spread_bps + costs.slippage_bps) / BPS
    return round(price * (1 + move) if side == "buy" else price * (1 - move), 4)


def capped(remaining: float, bar: Bar, costs: Costs) -> float:
    """Whole shares within ``volume_share`` of the bar's volume (0: nothing fills on this bar)."""
    return float(min(remaining, math.floor(max(bar.volume, 0.0) * costs.volume_share)))


def market_price(side: str, bar: Bar, costs: Costs) -> float:
    return adverse(bar.open, side, costs)


def limit_price(side: str, limit: float, bar: Bar, costs: Costs) -> float | None:
    if side == "buy":
        if bar.open < limit:
            return min(adverse(bar.open, side, costs), limit)
        return min(adverse(limit, side, costs), limit) if bar.low < limit else None
    if bar.open > limit:
        return max(adverse(bar.open, side, costs), limit)
    return max(adverse(limit, side, costs), limit) if bar.high > limit else None


def stop_price(side: str, stop: float, bar: Bar, costs: Costs) -> float | None:
    if side == "sell":
        if bar.open <= stop:
            return adverse(bar.open, side, costs)  # gapped through: the open, worse than the stop
        return adverse(stop, side, costs) if bar.low <= stop else None
    if bar.open >= stop:
        return adverse(bar.open, side, costs)
    return adverse(stop, side, costs) if bar.high >= stop else None


def resting_price(order_type: str, side: str, level: float, bar: Bar, costs: Costs) -> float | None:
    """The fill price of a limit or stop order on ``bar``, else None."""
    if order_type == "limit":
        return limit_price(side, level, bar, costs)
    if order_type == "stop":
        return stop_price(side, level, bar, costs)
    return None


def leg_order(legs: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """The tie-break: stop-loss legs are evaluated (and fill, cancelling their take-profit) first."""
    return sorted(legs, key=lambda pair: 0 if pair[0] == "stop_loss" else 1)
