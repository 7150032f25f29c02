"""Trading step types: params schemas (pydantic, extra fields forbidden, every field defaulted) and handlers.

Handlers take a ``StepContext`` and return a JSON-serialisable dict. Which symbols a step works on
follows one rule (``trading_app.symbols.symbol_scope``, README "Symbol scope"): the trigger's event
or ``input_data.symbols`` narrows the step's list (its ``symbols``, else the previous steps'),
unless the step says ``symbols_mode: fixed``; each output's ``symbol_scope`` says which and why. ``ctx.test_mode`` forces the simulated providers and the paper
broker. Orders carry a ``client_order_id`` derived from ``ctx.idempotency_key`` (execution + step)
and the symbol, so a retried or redelivered step finds its order instead of placing a second one.
"""
from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import Literal

from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trading_app import accounts, conf, indicators, killswitch, risk, sentiment
from trading_app.brokers import OrderRequest, client_order_id_for
from trading_app.providers import get_market_data, get_news_provider
from trading_app.signals import score_signal
from trading_app.symbols import normalise, resolve_symbols, symbol_scope  # noqa: F401 - saga uses steps.resolve_symbols
from workflows_app.errors import PermanentStepError
from workflows_app.registry import RetryPolicy, StepContext, StepType

logger = logging.getLogger("nexus.trading.steps")
DEFAULT_SCAN_UNIVERSE = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "XOM",
                         "JNJ", "WMT", "PG", "MA", "HD", "KO", "PEP", "BAC", "DIS", "NFLX"]


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
    from trading_app.symbols import SYMBOL_RE

    return isinstance(s, str) and bool(SYMBOL_RE.match(s.strip().upper().replace("^VIX", "VIX")))


def _raise_symbol(s):
    raise ValueError(f"malformed symbol {s!r}: 1-5 letters, optional .X class suffix")


def _scope(ctx: StepContext, p, **kw) -> dict:
    """The step's symbol scope (see ``trading_app.symbols.symbol_scope``), shown in its output."""
    return symbol_scope(ctx, p.symbols, getattr(p, "symbols_mode", "narrow"), **kw)


def _symbols(ctx: StepContext, params_symbols) -> list[str]:
    scope = symbol_scope(ctx, params_symbols)
    if not scope["symbols"]:
        raise PermanentStepError(f"no symbols in scope: {scope.get('reason')}", error_class="empty_symbol_scope")
    return scope["symbols"]


def _empty_scope(scope: dict, **extra) -> dict:
    """The output of a step left with no symbols by the scope rule: it does nothing, and says why."""
    return {"symbols": [], "symbol_scope": scope, "by_symbol": {}, **extra,
            "note": scope.get("reason") or "no symbols in scope"}


def audit_order(ctx: StepContext, order: dict, **extra) -> dict:
    """Record an order placement (or its idempotent resolution) in the execution's audit trail."""
    event = "order_resolved" if order.get("duplicate") else "order_submitted"
    fields = ("order_id", "client_order_id", "symbol", "side", "qty", "status", "filled_avg_price", "broker")
    try:
        ctx.audit(event, **{k: order.get(k) for k in fields}, **extra)
    except Exception:  # noqa: BLE001 - auditing must never break an order path
        logger.warning("could not audit %s", event, exc_info=True)
    return order


def _mode(ctx: StepContext) -> dict:
    return {"test_mode": bool(ctx.test_mode),
            "market_data": conf.provider_name("market_data", ctx.test_mode),
            "news": conf.provider_name("news", ctx.test_mode),
            "broker": conf.provider_name("broker", ctx.test_mode)}


def _find(ctx: StepContext, symbol: str, key: str, primary: str | None = None):
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


