"""News polling covers every active news trigger: one symbol-filtered trigger must not blind the others."""
from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.waiting import wait_for
from trading_app import pollers as market
from trading_app.providers.simulated import SimulatedNews, inject_headline
from workflows_app import operations, queues
from workflows_app.models import Execution
from workflows_app.services import triggers as engine

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _clean(redis_test_client):
    queues.ensure_default_queues()
    engine.reset_state()
    redis_test_client.delete(market.NEWS_CURSOR_KEY)
    yield


def _workflow(trigger: dict) -> str:
    return operations.workflow_create(name=f"news-{uuid.uuid4().hex[:8]}", triggers=[trigger],
                                      steps=[{"name": "s", "type": "test_noop"}])["workflow_id"]


def test_the_polled_symbols_are_the_named_ones_plus_the_watchlist_when_a_trigger_names_none(settings):
    settings.NEXUS_NEWS_WATCHLIST = "AAPL,msft"  # as the environment hands it on
    assert market.news_watchlist() == ["AAPL", "MSFT"]
    settings.NEXUS_NEWS_WATCHLIST = ["AAPL", "MSFT"]  # or a list in settings
    assert market.news_symbols([{"symbols": ["TSLA"]}]) == ["TSLA"]
    assert market.news_symbols([{"symbols": ["TSLA"]}, {"keywords": ["x"]}]) == ["AAPL", "MSFT", "TSLA"]
    assert market.news_symbols([{}, {"symbols": []}]) == ["AAPL", "MSFT"]


def test_a_filtered_news_trigger_does_not_blind_an_unfiltered_one(celery_worker, settings):
    settings.NEXUS_NEWS_WATCHLIST = "AAPL,MSFT"
    now = datetime.now(UTC)
    filtered = _workflow({"type": "news_sentiment", "keywords": ["Quuxcorp"], "sentiment_threshold": 0.3,
                          "symbols": ["TSLA"], "cooldown": 0})
    unfiltered = _workflow({"type": "news_sentiment", "keywords": ["Zorblax"], "sentiment_threshold": 0.3,
                            "cooldown": 0})
    inject_headline("Apple agrees to Zorblax acquisition in bullish breakthrough, shares soar", symbols=["AAPL"],
                    source="Reuters", at=now - timedelta(minutes=2))
    inject_headline("Tesla wins Quuxcorp deal, record profit, shares soar", symbols=["TSLA"], source="Reuters",
                    at=now - timedelta(minutes=2))
    result = market.poll_news(news=SimulatedNews(), now=now)
    # both fire: the unfiltered trigger sees the AAPL article although the other trigger names only TSLA
    first = wait_for(lambda: Execution.objects.filter(workflow_id=unfiltered).first(), timeout=90,
                     message="the unfiltered news trigger fired")
    assert "Zorblax" in first.input_data["event"]["headline"]
    tesla = wait_for(lambda: Execution.objects.filter(workflow_id=filtered).first(), timeout=90,
                     message="the filtered news trigger fired")
    assert tesla.input_data["event"]["symbols"] == ["TSLA"]
    wait_for(lambda: queues.status("events")["total_messages"] == 0, timeout=90, message="the events queue drained")
    time.sleep(0.3)
    assert Execution.objects.filter(workflow_id=unfiltered).count() == 1
    assert Execution.objects.filter(workflow_id=filtered).count() == 1
    assert result["symbols"] == ["AAPL", "MSFT", "TSLA"]
