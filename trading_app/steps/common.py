"""What every trading step shares: the params bases, the symbol scope of a step, the order audit,
the broker's account and market data, and the retry policies of data and broker steps."""
from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trading_app import conf
from trading_app.providers import get_market_data
from trading_app.symbols import SYMBOL_RE, normalise, symbol_scope
from workflows_app.registry import RetryPolicy, StepContext, StepType

logger = logging.getLogger("nexus.trading.steps")

BROKER_RETRY = RetryPolicy(max_retries=3, backoff=2.0, backoff_max=60.0, jitter=True)
DATA_RETRY = RetryPolicy(max_retries=4, backoff=1.0, backoff_max=60.0, jitter=True)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SymbolsParams(Params):
    symbols: list[str] | None = Field(
        None, description="Symbols; default: the previous steps' symbols, else AAPL. The trigger's event or "
                          "input_data.symbols narrows this list unless symbols_mode is fixed.")
    symbols_mode: Literal["narrow", "fixed"] = Field(
        "narrow", description="narrow: analyse/trade only the triggering event's (or input_data's) symbols "
                              "among these; fixed: always exactly these symbols (needs symbols).")

    @field_validator("symbols", mode="before")
    @classmethod
    def _split(cls, v):
        if isinstance(v, str):
            v = [p for p in v.split(",") if p.strip()]
        return v

    @field_validator("symbols")
    @classmethod
    def _check(cls, v):
        if v is None:
            return v
        if len(v) > 500:
            raise ValueError("at most 500 symbols")
        return [normalise(s) if _wellformed(s) else _raise_symbol(s) for s in v]

    @model_validator(mode="after")
    def _fixed_needs_symbols(self):
        if self.symbols_mode == "fixed" and not self.symbols:
            raise ValueError("symbols_mode 'fixed' needs a non-empty symbols list")
        return self


def _wellformed(s) -> bool:
    return isinstance(s, str) and bool(SYMBOL_RE.match(s.strip().upper().replace("^VIX", "VIX")))


def _raise_symbol(s):
    raise ValueError(f"malformed symbol {s!r}: 1-5 letters, optional .X class suffix")


def broker_step(name, handler, params_model=Params, timeout=120, **options) -> StepType:
    """A step type that talks to the broker: the ``trading`` queue, broker retries."""
    return StepType(name=name, handler=handler, params_model=params_model, queue="trading", retry=BROKER_RETRY,
                    timeout=timeout, **options)


def data_step(name, handler, params_model=Params, timeout=30, **options) -> StepType:
    """A step type that reads data (or the database only): the default queue, data retries."""
    return StepType(name=name, handler=handler, params_model=params_model, retry=DATA_RETRY, timeout=timeout,
                    **options)


# --- symbol scope ----------------------------------------------------------------------------------
def step_scope(ctx: StepContext, p, **kw) -> dict:
    """The step's symbol scope (see ``trading_app.symbols.symbol_scope``), shown in its output."""
    return symbol_scope(ctx, p.symbols, getattr(p, "symbols_mode", "narrow"), **kw)


def empty_scope(scope: dict, **extra) -> dict:
    """The output of a step left with no symbols by the scope rule: it does nothing, and says why."""
    return {"symbols": [], "symbol_scope": scope, "by_symbol": {}, **extra,
            "note": scope.get("reason") or "no symbols in scope"}


def find_in_context(ctx: StepContext, symbol: str, key: str, primary: str | None = None):
    """The latest value of ``key`` for ``symbol`` in the context: a step output's by_symbol first,
    then (for the primary symbol) the top-level merged value."""
    context = ctx.context or {}
    for value in reversed(list(context.values())):
        if isinstance(value, dict):
            by = value.get("by_symbol")
            if isinstance(by, dict) and isinstance(by.get(symbol), dict) and by[symbol].get(key) is not None:
                return by[symbol][key]
    by = context.get("by_symbol")
    if isinstance(by, dict) and isinstance(by.get(symbol), dict) and by[symbol].get(key) is not None:
        return by[symbol][key]
    if symbol == primary and context.get(key) is not None:
        return context.get(key)
    return None


# --- broker -----------------------------------------------------------------------------------------
def audit_order(ctx: StepContext, order: dict, **extra) -> dict:
    """Record an order placement (or its idempotent resolution) in the execution's audit trail."""
    event = "order_resolved" if order.get("duplicate") else "order_submitted"
    fields = ("order_id", "client_order_id", "symbol", "side", "qty", "status", "filled_avg_price", "broker")
    try:
        ctx.audit(event, **{k: order.get(k) for k in fields}, **extra)
    except Exception:  # noqa: BLE001 - auditing must never break an order path
        logger.warning("could not audit %s", event, exc_info=True)
    return order


def provider_modes(ctx: StepContext) -> dict:
    """Which providers and broker this step ran against (test mode forces the offline ones)."""
    return {"test_mode": bool(ctx.test_mode),
            "market_data": conf.provider_name("market_data", ctx.test_mode),
            "news": conf.provider_name("news", ctx.test_mode),
            "broker": conf.provider_name("broker", ctx.test_mode)}


def account_of(broker):
    """The account row a broker is bound to (its kill switch and limits), if any."""
    return getattr(broker, "account_row", None)


def account_and_positions(broker) -> tuple[dict, dict[str, dict]]:
    account = broker.get_account()
    positions = {p["symbol"]: p for p in broker.get_positions()}
    return account, positions


def market_data_of(broker, test_mode: bool):
    """The market data the broker prices orders with (paper), else the configured provider."""
    return broker.market_data if hasattr(broker, "market_data") else get_market_data(test_mode)