# --- news_analysis ----------------------------------------------------------------------------
class NewsAnalysisParams(SymbolsParams):
    lookback_hours: float = Field(24.0, gt=0, le=24 * 30)
    limit: int = Field(50, ge=1, le=100, description="Articles fetched (all symbols together).")
    keywords: list[str] | None = None
    sources: list[str] | None = Field(None, description="Keep only these sources (case-insensitive).")
    max_articles_in_output: int = Field(10, ge=0, le=100)
    store: bool = Field(True, description="Persist the articles as NewsItem records.")


def news_analysis(ctx: StepContext) -> dict:
    p: NewsAnalysisParams = ctx.params
    scope = _scope(ctx, p)
    symbols = scope["symbols"]
    if not symbols:
        return _empty_scope(scope, sentiment=0.0, sentiment_label=sentiment.label(0.0), article_count=0,
                            articles=[])
    provider = get_news_provider(ctx.test_mode)
    now = provider.now() if hasattr(provider.inner, "now") else timezone.now()
    start = now - timedelta(hours=p.lookback_hours)
    articles = provider.get_news(symbols, limit=p.limit, start=start, keywords=p.keywords)
    if p.sources:
        wanted = {s.lower() for s in p.sources}
        articles = [a for a in articles if (a.get("source") or "").lower() in wanted]
    sentiment.score_articles(articles)
    by_symbol = {}
    for sym in symbols:
        mine = [a for a in articles if sym in (a.get("symbols") or []) or
                (not a.get("symbols") and sym.lower() in a["headline"].lower())]
        scores = [a["sentiment"] for a in mine]
        mean = round(sum(scores) / len(scores), 4) if scores else 0.0
        by_symbol[sym] = {
            "sentiment": mean, "sentiment_label": sentiment.label(mean), "articles": len(mine),
            "positive": sum(1 for s in scores if s >= 0.05), "negative": sum(1 for s in scores if s <= -0.05),
            "breaking": sum(1 for a in mine if a.get("breaking")),
            "top_headline": mine[0]["headline"] if mine else None,
        }
    all_scores = [a["sentiment"] for a in articles]
    overall = round(sum(all_scores) / len(all_scores), 4) if all_scores else 0.0
    if p.store and articles:
        _store_news(articles)
    return {
        "sentiment": overall,
        "sentiment_label": sentiment.label(overall),
        "article_count": len(articles),
        "articles": [
            {k: a.get(k) for k in ("headline", "source", "published_at", "sentiment", "symbols", "breaking", "url")}
            for a in articles[: p.max_articles_in_output]
        ],
        "by_symbol": by_symbol,
        "symbols": symbols,
        "symbol_scope": scope,
        "provider": provider.name,
        "lookback_hours": p.lookback_hours,
        **({"note": "no articles in the lookback window: sentiment 0"} if not articles else {}),
    }


def _store_news(articles: list[dict]) -> None:
    from datetime import datetime

    from trading_app.models import NewsItem

    rows = []
    for a in articles:
        try:
            published = datetime.fromisoformat(str(a.get("published_at")).replace("Z", "+00:00"))
        except ValueError:
            published = None
        rows.append(NewsItem(
            provider=a.get("provider") or "unknown", external_id=str(a.get("id") or a.get("url"))[:200],
            headline=a["headline"], summary=a.get("summary") or "", source=(a.get("source") or "")[:128],
            url=(a.get("url") or "")[:1000], symbols=a.get("symbols") or [], published_at=published,
            breaking=bool(a.get("breaking")), sentiment=a.get("sentiment")))
    NewsItem.objects.bulk_create(rows, ignore_conflicts=True)


# --- technical_analysis ----------------------------------------------------------------------
class TechnicalAnalysisParams(SymbolsParams):
    indicators: list[str] = Field(default_factory=lambda: ["RSI", "MACD"],
                                  description="Any of RSI, MACD, SMA, EMA, BOLLINGER, ATR, VOLUME.")
    bars: int = Field(300, ge=60, le=2000, description="Daily bars of history (>= 250 recommended).")
    timeframe: Literal["day", "minute"] = "day"

    @field_validator("indicators")
    @classmethod
    def _known(cls, v):
        indicators.normalise_indicators(v)
        return v


