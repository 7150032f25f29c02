"""Market and news trigger types and their evaluators.

Trigger types (params accept the specification's shapes, plus ``cooldown`` seconds):

- ``price_change`` {symbol, threshold, direction up/down/any, window}: the move of the tick price
  against the reference price ``window`` ago (a few samples per window are kept per trigger).
- ``volume_spike`` {symbol, multiplier, window}: volume >= multiplier x the rolling average volume
  (the poller's 20-bar average when the event carries it, else the trigger's own last ``window``).
- ``volatility`` {symbol, vix_threshold | realised_threshold, window}: VIX level (carried by every
  tick) or realised annualised volatility of the symbol's last ``window`` tick returns.
- ``news_sentiment`` {keywords, sentiment_threshold, symbols?, direction?}: an article mentioning
  one of the keywords whose |VADER compound| >= threshold.
- ``breaking_news`` {sources, priority, symbols?, keywords?}: an article from one of the sources
  with at least that priority (breaking -> high).

The engine calls ``evaluator(params, event, state)``; it fires on the edge with the cooldown.
The events they read come from the pollers (``trading_app.pollers``).
"""
from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator, model_validator

from trading_app import sentiment
from workflows_app.registry import EventKind, TriggerType
from workflows_app.services.triggers import SharedEvaluator
from workflows_app.trigger_types import TriggerParams

