"""Market and news triggers on crafted simulated feeds: each fires on the edge, once, not per tick."""
from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.waiting import wait_for
from trading_app import pollers as market
from trading_app.providers.simulated import (
    SimulatedMarketData,
    SimulatedNews,
    inject_headline,
    inject_jump,
    inject_volume_spike,
    set_volatility_regime,
)
from workflows_app import operations, queues
from workflows_app.errors import OperationError
from workflows_app.models import Execution
from workflows_app.services import events
from workflows_app.services import triggers as engine

pytestmark = pytest.mark.django_db(transaction=True)
START = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # a Friday, 10:00 in New York


@pytest.fixture(autouse=True)
def _clean(redis_test_client):
    queues.ensure_default_queues()
    engine.reset_state()
    redis_test_client.delete(market.NEWS_CURSOR_KEY)
    yield


def _workflow(*triggers, steps=None) -> str:
    return operations.workflow_create(name=f"mkt-{uuid.uuid4().hex[:8]}", triggers=list(triggers),
                                      steps=steps or [{"name": "s", "type": "test_noop"}])["workflow_id"]


def _fired(firings, workflow_id) -> list[dict]:
    return [f["event"] for f in firings if f["event"]["trigger"]["workflow_id"] == workflow_id]


def test_the_specifications_trigger_shapes_are_accepted():
    reply = operations.workflow_create(name="event-driven-trader", steps=[
        {"name": "event_classifier", "type": "classify", "params": {"categories": ["urgent", "normal", "ignore"]}}],
        triggers=[
            {"type": "price_change", "symbol": "AAPL", "threshold": 0.02, "direction": "any"},
            {"type": "volume_spike", "symbol": "AAPL", "multiplier": 2.0},
            {"type": "volatility", "symbol": "AAPL", "vix_threshold": 30},
            {"type": "news_sentiment", "keywords": ["earnings", "FDA", "acquisition"], "sentiment_threshold": 0.7},
            {"type": "breaking_news", "sources": ["Reuters", "Bloomberg"], "priority": "high"},
            {"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York"},
            {"type": "schedule", "cron": "30 15 * * 1-5", "timezone": "America/New_York"},
        ])
    assert reply["success"] and reply["triggers"] == 7
    for bad, field in (({"type": "price_change", "symbol": "AAPL", "threshold": 0.02, "direction": "sideways"},
                        "direction"),
                       ({"type": "volatility", "symbol": "AAPL"}, "triggers[0]"),
                       ({"type": "price_change", "symbol": "AAPL", "threshold": 0.02, "window": "forever"}, "window"),
                       ({"type": "news_sentiment", "keywords": []}, "keywords")):
        with pytest.raises(OperationError) as err:
            _workflow(bad)
        assert field in str(err.value.details), err.value.details


def test_a_two_percent_move_fires_price_change_once_not_on_every_later_tick():
    any_move = _workflow({"type": "price_change", "symbol": "AAPL", "threshold": 0.02, "direction": "any",
                          "window": "1h", "cooldown": 0})
    down_only = _workflow({"type": "price_change", "symbol": "AAPL", "threshold": 0.02, "direction": "down",
                           "cooldown": 0})
    other_symbol = _workflow({"type": "price_change", "symbol": "MSFT", "threshold": 0.001, "cooldown": 0})
    inject_jump("AAPL", 0.03, at=START + timedelta(seconds=300))
    ticks = SimulatedMarketData().ticks("AAPL", count=600, start=START, interval=1.0)
    firings = engine.evaluate([market.tick_event(t) for t in ticks], fire_triggers=False)
    fired = _fired(firings, any_move)
    assert len(fired) == 1  # 300 ticks above the threshold after the jump, one firing
    assert fired[0]["ts"] >= (START + timedelta(seconds=300)).timestamp()
    assert fired[0]["detail"]["change"] >= 0.02 and fired[0]["detail"]["direction"] == "up"
    assert fired[0]["priority"] in ("normal", "high") and 0 < fired[0]["severity"] <= 1
    assert _fired(firings, down_only) == [] and _fired(firings, other_symbol) == []


def test_price_change_end_to_end_through_the_events_queue_and_a_worker(celery_worker):
    workflow_id = _workflow({"type": "price_change", "symbol": "AAPL", "threshold": 0.02, "cooldown": 0},
                            steps=[{"name": "event_classifier", "type": "classify",
                                    "params": {"categories": ["urgent", "normal", "ignore"]}}])
    inject_jump("AAPL", -0.05, at=START + timedelta(seconds=60))
    ticks = SimulatedMarketData().ticks("AAPL", count=150, start=START, interval=1.0)
    replies = events.ingest_many([market.tick_event(t) for t in ticks])
    assert not any(r["deduplicated"] for r in replies)
    # the same feed delivered again is deduplicated by the queue
    assert all(r["deduplicated"] for r in events.ingest_many([market.tick_event(t) for t in ticks]))
    execution = wait_for(lambda: Execution.objects.filter(workflow_id=workflow_id, status="succeeded").first())
    wait_for(lambda: queues.status("events")["total_messages"] == 0, message="the events queue drained")
    time.sleep(0.3)
    assert Execution.objects.filter(workflow_id=workflow_id).count() == 1
    event = execution.input_data["event"]
    assert event["symbol"] == "AAPL" and event["detail"]["direction"] == "down"
    assert execution.context["event_classifier"]["category"] in ("urgent", "normal")
    assert execution.input_data["symbols"] == ["AAPL"]


def _bar_events(symbol: str, bars) -> list[dict]:
    return [market.market_event(symbol, bars.iloc[max(0, i - 20):i + 1]) for i in range(1, len(bars))]