def technical_analysis(ctx: StepContext) -> dict:
    p: TechnicalAnalysisParams = ctx.params
    scope = _scope(ctx, p)
    symbols = scope["symbols"]
    if not symbols:
        return _empty_scope(scope, indicators=[w.upper() for w in indicators.normalise_indicators(p.indicators)])
    wanted = indicators.normalise_indicators(p.indicators)
    md = get_market_data(ctx.test_mode)
    if p.timeframe == "day":
        bars = md.daily_bars_many(symbols, limit=p.bars)
    else:
        bars = {sym: md.intraday_bars(sym, minutes=1, limit=p.bars) for sym in symbols}
    fast = indicators.batch_indicators(bars)
    extra = [w for w in wanted if w not in ("rsi", "macd", "atr")]
    by_symbol = {}
    for sym in symbols:
        b = bars[sym]
        row = {"price": fast[sym]["price"], "bars": len(b), "atr": fast[sym]["atr"]}
        if "rsi" in wanted:
            row["rsi"] = fast[sym]["rsi"]
        if "macd" in wanted:
            row.update({k: fast[sym][k] for k in ("macd", "macd_line", "macd_signal", "macd_hist", "macd_crossover")})
        if extra:
            row.update({k: v for k, v in indicators.compute(b, extra).items() if k not in ("bars", "close")})
        if len(b) < indicators.MIN_HISTORY:
            row["warning"] = f"{len(b)} bars < {indicators.MIN_HISTORY}: indicators may not have warmed up"
        by_symbol[sym] = row
    primary = by_symbol[symbols[0]]
    out = {
        "symbol": symbols[0],
        "symbols": symbols,
        "symbol_scope": scope,
        "indicators": [w.upper() for w in wanted],
        "by_symbol": by_symbol,
        "timeframe": p.timeframe,
        "price": primary["price"],
        "provider": md.name,
    }
    if "rsi" in wanted:
        out["rsi"] = primary["rsi"]
    if "macd" in wanted:
        out["macd"] = primary["macd"]
        out["macd_detail"] = {"line": primary["macd_line"], "signal": primary["macd_signal"],
                              "histogram": primary["macd_hist"], "crossover": primary["macd_crossover"]}
    for key in ("sma_20", "sma_50", "sma_200", "ema_12", "ema_26", "bollinger", "atr", "avg_volume", "volume_ratio"):
        if key in primary and key not in out:
            out[key] = primary[key]
    return out


# --- signal_generation -----------------------------------------------------------------------
class SignalParams(SymbolsParams):
    threshold: float = Field(0.7, ge=0.0, le=1.0)
    weights: dict[Literal["sentiment", "rsi", "macd"], float] | None = Field(
        None, description="Component weights (default sentiment 0.4, rsi 0.2, macd 0.4).")
    rsi_reading: Literal["standard", "momentum"] = Field(
        "standard", description="standard: overbought (RSI > 70) weighs against buying, oversold (< 30) toward "
                                "it; momentum: a high RSI counts as strength (see trading_app.signals).")