MARKET_TYPES = ("price_change", "volume_spike", "volatility")
NEWS_TYPES = ("news_sentiment", "breaking_news")
PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2}
_WINDOW = re.compile(r"^(\d{1,7})([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
SESSION_SECONDS_PER_YEAR = 252 * 6.5 * 3600


def window_seconds(value) -> int:
    if isinstance(value, bool):
        raise ValueError("window must be seconds or a duration such as 5m, 1h, 1d")
    if isinstance(value, int | float):
        seconds = int(value)
    else:
        match = _WINDOW.match(str(value).strip().lower())
        if not match:
            raise ValueError("window must be seconds or a duration such as 5m, 1h, 1d")
        seconds = int(match.group(1)) * _UNIT[match.group(2)]
    if not 1 <= seconds <= 30 * 86400:
        raise ValueError("window must be between 1 second and 30 days")
    return seconds


class SymbolParams(TriggerParams):
    symbol: str = Field(min_length=1, max_length=32)

    @field_validator("symbol")
    @classmethod
    def _upper(cls, value: str) -> str:
        value = value.strip().upper()
        if not re.fullmatch(r"[A-Z0-9.\-^/]{1,32}", value):
            raise ValueError("symbol must look like AAPL or BRK.B")
        return value


class PriceChangeParams(SymbolParams):
    threshold: float = Field(gt=0, le=1, description="Relative move, 0.02 = 2%.")
    direction: Literal["up", "down", "any"] = "any"
    window: int | str = Field("1d", description="Reference is the price this long ago (seconds or 5m/1h/1d).")

    @field_validator("window")
    @classmethod
    def _window(cls, value) -> int:
        return window_seconds(value)


class VolumeSpikeParams(SymbolParams):
    multiplier: float = Field(2.0, gt=1, le=1000)
    window: int = Field(20, ge=2, le=500, description="Observations in the rolling average.")


class VolatilityParams(SymbolParams):
    vix_threshold: float | None = Field(None, gt=0, le=200)
    realised_threshold: float | None = Field(None, gt=0, le=20, description="Annualised, 0.4 = 40%.")
    window: int = Field(20, ge=2, le=500, description="Returns in the realised-volatility estimate.")

    @model_validator(mode="after")
    def _one_threshold(self):
        if self.vix_threshold is None and self.realised_threshold is None:
            raise ValueError("give vix_threshold or realised_threshold")
        return self


class NewsSentimentParams(TriggerParams):
    keywords: list[str] = Field(min_length=1, max_length=50)
    sentiment_threshold: float = Field(0.5, ge=0, le=1)
    direction: Literal["positive", "negative", "any"] = "any"
    symbols: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        cleaned = [k.strip() for k in value if isinstance(k, str) and k.strip()]
        if not cleaned or any(len(k) > 100 for k in cleaned):
            raise ValueError("keywords must be non-empty words (at most 100 characters)")
        return cleaned

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        return [s.strip().upper() for s in value]


class BreakingNewsParams(TriggerParams):
    sources: list[str] = Field(default_factory=list, max_length=50, description="Empty: any source.")
    priority: Literal["high", "normal", "low"] = "high"
    symbols: list[str] = Field(default_factory=list, max_length=100)
    keywords: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        return [s.strip().upper() for s in value]


# --- helpers ------------------------------------------------------------------------------------
def event_time(event: dict) -> float:
    ts = event.get("ts")
    if isinstance(ts, int | float):
        return float(ts)
    raw = event.get("timestamp")
    try:
        value = datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        value = datetime.now(UTC).timestamp()
    event["ts"] = value
    return value


def _number(event: dict, key: str) -> float | None:
    value = event.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@lru_cache(maxsize=1024)
def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern:
    return re.compile(r"(?<![A-Za-z0-9])(" + "|".join(re.escape(k) for k in keywords) + r")(?![A-Za-z0-9])",
                      re.IGNORECASE)


def article_text(event: dict) -> str:
    return f"{event.get('headline') or ''} {event.get('summary') or ''}".strip()


def article_sentiment(event: dict) -> float:
    value = _number(event, "sentiment")
    if value is None:
        value = sentiment.score(article_text(event))
        event["sentiment"] = value
    return value


def article_priority(event: dict) -> str:
    if event.get("priority") in PRIORITY_RANK:
        return event["priority"]
    if event.get("breaking"):
        return "high"
    return "normal" if abs(article_sentiment(event)) >= 0.5 else "low"


def _symbols_match(wanted: list[str], event: dict) -> bool:
    if not wanted:
        return True
    have = {str(s).upper() for s in (event.get("symbols") or ([event["symbol"]] if event.get("symbol") else []))}
    return bool(have & set(wanted))


# --- evaluators ---------------------------------------------------------------------------------
# The market evaluators share their costly part per symbol and window (SharedEvaluator): the
# reference price, average volume or realised volatility is computed once per tick for all the
# triggers on that symbol with that window; each trigger then only compares its own threshold.
def _price_features(params: PriceChangeParams, event: dict, shared: dict) -> tuple | None:
    price = _number(event, "price")
    if price is None or price <= 0:
        return None
    now = event_time(event)
    window = int(params.window)
    samples = shared.setdefault("p", [])
    cutoff = now - window
    # keep the newest sample at or before the cutoff (the price `window` ago) and the later ones
    while len(samples) > 1 and samples[1][0] <= cutoff:
        samples.pop(0)
    if not samples or now - samples[-1][0] >= window / 10:
        samples.append([round(now, 3), price])
    reference = samples[0][1]
    # Rounded so that a move of exactly 2 % (102 / 100 - 1 = 0.019999999999999574) meets a 0.02 threshold.
    return price, reference, round(price / reference - 1.0, 9), window


def _price_decide(params: PriceChangeParams, f: tuple) -> bool:
    change = f[2]
    if params.direction == "up":
        return change >= params.threshold
    if params.direction == "down":
        return change <= -params.threshold
    return abs(change) >= params.threshold


def _price_detail(params: PriceChangeParams, f: tuple) -> dict:
    price, reference, change, window = f
    return {"price": price, "reference_price": reference, "change": round(change, 6),
            "threshold": params.threshold, "direction": "up" if change >= 0 else "down", "window": window,
            "severity": min(1.0, 0.5 * abs(change) / params.threshold)}


def _volume_features(params: VolumeSpikeParams, event: dict, shared: dict) -> tuple | None:
    volume = _number(event, "volume")
    if volume is None:
        return None
    history = shared.setdefault("v", [])
    average = _number(event, "avg_volume")
    if average is None and len(history) >= min(5, params.window):
        average = sum(history) / len(history)
    history.append(volume)
    del history[:-params.window]
    if not average:
        return None
    return volume, average, volume / average


def _volume_detail(params: VolumeSpikeParams, f: tuple) -> dict:
    volume, average, ratio = f
    return {"volume": volume, "average_volume": round(average, 2), "ratio": round(ratio, 4),
            "multiplier": params.multiplier, "severity": min(1.0, 0.5 * ratio / params.multiplier)}


def _volatility_features(params: VolatilityParams, event: dict, shared: dict) -> tuple:
    vix = _number(event, "vix")
    realised = _number(event, "realised_vol")
    price = _number(event, "price")
    if realised is None and price:
        now = event_time(event)
        last = shared.get("l")
        returns = shared.setdefault("r", [])
        if last and now > last[0] and last[1] > 0:
            returns.append([round(now - last[0], 3), math.log(price / last[1])])
            del returns[:-params.window]
        shared["l"] = [round(now, 3), price]
        if len(returns) >= min(5, params.window):
            seconds = sum(r[0] for r in returns)
            variance = sum(r[1] * r[1] for r in returns) / seconds if seconds else 0.0
            realised = math.sqrt(variance * SESSION_SECONDS_PER_YEAR)
    return vix, realised


def _volatility_decide(params: VolatilityParams, f: tuple) -> bool:
    vix, realised = f
    return (params.vix_threshold is not None and vix is not None and vix >= params.vix_threshold) or (
        params.realised_threshold is not None and realised is not None and realised >= params.realised_threshold)


def _volatility_detail(params: VolatilityParams, f: tuple) -> dict:
    vix, realised = f
    detail: dict = {"severity": 0.0}
    if vix is not None and params.vix_threshold is not None:
        detail.update(vix=vix, vix_threshold=params.vix_threshold, severity=min(1.0, 0.5 * vix / params.vix_threshold))
    if realised is not None and params.realised_threshold is not None:
        detail.update(realised_vol=round(realised, 6), realised_threshold=params.realised_threshold)
        detail["severity"] = max(detail["severity"], min(1.0, 0.5 * realised / params.realised_threshold))
    return detail


def _price_measure(direction: str, f: tuple) -> float:
    change = f[2]
    return change if direction == "up" else -change if direction == "down" else abs(change)


def _volatility_threshold(p: VolatilityParams):
    if p.realised_threshold is None:
        return "vix", p.vix_threshold
    if p.vix_threshold is None:
        return "realised", p.realised_threshold
    return None  # either one: decided per trigger


def _volatility_measure(kind: str, f: tuple) -> float:
    value = f[0] if kind == "vix" else f[1]
    return float("-inf") if value is None else value


price_change = SharedEvaluator(lambda p: str(int(p.window)), _price_features, _price_decide, _price_detail,
                               threshold=lambda p: (p.direction, p.threshold), measure=_price_measure)
volume_spike = SharedEvaluator(lambda p: str(p.window), _volume_features, lambda p, f: f[2] >= p.multiplier,
                               _volume_detail, threshold=lambda p: ("", p.multiplier), measure=lambda g, f: f[2])
volatility = SharedEvaluator(lambda p: str(p.window), _volatility_features, _volatility_decide, _volatility_detail,
                             threshold=_volatility_threshold, measure=_volatility_measure)


def news_sentiment(params: NewsSentimentParams, event: dict, state: dict) -> tuple[bool, dict]:
    if not _symbols_match(params.symbols, event):
        return False, {}
    found = _keyword_pattern(tuple(params.keywords)).findall(article_text(event))
    if not found:
        return False, {}
    score = article_sentiment(event)
    if params.direction == "positive" and score < 0 or params.direction == "negative" and score > 0:
        return False, {}
    holds = abs(score) >= params.sentiment_threshold
    return holds, {"keywords": sorted({f.lower() for f in found}), "sentiment": round(score, 4),
                   "sentiment_threshold": params.sentiment_threshold, "severity": abs(score)}


def breaking_news(params: BreakingNewsParams, event: dict, state: dict) -> tuple[bool, dict]:
    source = str(event.get("source") or "")
    if params.sources and source.lower() not in {s.lower() for s in params.sources}:
        return False, {}
    if not _symbols_match(params.symbols, event):
        return False, {}
    if params.keywords and not _keyword_pattern(tuple(params.keywords)).search(article_text(event)):
        return False, {}
    priority = article_priority(event)
    holds = PRIORITY_RANK[priority] >= PRIORITY_RANK[params.priority]
    return holds, {"source": source, "priority": priority, "breaking": bool(event.get("breaking")),
                   "severity": {"high": 0.9, "normal": 0.5, "low": 0.2}[priority]}


TRIGGER_TYPES = (
    TriggerType(name="price_change", params_model=PriceChangeParams, event_kinds=("tick",), evaluator=price_change,
                description="A relative price move over a window."),
    TriggerType(name="volume_spike", params_model=VolumeSpikeParams, event_kinds=("tick",), evaluator=volume_spike,
                description="Volume above a multiple of its average."),
    TriggerType(name="volatility", params_model=VolatilityParams, event_kinds=("tick",), evaluator=volatility,
                description="VIX level or realised volatility above a threshold."),
    TriggerType(name="news_sentiment", params_model=NewsSentimentParams, event_kinds=("news",),
                evaluator=news_sentiment, description="An article with the keywords and strong sentiment."),
    TriggerType(name="breaking_news", params_model=BreakingNewsParams, event_kinds=("news",), evaluator=breaking_news,
                description="Breaking news from the given sources."),
)
EVENT_KINDS = (
    EventKind("news", discrete=True, description="An article: every match fires (cooldown permitting)."),
    EventKind("tick", discrete=False, description="A market reading: a trigger fires when its condition starts "
                                                  "to hold."),
)
