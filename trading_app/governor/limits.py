"""The governor's limits: the operator's ceilings (settings), each account's tighter values, and
what a breach of each moves the account to.

| limit | measured as | ceiling (setting) | account field |
|---|---|---|---|
| daily_loss | (day's opening equity - equity) / opening equity | NEXUS_RISK_MAX_DAILY_LOSS | RiskState.max_daily_loss |
| drawdown | (peak equity - equity) / peak equity | NEXUS_RISK_MAX_DRAWDOWN | RiskState.max_drawdown |
| gross_exposure | sum abs(position value) / equity | NEXUS_MAX_GROSS_EXPOSURE | BrokerAccount.max_gross_exposure |
| net_exposure | abs(sum position value) / equity | NEXUS_RISK_MAX_NET_EXPOSURE | RiskState.max_net_exposure |
| symbol_exposure | largest abs(position value) / equity | NEXUS_MAX_POSITION_PCT | BrokerAccount.max_position_pct |
| order_notional | qty x price of one order (currency) | NEXUS_RISK_MAX_ORDER_NOTIONAL | RiskState.max_order_notional |
| order_rate | orders in the last 60 s | NEXUS_RISK_MAX_ORDERS_PER_MINUTE | RiskState.max_orders_per_minute |

``NEXUS_RISK_ACTIONS`` says what a confirmed breach does, per limit: ``halted``, ``reduce_only`` or
``refuse`` (the state stays; orders that would add to the breached measure are refused). Defaults:
the loss limits halt, the others refuse.
"""
from __future__ import annotations

from dataclasses import dataclass

from trading_app import conf

LIMITS = ("daily_loss", "drawdown", "gross_exposure", "net_exposure", "symbol_exposure", "order_notional",
          "order_rate")
READING_LIMITS = LIMITS[:5]  # measured on each equity reading; the last two on each order
CEILING = {"daily_loss": "NEXUS_RISK_MAX_DAILY_LOSS", "drawdown": "NEXUS_RISK_MAX_DRAWDOWN",
           "gross_exposure": "NEXUS_MAX_GROSS_EXPOSURE", "net_exposure": "NEXUS_RISK_MAX_NET_EXPOSURE",
           "symbol_exposure": "NEXUS_MAX_POSITION_PCT", "order_notional": "NEXUS_RISK_MAX_ORDER_NOTIONAL",
           "order_rate": "NEXUS_RISK_MAX_ORDERS_PER_MINUTE"}
# the account's own value of each limit: (model, field) - RiskState or BrokerAccount
OVERRIDE = {"daily_loss": ("state", "max_daily_loss"), "drawdown": ("state", "max_drawdown"),
            "gross_exposure": ("account", "max_gross_exposure"), "net_exposure": ("state", "max_net_exposure"),
            "symbol_exposure": ("account", "max_position_pct"), "order_notional": ("state", "max_order_notional"),
            "order_rate": ("state", "max_orders_per_minute")}
FIELD_LIMIT = {field: name for name, (_, field) in OVERRIDE.items()}
ACTIONS = ("halted", "reduce_only", "refuse")
# exposures move with prices (a ceiling may also be lowered under a held position): by default their
# breach refuses the orders that would add to it (a hedge that lowers net exposure still passes)
DEFAULT_ACTIONS = {"daily_loss": "halted", "drawdown": "halted", "gross_exposure": "refuse",
                   "net_exposure": "refuse", "symbol_exposure": "refuse", "order_notional": "refuse",
                   "order_rate": "refuse"}


class OverrideTooLoose(ValueError):
    """An account's limit above the operator's ceiling: names the field."""


@dataclass(frozen=True)
class Limit:
    name: str
    value: float
    ceiling: float
    action: str
    source: str  # "settings" or "account"


def ceiling(name: str) -> float:
    return float(conf.get(CEILING[name]))


def actions() -> dict[str, str]:
    """``NEXUS_RISK_ACTIONS`` ("daily_loss=halted,order_rate=refuse"), over the defaults; bad entries
    are a configuration error naming the limit."""
    out = dict(DEFAULT_ACTIONS)
    for part in str(conf.get("NEXUS_RISK_ACTIONS") or "").split(","):
        if not part.strip():
            continue
        name, _, action = (s.strip() for s in part.partition("="))
        if name not in LIMITS or action not in ACTIONS:
            raise ValueError(f"NEXUS_RISK_ACTIONS: {part.strip()!r} (limits: {', '.join(LIMITS)}; "
                             f"actions: {', '.join(ACTIONS)})")
        out[name] = action
    return out


def check_override(field: str, value) -> float | None:
    """An account's limit may tighten the ceiling, never loosen it: raises ``OverrideTooLoose``."""
    if value is None:
        return None
    name = FIELD_LIMIT[field]
    top = ceiling(name)
    value = float(value)
    if value <= 0:
        raise OverrideTooLoose(f"{field}: must be positive, got {value:g}")
    if value > top + 1e-12:
        raise OverrideTooLoose(f"{field}: {value:g} is above the operator's ceiling {CEILING[name]}={top:g}; "
                               f"an account can only tighten it")
    return value


def effective(account, state) -> dict[str, Limit]:
    """The limits in force on ``account``: each ceiling, or the account's own lower value. A stored
    value above its ceiling (the ceiling was lowered since) is clamped to the ceiling."""
    acts = actions()
    rows = {"state": state, "account": account}
    out = {}
    for name in LIMITS:
        top = ceiling(name)
        model, field = OVERRIDE[name]
        own = getattr(rows[model], field, None)
        value = min(top, float(own)) if own is not None and float(own) > 0 else top
        out[name] = Limit(name, value, top, acts[name], "account" if value < top else "settings")
    return out


def set_override(account, state, field: str, value) -> None:
    """Store an account's own limit (None clears it), refused when looser than the ceiling."""
    if field not in FIELD_LIMIT:
        raise OverrideTooLoose(f"{field}: unknown limit field (one of {', '.join(FIELD_LIMIT)})")
    checked = check_override(field, value)
    model, _ = OVERRIDE[FIELD_LIMIT[field]]
    row = state if model == "state" else account
    setattr(row, field, checked)
    row.save(update_fields=[field])
