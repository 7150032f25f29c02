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
    if not raw:
        raw = list(default or DEFAULT_SYMBOLS)
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    out: list[str] = []
    for item in raw:
        sym = normalise(item)
        if sym not in out:
            out.append(sym)
    return out