def signal_generation(ctx: StepContext) -> dict:
    """BUY / SELL / HOLD per symbol: the transparent score documented in ``trading_app.signals``
    (sentiment 0.4, RSI 0.2, MACD 0.4 by default; RSI read the standard way unless ``rsi_reading`` is
    momentum; confidence = |score|; HOLD below ``threshold``)."""
    p: SignalParams = ctx.params
    scope = _scope(ctx, p)
    symbols = scope["symbols"]
    if not symbols:
        return _empty_scope(scope, signal="HOLD", confidence=0.0, actionable=[], threshold=p.threshold)
    primary = symbols[0]
    by_symbol = {}
    for sym in symbols:
        by_symbol[sym] = score_signal(
            sentiment=_find(ctx, sym, "sentiment", primary), rsi=_find(ctx, sym, "rsi", primary),
            macd=_find(ctx, sym, "macd", primary), threshold=p.threshold,
            weights={k: v for k, v in (p.weights or {}).items()}, rsi_reading=p.rsi_reading)
    top = by_symbol[primary]
    return {
        "signal": top["signal"], "confidence": top["confidence"], "symbol": primary, "score": top["score"],
        "components": top["components"], "threshold": p.threshold, "rsi_reading": p.rsi_reading,
        "actionable": [s for s, v in by_symbol.items() if v["signal"] != "HOLD"],
        "by_symbol": by_symbol, "symbols": symbols, "symbol_scope": scope,
        **({"reason": top["reason"]} if "reason" in top else {}),
    }


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
    sig = _find(ctx, sym, "signal", primary)
    conf_ = _find(ctx, sym, "confidence", primary)
    return (sig.upper() if isinstance(sig, str) else None), conf_


def _account_of(broker):
    """The account row a broker is bound to (its kill switch and limits), if any."""
    return getattr(broker, "account_row", None)


def _account_and_positions(broker) -> tuple[dict, dict[str, dict]]:
    account = broker.get_account()
    positions = {p["symbol"]: p for p in broker.get_positions()}
    return account, positions


def execute_one(ctx: StepContext, broker, md, sym: str, side_signal: str, p: TradeParams,
                account: dict, positions: dict, bars=None) -> dict:
    """Size and submit one order for ``sym``; returns an order dict or a skipped record."""
    coid = client_order_id_for(ctx.idempotency_key, sym)
    existing = broker.get_order_by_client_id(coid)
    if existing is not None:  # this step already placed it (retry / redelivery)
        return audit_order(ctx, {**existing, "duplicate": True})
    pos = positions.get(sym)
    held = float(pos["qty"]) if pos else 0.0
    entry = float(md.latest_price(sym))
    if side_signal == "SELL" and held > 0:
        killswitch.ensure_trading_allowed(_account_of(broker))
        req = OrderRequest(symbol=sym, side="sell", qty=held, client_order_id=coid, execution_id=ctx.execution_id,
                           step_name=ctx.step_name, test_mode=ctx.test_mode)
        order = broker.submit_order(req)
        return audit_order(ctx, {**order, "intent": "close_long"})
    if side_signal == "SELL" and not p.allow_short:
        return {"status": "skipped", "symbol": sym, "side": "sell", "qty": 0,
                "reason": "SELL signal but no long position to close and shorting is disabled (allow_short=false)"}
    if side_signal == "BUY" and held < 0:
        killswitch.ensure_trading_allowed(_account_of(broker))
        req = OrderRequest(symbol=sym, side="buy", qty=abs(held), client_order_id=coid,
                           execution_id=ctx.execution_id, step_name=ctx.step_name, test_mode=ctx.test_mode)
        return audit_order(ctx, {**broker.submit_order(req), "intent": "close_short"})
    side = "buy" if side_signal == "BUY" else "sell"
    atr_value = _find(ctx, sym, "atr")  # from a technical_analysis step, when there was one
    if atr_value is None:
        bars = md.daily_bars(sym, limit=60) if bars is None else bars
        atr_value = indicators.atr(bars) if len(bars) > 1 else None
    stop = risk.stop_price_for(side, entry, atr=atr_value, atr_multiple=p.atr_multiple, stop_loss_pct=p.stop_loss_pct)
    take_profit = None
    if p.take_profit_ratio:
        dist = abs(entry - stop) * p.take_profit_ratio
        take_profit = entry + dist if side == "buy" else entry - dist
    # the operator's ceilings, tightened by the account's and the step's own limits (never loosened)
    lim = risk.limits(getattr(broker, "account_row", None), max_position_pct=p.max_position_pct,
                      max_gross_exposure=p.max_gross_exposure)
    gross = sum(abs(float(x.get("market_value") or 0)) for x in positions.values())
    sizing = risk.size_position(
        side=side, equity=float(account["equity"]), entry=entry, stop=stop,
        risk_limit=risk.effective_risk_limit(p.risk_limit),
        take_profit=take_profit, slippage_bps=float(account.get("slippage_bps", 0.0)),
        commission_per_share=float(account.get("commission_per_share", 0.0)),
        commission_min=float(account.get("commission_min", 0.0)),
        max_position_pct=lim["max_position_pct"],
        current_position_value=float(pos["market_value"]) if pos else 0.0,
        max_gross_exposure=lim["max_gross_exposure"],
        gross_exposure=gross, buying_power=float(account.get("buying_power", account["equity"])),
    )
    if sizing.qty <= 0:
        return {"status": "skipped", "symbol": sym, "side": side, "qty": 0, "reason": sizing.reason,
                "sizing": sizing.as_dict()}
    killswitch.ensure_trading_allowed(_account_of(broker))
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


