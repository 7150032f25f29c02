"""The beat-driven pollers that feed the market and news triggers (``trading_app.triggers``).

``nexus.events.poll_market`` / ``poll_news`` run on beat, only when such triggers exist, and put
their events on the ``events`` queue (deduplicated by bar / article id): a ``tick`` per watched
symbol from its latest minute bars, a ``news`` event per article. The news poller fetches the
union of the symbols the active news triggers name, plus the watchlist (``NEXUS_NEWS_WATCHLIST``)
when any of them names none.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from celery import shared_task

from trading_app import conf, sentiment
from trading_app.providers import get_market_data, get_news_provider
from trading_app.triggers import MARKET_TYPES, NEWS_TYPES, article_priority, article_sentiment
from workflows_app.circuit import redis_client
from workflows_app.models import Trigger, Workflow
from workflows_app.registry import BeatJob
from workflows_app.services import events


def active_triggers(types):
    """The enabled triggers of these types on active workflows."""
    return Trigger.objects.filter(type__in=types, enabled=True, workflow__status=Workflow.Status.ACTIVE)


def market_event(symbol: str, bars, vix: float | None = None) -> dict | None:
    """A tick event from a symbol's latest minute bars (last bar + 20-bar averages)."""
    if bars is None or len(bars) == 0:
        return None
    last = bars.iloc[-1]
    stamp = bars.index[-1]
    previous = bars["volume"].iloc[:-1]
    closes = [float(c) for c in bars["close"]]
    returns = [math.log(b / a) for a, b in zip(closes, closes[1:], strict=False) if a > 0 and b > 0]
    payload = {"symbol": symbol, "price": round(float(last["close"]), 4), "volume": float(last["volume"]),
               "timestamp": stamp.isoformat(), "ts": stamp.timestamp()}
    if len(previous):
        payload["avg_volume"] = round(float(previous.mean()), 2)
    if len(returns) >= 5:
        variance = sum(r * r for r in returns) / len(returns)
        payload["realised_vol"] = round(math.sqrt(variance * 252 * 390), 6)
    if vix is not None:
        payload["vix"] = vix
    return events.make_event("tick", payload, source="market_data", event_id=f"{symbol}:{stamp.isoformat()}")


def tick_event(tick: dict, **extra) -> dict:
    """An event from a provider tick {symbol, timestamp, price, size}."""
    stamp = datetime.fromisoformat(str(tick["timestamp"]).replace("Z", "+00:00"))
    payload = {"symbol": tick["symbol"], "price": float(tick["price"]), "volume": float(tick.get("size") or 0),
               "timestamp": stamp.isoformat(), "ts": stamp.timestamp(), **extra}
    return events.make_event("tick", payload, source="market_data", event_id=f"{tick['symbol']}:{stamp.isoformat()}")


def poll_market_data(market_data=None) -> dict:
    symbols = sorted(set(active_triggers(MARKET_TYPES).exclude(symbol="").values_list("symbol", flat=True)))
    if not symbols:
        return {"symbols": 0, "events": 0}
    provider = market_data or get_market_data()
    vix = None
    try:
        vix = float(provider.vix())
    except Exception:  # noqa: BLE001 - not every provider has a VIX
        vix = None
    batch, errors = [], {}
    for symbol in symbols:
        try:
            event = market_event(symbol, provider.intraday_bars(symbol, minutes=1, limit=21), vix)
        except Exception as exc:  # noqa: BLE001 - one bad symbol must not stop the others
            errors[symbol] = str(exc)[:200]
            continue
        if event:
            batch.append(event)
    replies = events.ingest_many(batch) if batch else []
    return {"symbols": len(symbols), "events": len(batch), "new": sum(1 for r in replies if not r["deduplicated"]),
            "errors": errors}


NEWS_CURSOR_KEY = "nexus:poll:news:cursor"


def news_event(article: dict) -> dict:
    payload = {k: article.get(k) for k in ("headline", "summary", "source", "symbols", "breaking", "url",
                                           "provider")}
    payload["symbols"] = [str(s).upper() for s in (article.get("symbols") or [])]
    payload["timestamp"] = article.get("published_at")
    payload["sentiment"] = article.get("sentiment") if article.get("sentiment") is not None else article_sentiment(
        {"headline": article.get("headline"), "summary": article.get("summary")})
    payload["priority"] = article_priority(payload)
    payload["severity"] = round(abs(payload["sentiment"]), 4)
    return events.make_event("news", payload, source=str(article.get("source") or article.get("provider") or "news"),
                      event_id=f"news:{article.get('id') or article.get('url')}")


def news_watchlist() -> list[str]:
    value = conf.get("NEXUS_NEWS_WATCHLIST")
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return [str(s).strip().upper() for s in items if str(s).strip()]


def news_symbols(rows: list[dict]) -> list[str]:
    """The symbols polled for the active news triggers' params: every symbol a trigger names, plus the
    watchlist as soon as one trigger names none (a filtered trigger must not blind an unfiltered one)."""
    symbols = {str(s).upper() for p in rows for s in (p or {}).get("symbols", [])}
    if any(not (p or {}).get("symbols") for p in rows):
        symbols.update(news_watchlist())
    return sorted(symbols)


def poll_news(news=None, now: datetime | None = None) -> dict:
    rows = list(active_triggers(NEWS_TYPES).values_list("params", flat=True))
    if not rows:
        return {"articles": 0, "events": 0}
    symbols = news_symbols(rows)
    now = now or datetime.now(UTC)
    client = redis_client()
    cursor = client.get(NEWS_CURSOR_KEY)
    start = datetime.fromisoformat(cursor) if cursor else now - timedelta(hours=1)
    provider = news or get_news_provider()
    articles = provider.get_news(symbols, limit=200, start=start - timedelta(minutes=5), end=now)
    sentiment.score_articles(articles)
    batch = [news_event(a) for a in articles]
    replies = events.ingest_many(batch) if batch else []
    client.set(NEWS_CURSOR_KEY, now.isoformat())
    return {"articles": len(articles), "events": len(batch), "symbols": symbols,
            "new": sum(1 for r in replies if not r["deduplicated"])}


@shared_task(name="nexus.events.poll_market", max_retries=0, acks_late=True, time_limit=120, soft_time_limit=100)
def poll_market_task():
    return poll_market_data()


@shared_task(name="nexus.events.poll_news", max_retries=0, acks_late=True, time_limit=120, soft_time_limit=100)
def poll_news_task():
    return poll_news()


BEAT_JOBS = (
    BeatJob("nexus-poll-market", "nexus.events.poll_market", every=lambda: conf.get("NEXUS_MARKET_POLL_SECONDS")),
    BeatJob("nexus-poll-news", "nexus.events.poll_news", every=lambda: conf.get("NEXUS_NEWS_POLL_SECONDS")),
)
