"""Analysis steps: news_analysis, technical_analysis, signal_generation and market_scan.

They read market data and news (the configured providers; simulated in test mode) and write no
orders. Each works on the step's symbol scope (``common.step_scope``) and reports it.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from django.utils import timezone
from pydantic import Field, field_validator

from trading_app import indicators, sentiment
from trading_app.models import NewsItem
from trading_app.providers import binding, get_market_data, get_news_provider
from trading_app.signals import score_signal
from trading_app.steps.common import SymbolsParams, data_step, empty_scope, find_in_context, step_scope
from workflows_app.registry import StepContext

DEFAULT_SCAN_UNIVERSE = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "XOM",
                         "JNJ", "WMT", "PG", "MA", "HD", "KO", "PEP", "BAC", "DIS", "NFLX"]


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
    scope = step_scope(ctx, p)
    symbols = scope["symbols"]
    if not symbols:
        return empty_scope(scope, sentiment=0.0, sentiment_label=sentiment.label(0.0), article_count=0,
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
    if p.store and articles and binding.current() is None:  # a backtest's replayed news stays out of the live table
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
    scope = step_scope(ctx, p)
    symbols = scope["symbols"]
    if not symbols:
        return empty_scope(scope, indicators=[w.upper() for w in indicators.normalise_indicators(p.indicators)])
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
    scope = step_scope(ctx, p)
    symbols = scope["symbols"]
    if not symbols:
        return empty_scope(scope, signal="HOLD", confidence=0.0, actionable=[], threshold=p.threshold)
    primary = symbols[0]
    by_symbol = {}
    for sym in symbols:
        by_symbol[sym] = score_signal(
            sentiment=find_in_context(ctx, sym, "sentiment", primary), rsi=find_in_context(ctx, sym, "rsi", primary),
            macd=find_in_context(ctx, sym, "macd", primary), threshold=p.threshold,
            weights={k: v for k, v in (p.weights or {}).items()}, rsi_reading=p.rsi_reading)
    top = by_symbol[primary]
    return {
        "signal": top["signal"], "confidence": top["confidence"], "symbol": primary, "score": top["score"],
        "components": top["components"], "threshold": p.threshold, "rsi_reading": p.rsi_reading,
        "actionable": [s for s, v in by_symbol.items() if v["signal"] != "HOLD"],
        "by_symbol": by_symbol, "symbols": symbols, "symbol_scope": scope,
        **({"reason": top["reason"]} if "reason" in top else {}),
    }


# --- market_scan ------------------------------------------------------------------------------
class MarketScanParams(SymbolsParams):
    top_n: int = Field(5, ge=1, le=100)
    rank_by: Literal["momentum", "volume_ratio", "rsi_extreme", "change_1d"] = "momentum"
    min_price: float = Field(1.0, ge=0)
    min_avg_volume: float = Field(0.0, ge=0)
    bars: int = Field(60, ge=30, le=2000)


def market_scan(ctx: StepContext) -> dict:
    p: MarketScanParams = ctx.params
    scope = step_scope(ctx, p, use_context=False, default=DEFAULT_SCAN_UNIVERSE, default_source="watchlist")
    universe = scope["symbols"]
    if not universe:
        return empty_scope(scope, candidates=[], scanned=0, passed_filters=0, rank_by=p.rank_by)
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


# --- declarations (trading_app.plugin collects them) ---------------------------------------------
STEP_TYPES = (
    data_step("news_analysis", news_analysis, NewsAnalysisParams, 60,
              description="Fetch news for the symbols and score it with VADER + finance lexicon."),
    data_step("technical_analysis", technical_analysis, TechnicalAnalysisParams, 60,
              description="RSI, MACD and more per symbol (stockstats; vectorised for many symbols)."),
    data_step("signal_generation", signal_generation, SignalParams, 30,
              description="BUY/SELL/HOLD: score = weighted sentiment (0.4), RSI (0.2) and MACD (0.4) in [-1, 1]; "
                          "RSI read the standard way (overbought > 70 weighs against buying; rsi_reading: momentum "
                          "for the other way); BUY/SELL when |score| >= threshold."),
    data_step("market_scan", market_scan, MarketScanParams, 120,
              description="Rank a universe by momentum / volume / RSI; outputs `symbols` for later steps."),
)
