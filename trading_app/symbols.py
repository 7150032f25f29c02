"""Symbol rules.

A symbol is normalised to upper case. It is well-formed when it is 1-5 letters, optionally followed
by a one-letter share class (``BRK.B``), or the index ``VIX`` (also accepted as ``^VIX``).

The simulated universe accepts every well-formed symbol except the reserved "unknown" ones: any
symbol starting with ``ZZ`` (``ZZZZ``, ``ZZTOP``) is treated as not listed, so tests and demos have
a deterministic invalid symbol. Anything malformed (``INVALID`` has 7 letters, ``AAPL1``, ``""``)
is invalid everywhere. Invalid symbols raise ``PermanentStepError(error_class="invalid_symbol")``:
retrying cannot help, the dead-letter policy discards them (audited).
"""
from __future__ import annotations

import re

from workflows_app.errors import PermanentStepError

SYMBOL_RE = re.compile(r"^[A-Z]{1,5}(\.[A-Z])?$")
VIX = "VIX"
DEFAULT_SYMBOLS = ["AAPL"]


class InvalidSymbol(PermanentStepError):
    def __init__(self, symbol: object, reason: str = "unknown symbol"):
        super().__init__(f"{reason}: {symbol!r}", error_class="invalid_symbol")
        self.symbol = symbol


def normalise(symbol: object) -> str:
    if not isinstance(symbol, str):
        raise InvalidSymbol(symbol, "symbol must be a string")
    text = symbol.strip().upper()
    if text == "^VIX":
        text = VIX
    if not SYMBOL_RE.match(text):
        raise InvalidSymbol(symbol, "malformed symbol")
    return text


def validate_simulated(symbol: object) -> str:
    text = normalise(symbol)
    if text.startswith("ZZ"):
        raise InvalidSymbol(text, "unknown symbol (not listed in the simulated universe)")
    return text


def resolve_symbols(params_symbols, ctx=None, default=None) -> list[str]:
    """Symbols from params, else the execution context / input data, else ``default``.

    Accepts a list or a comma-separated string; keeps order, drops duplicates, normalises.
    """
    raw = params_symbols
    if not raw and ctx is not None:
        raw = (ctx.context or {}).get("symbols") or (ctx.input_data or {}).get("symbols")
        if not raw:
            single = (ctx.context or {}).get("symbol") or (ctx.input_data or {}).get("symbol")
            raw = [single] if single else None
    return _clean_list(raw) or _clean_list(list(default or DEFAULT_SYMBOLS))


# --- symbol scope --------------------------------------------------------------------------------
# The one rule for which symbols a trading step analyses or trades (README "Symbol scope"):
#   1. ``symbols_mode: fixed``: the step's own ``symbols``, whatever triggered the execution.
#   2. Otherwise the execution's symbols *narrow* the step's list: a symbol trigger's event
#      (``input_data.event.symbol(s)``), else ``input_data.symbols`` / ``input_data.symbol``.
#      The step's list is its ``symbols`` param, else the symbols the previous steps left in the
#      context. With both, the step takes the execution's symbols that are in its list (an event
#      symbol outside the list is excluded and said so: the step then has nothing to do); with no
#      list, it takes the execution's symbols.
#   3. No execution symbols: the step's list, else the default (AAPL; the scan universe for market_scan).
#   stop_loss_management without a list protects every open position (source "positions"), unnarrowed.
SCOPE_SOURCES = ("trigger_event", "input_data", "step_params", "previous_step", "default", "watchlist", "positions")


def _clean_list(raw) -> list[str] | None:
    if raw is None or raw == "" or raw == []:
        return None
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    elif not isinstance(raw, list | tuple):
        raw = [raw]
    out: list[str] = []
    for item in raw:
        sym = normalise(item)
        if sym not in out:
            out.append(sym)
    return out


def _execution_symbols(ctx) -> tuple[list[str] | None, str | None]:
    """The symbols the execution was started for, and where they came from."""
    input_data = (ctx.input_data or {}) if ctx is not None else {}
    event = input_data.get("event")
    if isinstance(event, dict):
        found = _clean_list(event.get("symbols")) or _clean_list(event.get("symbol"))
        if found:
            return found, "trigger_event"
    found = _clean_list(input_data.get("symbols")) or _clean_list(input_data.get("symbol"))
    return (found, "input_data") if found else (None, None)


def symbol_scope(ctx, params_symbols, mode: str = "narrow", *, use_context: bool = True,
                 default: list[str] | None = None, default_source: str = "default") -> dict:
    """Which symbols a step works on, and why: ``{"symbols", "source", ...}`` (shown in its output)."""
    listed = _clean_list(params_symbols)
    if mode == "fixed" and listed:
        return {"symbols": listed, "source": "step_params", "mode": "fixed"}
    listed_source = "step_params" if listed else None
    context = (ctx.context or {}) if ctx is not None else {}
    if listed is None and use_context and ctx is not None:
        previous = context.get("symbols")
        if previous == [] and isinstance(context.get("symbol_scope"), dict):
            listed, listed_source = [], "previous_step"  # an earlier step was left with nothing
        else:
            listed = _clean_list(previous)
            listed_source = "previous_step" if listed else None
    wanted, wanted_source = _execution_symbols(ctx)
    if wanted:
        scope = {"source": wanted_source, "mode": "narrow", "requested": wanted}
        if listed is None:
            return {**scope, "symbols": wanted}
        kept = [s for s in wanted if s in listed]
        scope.update(symbols=kept, listed=listed, listed_source=listed_source)
        excluded = [s for s in wanted if s not in listed]
        if excluded:
            scope["excluded"] = excluded
            scope["reason"] = (f"{', '.join(excluded)} from the {wanted_source.replace('_', ' ')} "
                               f"{'is' if len(excluded) == 1 else 'are'} not among the step's symbols "
                               f"({listed_source.replace('_', ' ')}): not analysed or traded here")
        return scope
    if listed is not None:
        return {"symbols": listed, "source": listed_source, "mode": mode}
    return {"symbols": list(default or DEFAULT_SYMBOLS), "source": default_source, "mode": mode}