def trade_execution(ctx: StepContext) -> dict:
    p: TradeParams = ctx.params
    scope = _scope(ctx, p)
    if scope["source"] == "default":  # no symbols named anywhere: trade what the signal step scored
        sig_symbols = [s for s in ((ctx.context or {}).get("by_symbol") or {}) if _find(ctx, s, "signal")]
        if sig_symbols:
            scope = {**scope, "symbols": sig_symbols, "source": "previous_step"}
    symbols = scope["symbols"]
    if not symbols:
        return _empty_scope(scope, order_id=None, status="skipped", orders=[], skipped=[], risk_limit=p.risk_limit,
                            reason=scope.get("reason"), **_mode(ctx))
    primary = symbols[0]
    decisions = []
    for sym in symbols:
        sig, confidence = (p.signal, None) if p.signal else _signal_for(ctx, sym, primary)
        decisions.append((sym, sig, confidence))
    broker = accounts.broker_for(ctx)
    md = broker.market_data if hasattr(broker, "market_data") else get_market_data(ctx.test_mode)
    results = []
    account = positions = None
    for sym, sig, confidence in decisions:
        if sig not in ("BUY", "SELL"):
            results.append({"status": "skipped", "symbol": sym, "side": None, "qty": 0, "signal": sig or None,
                            "reason": "signal is HOLD: no order" if sig == "HOLD" else
                            "no signal for this symbol in the context"})
            continue
        if account is None:
            killswitch.ensure_trading_allowed(_account_of(broker))
            account, positions = _account_and_positions(broker)
        res = execute_one(ctx, broker, md, sym, sig, p, account, positions)
        res.update({"signal": sig, "confidence": confidence})
        results.append(res)
        if res.get("status") not in ("skipped",):
            account, positions = _account_and_positions(broker)
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
        **_mode(ctx),
    }
    if first.get("status") == "skipped":
        out["reason"] = first.get("reason")
    if first.get("sizing"):
        out["sizing"] = first["sizing"]
    return out


# --- market_scan ------------------------------------------------------------------------------
class MarketScanParams(SymbolsParams):
    top_n: int = Field(5, ge=1, le=100)
    rank_by: Literal["momentum", "volume_ratio", "rsi_extreme", "change_1d"] = "momentum"
    min_price: float = Field(1.0, ge=0)
    min_avg_volume: float = Field(0.0, ge=0)
    bars: int = Field(60, ge=30, le=2000)


