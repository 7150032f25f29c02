"""Readings for the governor from what a broker reports: a price or equity that is missing, not a
number, or not positive is named in ``problems`` (the reading then judges nothing)."""
from __future__ import annotations

import math

from trading_app.governor.evaluate import Reading
from workflows_app.errors import PermanentStepError


def _number(value):
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def price_of(market_data, symbol: str, problems: list[str]) -> float | None:
    try:
        px = _number(market_data.latest_price(symbol))
    except PermanentStepError as exc:
        if exc.error_class == "invalid_symbol":  # not a data glitch: the order can never be judged
            raise
        problems.append(f"price of {symbol} missing ({exc})")
        return None
    except Exception as exc:  # noqa: BLE001 - a provider failure is missing data, said as such
        problems.append(f"price of {symbol} missing ({type(exc).__name__}: {str(exc)[:120]})")
        return None
    if px is None or px <= 0:
        problems.append(f"price of {symbol} is absurd ({px!r})")
        return None
    return px


def paper_reading(market_data, cash: float, held: dict[str, float], symbol: str) -> Reading:
    """Equity = cash + each position at the current price (``held``: symbol -> signed qty)."""
    problems: list[str] = []
    values = {}
    for sym, qty in held.items():
        px = price_of(market_data, sym, problems)
        if px is not None:
            values[sym] = qty * px
    if symbol is None:  # a reading without an order (the sweep)
        price = None
    elif symbol in held:
        price = values[symbol] / held[symbol] if symbol in values else None
    else:
        price = price_of(market_data, symbol, problems)
    equity = None if problems else cash + sum(values.values())
    return Reading(equity=equity, values=values, qty=dict(held), price=price, problems=problems)


def broker_reading(account: dict, positions: list[dict], symbol: str, fallback_price) -> Reading:
    """A remote broker's own figures (Alpaca: equity, positions' market values and prices)."""
    problems: list[str] = []
    equity = _number(account.get("equity"))
    if equity is None or equity <= 0:
        problems.append(f"equity reading {account.get('equity')!r} is not a positive number")
    values, qty, price = {}, {}, None
    for p in positions:
        value = _number(p.get("market_value"))
        if value is None:
            problems.append(f"market value of {p.get('symbol')} is absurd ({p.get('market_value')!r})")
            continue
        values[p["symbol"]], qty[p["symbol"]] = value, float(p.get("qty") or 0.0)
        if p["symbol"] == symbol:
            price = _number(p.get("last_price"))
    if symbol is not None and (price is None or price <= 0):
        price = fallback_price(problems)
    return Reading(equity=None if problems else equity, values=values, qty=qty, price=price, problems=problems)