def test_volume_spike_fires_on_a_spiking_bar_feed():
    spike = _workflow({"type": "volume_spike", "symbol": "AAPL", "multiplier": 3.0, "cooldown": 600})
    at = START + timedelta(minutes=120)
    inject_volume_spike("AAPL", 6.0, at=at, duration=180)
    end = START.replace(hour=21)
    bars = SimulatedMarketData().intraday_bars("AAPL", minutes=1, limit=390, end=end)
    firings = engine.evaluate(_bar_events("AAPL", bars), fire_triggers=False)
    fired = _fired(firings, spike)
    assert len(fired) == 1, [f["detail"] for f in fired]
    assert abs(fired[0]["ts"] - at.timestamp()) <= 180
    assert fired[0]["detail"]["ratio"] >= 3.0


def test_volatility_fires_on_vix_level_and_on_realised_volatility():
    by_vix = _workflow({"type": "volatility", "symbol": "AAPL", "vix_threshold": 30, "cooldown": 0})
    feed = [market.tick_event({"symbol": "AAPL", "price": 200.0, "size": 100,
                               "timestamp": (START + timedelta(minutes=i)).isoformat()}, vix=vix)
            for i, vix in enumerate([18, 22, 31, 33, 29, 35, 36])]
    fired = _fired(engine.evaluate(feed, fire_triggers=False), by_vix)
    assert [f["vix"] for f in fired] == [31, 35]  # each time it rises above 30, not on every tick

    realised = _workflow({"type": "volatility", "symbol": "MSFT", "realised_threshold": 1.0, "window": 20})
    storm = START + timedelta(seconds=300)
    set_volatility_regime("MSFT", 12.0, start=storm)
    ticks = SimulatedMarketData().ticks("MSFT", count=600, start=START, interval=1.0)
    fired = _fired(engine.evaluate([market.tick_event(t) for t in ticks], fire_triggers=False), realised)
    assert len(fired) == 1 and fired[0]["ts"] > storm.timestamp()
    assert fired[0]["detail"]["realised_vol"] >= 1.0


def test_news_sentiment_and_breaking_news_fire_on_a_crafted_news_feed(celery_worker):
    now = datetime.now(UTC)
    sentiment = _workflow({"type": "news_sentiment", "keywords": ["Zorblax"], "sentiment_threshold": 0.5,
                           "cooldown": 0})
    negative_only = _workflow({"type": "news_sentiment", "keywords": ["Zorblax"], "sentiment_threshold": 0.5,
                               "direction": "negative", "cooldown": 0})
    breaking = _workflow({"type": "breaking_news", "sources": ["Nexus Wire"], "priority": "high", "cooldown": 0})
    inject_headline("Apple agrees to Zorblax acquisition in bullish breakthrough, shares soar", symbols=["AAPL"],
                    source="CNBC", at=now - timedelta(minutes=2))
    inject_headline("Zorblax to hold annual meeting", symbols=["AAPL"], source="CNBC", at=now - timedelta(minutes=2))
    inject_headline("Microsoft halts trading after fraud probe", symbols=["MSFT"], source="Nexus Wire",
                    breaking=True, at=now - timedelta(minutes=1))
    inject_headline("Microsoft schedules meeting", symbols=["MSFT"], source="Nexus Wire", at=now - timedelta(minutes=1))
    inject_headline("Markets halted", symbols=["MSFT"], source="Reuters-ish", breaking=True,
                    at=now - timedelta(minutes=1))
    result = market.poll_news(news=SimulatedNews(), now=now)
    assert result["events"] >= 5
    first = wait_for(lambda: Execution.objects.filter(workflow_id=sentiment).first())
    wait_for(lambda: Execution.objects.filter(workflow_id=breaking).exists())
    wait_for(lambda: queues.status("events")["total_messages"] == 0, message="the events queue drained")
    time.sleep(0.3)
    assert Execution.objects.filter(workflow_id=sentiment).count() == 1
    assert "Zorblax acquisition" in first.input_data["event"]["headline"]
    assert first.input_data["event"]["detail"]["sentiment"] >= 0.5
    assert not Execution.objects.filter(workflow_id=negative_only).exists()
    news = Execution.objects.get(workflow_id=breaking).input_data["event"]
    assert news["source"] == "Nexus Wire" and news["priority"] == "high" and news["breaking"] is True
    # polling again sees the same articles: deduplicated, nothing new fires
    assert market.poll_news(news=SimulatedNews(), now=now)["new"] == 0


def test_the_market_poller_feeds_ticks_for_the_triggers_symbols(celery_worker):
    _workflow({"type": "price_change", "symbol": "AAPL", "threshold": 0.5})
    first = market.poll_market_data(SimulatedMarketData())
    assert first["symbols"] == 1 and first["events"] == 1
    assert market.poll_market_data(SimulatedMarketData())["new"] == 0  # same bar: deduplicated


def test_a_move_of_exactly_two_percent_meets_a_two_percent_threshold():
    exact = _workflow({"type": "price_change", "symbol": "AAPL", "threshold": 0.02, "window": "1h", "cooldown": 0})
    ticks = [{"symbol": "AAPL", "timestamp": (START + timedelta(seconds=s)).isoformat(), "price": price, "size": 100}
             for s, price in ((0, 100.0), (60, 101.0), (120, 102.0))]  # 102 / 100 - 1 is not exactly 0.02
    firings = engine.evaluate([market.tick_event(t) for t in ticks], fire_triggers=False)
    fired = _fired(firings, exact)
    assert len(fired) == 1 and fired[0]["detail"]["change"] == 0.02