def market_scan(ctx: StepContext) -> dict:
    p: MarketScanParams = ctx.params
    scope = _scope(ctx, p, use_context=False, default=DEFAULT_SCAN_UNIVERSE, default_source="watchlist")
    universe = scope["symbols"]
    if not universe:
        return _empty_scope(scope, candidates=[], scanned=0, passed_filters=0, rank_by=p.rank_by)
    md = get_market_data(ctx.test_mode)
    bars = md.daily_bars_many(universe, limit=max(p.bars, 30))
    ind = indicators.rsi_macd_many({s: b["close"] for s, b in bars.items()})
    rows = []
    for sym, b in bars.items():
        close = b["close"].to_numpy()
        vol = b["volume"].to_numpy()
        avg_vol = float(vol[-21:-1].mean()) if len(vol) > 21 else float(vol.mean())
        row = {
            "symbol": sym, "price": round(float(close[-1]), 4),
            "change_1d": round(float(close[-1] / close[-2] - 1), 4) if len(close) > 1 else 0.0,
            "change_20d": round(float(close[-1] / close[-21] - 1), 4) if len(close) > 21 else 0.0,
            "rsi": ind[sym]["rsi"], "macd": ind[sym]["macd"],
            "volume_ratio": round(float(vol[-1] / avg_vol), 3) if avg_vol else None,
            "avg_volume": round(avg_vol, 1),
        }
        if row["price"] >= p.min_price and avg_vol >= p.min_avg_volume:
            rows.append(row)
    key = {"momentum": lambda r: r["change_20d"], "volume_ratio": lambda r: r["volume_ratio"] or 0,
           "rsi_extreme": lambda r: abs((r["rsi"] or 50) - 50), "change_1d": lambda r: abs(r["change_1d"])}[p.rank_by]
    rows.sort(key=key, reverse=True)
    top = rows[: p.top_n]
    return {"candidates": top, "symbols": [r["symbol"] for r in top], "scanned": len(universe),
            "passed_filters": len(rows), "rank_by": p.rank_by, "provider": md.name, "symbol_scope": scope}


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
    out = {**report, "status": "breach" if report["breaches"] else "ok", "kill_switch": ks["active"],
           "positions": positions, "cash": account.get("cash"), "broker": broker.name,
           "risk_level": "high" if report["breaches"] else "normal"}
    if p.fail_on_breach and report["breaches"]:
        raise PermanentStepError(f"risk limits breached: {report['breaches']}", error_class="risk_limit_breach")
    return out


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
    from trading_app.models import Order

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
    from django.db import transaction

    from trading_app.models import BrokerAccount

    p: HedgeParams = ctx.params
    broker = accounts.broker_for(ctx)
    md = broker.market_data if hasattr(broker, "market_data") else get_market_data(ctx.test_mode)
    acct = _account_of(broker)
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
    md = broker.market_data if hasattr(broker, "market_data") else get_market_data(ctx.test_mode)
    positions = {x["symbol"]: x for x in broker.get_positions()}
    if p.symbols:  # a list of its own: the scope rule, as for every step (the event narrows it, unless fixed)
        scope = _scope(ctx, p, use_context=False)
    else:  # a protective step opens no exposure: without a list it protects every position, whatever the
        # trigger (a VIX/SPY spike must not leave the other positions without stops)
        scope = {"symbols": list(positions), "source": "positions", "mode": "all_positions"}
    wanted = scope["symbols"]
    if not wanted:
        return _empty_scope(scope, mode=p.mode, actions=[], triggered=[], broker=broker.name, positions_checked=0)
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
            killswitch.ensure_trading_allowed(_account_of(broker))
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
    scope = _scope(ctx, p)
    symbols = scope["symbols"]
    if not symbols:  # a later step would size nothing and act on it: fail, naming why
        raise PermanentStepError(f"no symbols in scope: {scope.get('reason')}", error_class="empty_symbol_scope")
    broker = accounts.broker_for(ctx)
    md = broker.market_data if hasattr(broker, "market_data") else get_market_data(ctx.test_mode)
    account, positions = _account_and_positions(broker)
    lim = risk.limits(getattr(broker, "account_row", None))
    gross = sum(abs(float(x.get("market_value") or 0)) for x in positions.values())
    by_symbol = {}
    for sym in symbols:
        entry = float(md.latest_price(sym))
        bars = md.daily_bars(sym, limit=60)
        stop = risk.stop_price_for(p.side, entry, atr=indicators.atr(bars), atr_multiple=p.atr_multiple,
                                   stop_loss_pct=p.stop_loss_pct)
        tp = None
        if p.take_profit_ratio:
            d = abs(entry - stop) * p.take_profit_ratio
            tp = entry + d if p.side == "buy" else entry - d
        pos = positions.get(sym)
        by_symbol[sym] = risk.size_position(
            side=p.side, equity=float(account["equity"]), entry=entry, stop=stop,
            risk_limit=risk.effective_risk_limit(p.risk_limit),
            take_profit=tp, slippage_bps=float(account.get("slippage_bps", 0)),
            commission_per_share=float(account.get("commission_per_share", 0)),
            commission_min=float(account.get("commission_min", 0)), max_position_pct=lim["max_position_pct"],
            current_position_value=float(pos["market_value"]) if pos else 0.0,
            max_gross_exposure=lim["max_gross_exposure"], gross_exposure=gross,
            buying_power=float(account.get("buying_power", account["equity"]))).as_dict()
    first = by_symbol[symbols[0]]
    return {"symbol": symbols[0], "qty": first["qty"], "entry": first["entry"], "stop": first["stop"],
            "take_profit": first["take_profit"], "max_loss": first["max_loss"], "risk_limit": p.risk_limit,
            "equity": account["equity"], "by_symbol": by_symbol, "symbols": symbols, "symbol_scope": scope}


# --- declarations (trading_app.plugin collects them) ---------------------------------------------
BROKER_RETRY = RetryPolicy(max_retries=3, backoff=2.0, backoff_max=60.0, jitter=True)
DATA_RETRY = RetryPolicy(max_retries=4, backoff=1.0, backoff_max=60.0, jitter=True)

STEP_TYPES = (
    StepType(name="news_analysis", handler=news_analysis, params_model=NewsAnalysisParams, retry=DATA_RETRY,
             timeout=60, description="Fetch news for the symbols and score it with VADER + finance lexicon."),
    StepType(name="technical_analysis", handler=technical_analysis, params_model=TechnicalAnalysisParams,
             retry=DATA_RETRY, timeout=60,
             description="RSI, MACD and more per symbol (stockstats; vectorised for many symbols)."),
    StepType(name="signal_generation", handler=signal_generation, params_model=SignalParams, retry=DATA_RETRY,
             timeout=30, description="BUY/SELL/HOLD: score = weighted sentiment (0.4), RSI (0.2) and MACD (0.4) in "
                                     "[-1, 1]; RSI read the standard way (overbought > 70 weighs against buying; "
                                     "rsi_reading: momentum for the other way); BUY/SELL when |score| >= threshold."),
    StepType(name="trade_execution", handler=trade_execution, params_model=TradeParams, queue="trading",
             retry=BROKER_RETRY, timeout=120,
             description="Risk-sized bracket order for each actionable signal (idempotent client_order_id)."),
    StepType(name="market_scan", handler=market_scan, params_model=MarketScanParams, retry=DATA_RETRY, timeout=120,
             description="Rank a universe by momentum / volume / RSI; outputs `symbols` for later steps."),
    StepType(name="risk_check", handler=risk_check, params_model=RiskCheckParams, queue="trading",
             retry=BROKER_RETRY, timeout=60, description="Per-symbol, gross and net exposure against limits; breaches."),
    StepType(name="hedge", handler=hedge, params_model=HedgeParams, queue="trading", retry=BROKER_RETRY, timeout=120,
             description="Offset net long exposure (inverse ETF or reduce positions)."),
    StepType(name="stop_loss_management", handler=stop_loss_management, params_model=StopLossParams,
             queue="trading", retry=BROKER_RETRY, timeout=120,
             description="Attach, tighten or trail stop-losses on open positions."),
    StepType(name="position_sizing", handler=position_sizing, params_model=PositionSizingParams, queue="trading",
             retry=BROKER_RETRY, timeout=60,
             description="Shares to trade so that the loss to the stop stays within risk_limit x equity."),
)
