"""Alpaca and NewsAPI adapters against recorded responses (requests-mock / responses): nothing leaves the box."""
import json
import re

import pytest
import requests
import responses
from newsapi.newsapi_exception import NewsAPIException

from trading_app import conf, errors
from trading_app.brokers import BrokerRejected, OrderRequest
from trading_app.models import Order
from trading_app.providers.alpaca_adapter import AlpacaMarketData, AlpacaNews
from trading_app.providers.alpaca_broker import AlpacaBroker
from trading_app.providers.newsapi_adapter import NewsApiNews
from workflows_app.errors import PermanentStepError, TransientStepError
from workflows_app.registry import registry

PAPER = "https://paper-api.alpaca.markets/v2"
DATA = "https://data.alpaca.markets"
ORDER = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d", "client_order_id": "nexus-e1-s-AAPL", "symbol": "AAPL",
    "side": "buy", "order_type": "market", "type": "market", "order_class": "bracket", "qty": "10",
    "filled_qty": "10", "filled_avg_price": "189.52", "status": "filled", "time_in_force": "day",
    "created_at": "2025-09-08T22:47:22.650Z", "filled_at": "2025-09-08T22:47:23.100Z",
    "legs": [{"id": "leg-sl", "stop_price": "180.0", "order_type": "stop", "status": "held"},
             {"id": "leg-tp", "limit_price": "205.0", "order_type": "limit", "status": "held"}],
}


@pytest.fixture(autouse=True)
def alpaca_keys(settings):
    settings.APCA_API_KEY_ID = "PKTEST"
    settings.APCA_API_SECRET_KEY = "secret"
    settings.NEXUS_PROVIDER_RETRY_ATTEMPTS = 1
    settings.NEXUS_PROVIDER_RETRY_MAX_WAIT = 0.5


@pytest.fixture(autouse=True)
def alpaca_account_figures(request):
    """Submitting checks the caps on the account's own figures first (GET /account, /positions)."""
    if "requests_mock" in request.fixturenames:
        mock = request.getfixturevalue("requests_mock")
        mock.get(f"{PAPER}/account", json={"account_number": "PA1", "cash": "100000", "equity": "100000",
                                           "buying_power": "200000", "status": "ACTIVE"})
        mock.get(f"{PAPER}/positions", json=[])


def _order_calls(requests_mock) -> list:
    return [r for r in requests_mock.request_history if "/positions" not in r.path and r.path != "/v2/account"]


def make_broker() -> AlpacaBroker:
    broker = AlpacaBroker.from_settings()
    broker.sleep = lambda s: None  # no real waiting in tests
    return broker


def order_req(**kw):
    base = {"symbol": "AAPL", "side": "buy", "qty": 10, "client_order_id": "nexus-e1-s-AAPL",
            "stop_loss": 180.0, "take_profit": 205.0}
    return OrderRequest(**{**base, **kw})


@pytest.mark.django_db
def test_submit_429_then_success(requests_mock):
    requests_mock.post(f"{PAPER}/orders", [
        {"status_code": 429, "json": {"code": 42910000, "message": "rate limit exceeded"}},
        {"status_code": 200, "json": ORDER},
    ])
    out = make_broker().submit_order(order_req())
    assert out["status"] == "filled" and out["order_id"] == ORDER["id"] and out["duplicate"] is False
    assert len(_order_calls(requests_mock)) == 2
    sent = requests_mock.request_history[-1].json()
    assert sent["client_order_id"] == "nexus-e1-s-AAPL" and sent["order_class"] == "bracket"
    assert sent["stop_loss"]["stop_price"] == 180.0 and sent["take_profit"]["limit_price"] == 205.0
    row = Order.objects.get(client_order_id="nexus-e1-s-AAPL")
    assert row.broker == "alpaca" and row.status == "filled" and float(row.filled_avg_price) == 189.52


@pytest.mark.django_db
def test_persistent_429_is_transient_rate_limit(requests_mock):
    requests_mock.post(f"{PAPER}/orders", status_code=429, json={"message": "rate limit exceeded"},
                       headers={"Retry-After": "30"})
    requests_mock.get(f"{PAPER}/orders:by_client_order_id", status_code=404, json={"message": "not found"})
    with pytest.raises(TransientStepError) as err:
        make_broker().submit_order(order_req())
    assert err.value.error_class == "rate_limit" and err.value.retry_after == 30.0


@pytest.mark.django_db
def test_422_rejection_is_broker_rejected(requests_mock):
    requests_mock.post(f"{PAPER}/orders", status_code=422,
                       json={"code": 42210000, "message": "qty must be > 0 for bracket orders"})
    with pytest.raises(BrokerRejected) as err:
        make_broker().submit_order(order_req())
    assert err.value.error_class == "broker_rejected" and not err.value.transient
    assert "qty must be" in str(err.value)


@pytest.mark.django_db
def test_403_insufficient_buying_power_rejected(requests_mock):
    requests_mock.post(f"{PAPER}/orders", status_code=403, json={"code": 40310000, "message": "insufficient buying power"})
    with pytest.raises(BrokerRejected):
        make_broker().submit_order(order_req())


@pytest.mark.django_db
def test_unknown_symbol_is_invalid_symbol(requests_mock):
    requests_mock.post(f"{PAPER}/orders", status_code=422, json={"code": 40010001, "message": 'asset "ZZZZ" not found'})
    with pytest.raises(PermanentStepError) as err:
        make_broker().submit_order(order_req(symbol="ZZZZ", client_order_id="x"))
    assert err.value.error_class == "invalid_symbol"


@pytest.mark.django_db
def test_duplicate_client_order_id_resolved_by_lookup(requests_mock):
    requests_mock.post(f"{PAPER}/orders", status_code=422,
                       json={"code": 40010001, "message": "client_order_id must be unique"})
    lookup = requests_mock.get(f"{PAPER}/orders:by_client_order_id", json=ORDER)
    out = make_broker().submit_order(order_req())
    assert out["duplicate"] is True and out["order_id"] == ORDER["id"]
    assert lookup.last_request.qs["client_order_id"] == ["nexus-e1-s-aapl"] or \
        lookup.last_request.qs["client_order_id"] == ["nexus-e1-s-AAPL"]
    assert Order.objects.filter(client_order_id="nexus-e1-s-AAPL").count() == 1


@pytest.mark.django_db
def test_empty_error_body(requests_mock):
    requests_mock.post(f"{PAPER}/orders", status_code=403, text="")
    with pytest.raises(BrokerRejected) as err:
        make_broker().submit_order(order_req())
    assert "empty error body" in str(err.value)
    requests_mock.get(f"{PAPER}/account", status_code=500, text="")
    with pytest.raises(TransientStepError) as err:
        make_broker().get_account()
    assert err.value.error_class == "server_error"


@pytest.mark.django_db
def test_non_json_502_is_ambiguous_then_resolved(requests_mock):
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    requests_mock.post(f"{PAPER}/orders", status_code=502, text=html)
    requests_mock.get(f"{PAPER}/orders:by_client_order_id", [
        {"status_code": 404, "json": {"message": "order not found"}},
        {"status_code": 200, "json": ORDER},
    ])
    broker = make_broker()
    with pytest.raises(TransientStepError) as err:  # not placed: retry later with the same client_order_id
        broker.submit_order(order_req())
    assert err.value.error_class == "server_error" and "502 Bad Gateway" in str(err.value)
    out = broker.submit_order(order_req())  # the order did go through: found, not re-sent
    assert out["duplicate"] is True and out["order_id"] == ORDER["id"]


@pytest.mark.django_db
def test_timeout_is_ambiguous(requests_mock):
    requests_mock.post(f"{PAPER}/orders", exc=requests.exceptions.ReadTimeout)
    requests_mock.get(f"{PAPER}/orders:by_client_order_id", json=ORDER)
    out = make_broker().submit_order(order_req())
    assert out["duplicate"] is True and len(_order_calls(requests_mock)) == 2


@pytest.mark.django_db
def test_account_positions_clock(requests_mock):
    requests_mock.get(f"{PAPER}/account", json={"account_number": "PA1", "cash": "50000", "equity": "100000",
                                                "buying_power": "200000", "status": "ACTIVE"})
    requests_mock.get(f"{PAPER}/positions", json=[{"symbol": "AAPL", "qty": "10", "avg_entry_price": "180",
                                                   "current_price": "190", "market_value": "1900",
                                                   "unrealized_pl": "100", "side": "long"}])
    requests_mock.get(f"{PAPER}/clock", json={"is_open": True, "timestamp": "2025-09-08T14:00:00Z",
                                              "next_open": "2025-09-09T13:30:00Z", "next_close": "2025-09-08T20:00:00Z"})
    b = make_broker()
    assert b.get_account()["equity"] == 100000 and b.paper is True
    assert b.get_positions()[0]["market_value"] == 1900
    assert b.get_clock()["is_open"] is True


@pytest.mark.django_db
def test_alpaca_order_above_the_cap_is_refused_before_sending(requests_mock):
    """The operator's caps apply to Alpaca orders too, on the account's own equity and positions."""
    requests_mock.get(f"{PAPER}/positions", json=[{"symbol": "AAPL", "qty": "40", "avg_entry_price": "180",
                                                   "current_price": "200", "market_value": "8000",
                                                   "unrealized_pl": "800", "side": "long"}])
    post = requests_mock.post(f"{PAPER}/orders", json=ORDER)
    requests_mock.get(f"{PAPER}/orders:by_client_order_id", status_code=404, json={"message": "not found"})
    with pytest.raises(BrokerRejected) as err:  # 40 + 20 shares at 200 = 12 % of 100k equity
        make_broker().submit_order(order_req(qty=20))
    assert err.value.error_class == "risk_limit_breach" and "max_position_pct" in str(err.value)
    assert post.call_count == 0
    make_broker().submit_order(order_req(qty=5))  # 9 %: sent
    assert post.call_count == 1


@pytest.mark.django_db
def test_kill_switch_blocks_alpaca_before_any_request(requests_mock):
    from trading_app.killswitch import KillSwitchActive, set_kill_switch

    set_kill_switch(True, "test")
    with pytest.raises(KillSwitchActive):
        make_broker().submit_order(order_req())
    assert requests_mock.call_count == 0


# --- live trading guard ---------------------------------------------------------------------
@pytest.mark.parametrize(("paper", "allow", "live"), [
    (None, None, False), ("false", None, False), (None, "true", False), ("true", "true", False), ("false", "true", True),
])
def test_live_trading_needs_both_settings(settings, paper, allow, live):
    for name, value in (("ALPACA_PAPER", paper), ("NEXUS_ALLOW_LIVE_TRADING", allow)):
        if hasattr(settings, name):
            delattr(settings, name)
        if value is not None:
            setattr(settings, name, value)  # a string, as settings hand the environment's value on
    assert conf.live_trading_enabled() is live
    broker = AlpacaBroker.from_settings()
    base = broker.client._base_url
    assert getattr(base, "value", base) == ("https://api.alpaca.markets" if live else "https://paper-api.alpaca.markets")
    assert broker.paper is not live
    mode = conf.trading_mode()
    assert mode["live_trading_enabled"] is False  # broker setting is still "paper"


def test_live_endpoint_refused_without_both_settings():
    from alpaca.trading.client import TradingClient

    with pytest.raises(PermanentStepError) as err:
        AlpacaBroker(TradingClient("k", "s", paper=False, raw_data=True))
    assert err.value.error_class == "config_error"


def test_missing_keys_is_config_error(settings):
    settings.APCA_API_KEY_ID = ""
    with pytest.raises(PermanentStepError) as err:
        AlpacaBroker.from_settings()
    assert err.value.error_class == "config_error"


# --- Alpaca market data and news ---------------------------------------------------------------
def test_alpaca_bars_and_latest_trade(requests_mock):
    bars = [{"t": f"2025-0{m}-0{d}T04:00:00Z", "o": 100 + d, "h": 101 + d, "l": 99 + d, "c": 100.5 + d, "v": 1000 * d}
            for m in (7, 8) for d in range(1, 6)]
    requests_mock.get(f"{DATA}/v2/stocks/bars", json={"bars": {"AAPL": bars}, "next_page_token": None})
    requests_mock.get(f"{DATA}/v2/stocks/trades/latest", json={"trades": {"AAPL": {"p": 189.5, "s": 100}}})
    md = AlpacaMarketData.from_settings()
    df = md.daily_bars("AAPL", limit=5)
    assert list(df.columns) == ["open", "high", "low", "close", "volume"] and len(df) == 5
    assert md.latest_price("AAPL") == 189.5


def test_alpaca_bars_empty_is_invalid_symbol(requests_mock):
    requests_mock.get(f"{DATA}/v2/stocks/bars", json={"bars": {}, "next_page_token": None})
    with pytest.raises(PermanentStepError) as err:
        AlpacaMarketData.from_settings().daily_bars("QQQQQ", limit=5)
    assert err.value.error_class == "invalid_symbol"


def test_alpaca_data_429_then_success(requests_mock):
    requests_mock.get(f"{DATA}/v2/stocks/trades/latest", [
        {"status_code": 429, "text": ""}, {"json": {"trades": {"AAPL": {"p": 10.0}}}}])
    md = AlpacaMarketData.from_settings()
    md.sleep = lambda s: None
    assert md.latest_price("AAPL") == 10.0


def test_alpaca_news(requests_mock):
    requests_mock.get(f"{DATA}/v1beta1/news", json={"news": [
        {"id": 1, "headline": "Apple beats estimates", "summary": "", "source": "benzinga", "symbols": ["AAPL"],
         "created_at": "2025-09-08T12:00:00Z", "url": "https://example.com/a"}], "next_page_token": None})
    items = AlpacaNews.from_settings().get_news(["AAPL"], limit=5)
    assert items[0]["headline"] == "Apple beats estimates" and items[0]["symbols"] == ["AAPL"]


# --- NewsAPI -----------------------------------------------------------------------------------
NEWSAPI = "https://newsapi.org/v2/everything"


@responses.activate
def test_newsapi_success_maps_articles():
    responses.get(NEWSAPI, json={"status": "ok", "totalResults": 2, "articles": [
        {"source": {"id": "reuters", "name": "Reuters"}, "title": "Apple beats estimates as iPhone sales surge",
         "description": "Strong quarter", "url": "https://example.com/1", "publishedAt": "2025-09-08T12:00:00Z"},
        {"source": {"id": None, "name": "Bloomberg"}, "title": "Microsoft downgraded", "description": None,
         "url": "https://example.com/2", "publishedAt": "2025-09-08T11:00:00Z"}]})
    items = NewsApiNews("key").get_news(["AAPL", "MSFT"], limit=10)
    assert [i["source"] for i in items] == ["Reuters", "Bloomberg"]
    assert items[0]["symbols"] == ["AAPL"] and items[1]["symbols"] == ["MSFT"]
    sent = responses.calls[0].request
    assert "Apple" in requests.utils.unquote(sent.url) and sent.headers["Authorization"] == "key"


@responses.activate
def test_newsapi_rate_limited_then_success():
    responses.get(NEWSAPI, status=429, json={"status": "error", "code": "rateLimited",
                                             "message": "You have made too many requests recently."})
    responses.get(NEWSAPI, json={"status": "ok", "articles": []})
    news = NewsApiNews("key")
    with pytest.raises(TransientStepError) as err:
        news.get_news(["AAPL"])
    assert err.value.error_class == "rate_limit"
    assert news.get_news(["AAPL"]) == []


@responses.activate
def test_newsapi_non_json_502_and_empty_429():
    responses.get(NEWSAPI, status=502, body="<html>Bad Gateway</html>", content_type="text/html")
    responses.get(NEWSAPI, status=429, body="")
    news = NewsApiNews("key")
    with pytest.raises(TransientStepError) as err:
        news.get_news(["AAPL"])
    assert err.value.error_class == "server_error"
    with pytest.raises(TransientStepError) as err:
        news.get_news(["AAPL"])
    assert err.value.error_class == "rate_limit"


@responses.activate
def test_newsapi_bad_key_is_permanent():
    responses.get(NEWSAPI, status=401, json={"status": "error", "code": "apiKeyInvalid", "message": "bad key"})
    with pytest.raises(PermanentStepError) as err:
        NewsApiNews("key").get_news(["AAPL"])
    assert err.value.error_class == "auth_error"


# --- engine classifier for library exceptions ---------------------------------------------------
def test_registered_classifier_maps_library_errors():
    from alpaca.common.exceptions import APIError

    def api_error(status, body):
        resp = requests.Response()
        resp.status_code = status
        resp._content = body.encode()
        return APIError(body, requests.HTTPError(response=resp))

    cases = [
        (api_error(429, json.dumps({"message": "rate limit"})), "rate_limit", True),
        (api_error(503, "<html>down</html>"), "server_error", True),
        (api_error(422, json.dumps({"message": "invalid symbol: ZZZZ"})), "invalid_symbol", False),
        (api_error(403, json.dumps({"message": "insufficient buying power"})), "broker_rejected", False),
        (api_error(403, ""), "broker_rejected", False),
        (NewsAPIException({"status": "error", "code": "rateLimited", "message": "slow down"}), "rate_limit", True),
        (requests.exceptions.ConnectTimeout(), "timeout", True),
        (requests.exceptions.ConnectionError(), "connection", True),
    ]
    for exc, cls, transient in cases:
        info = registry.classify_error(exc)
        assert (info.error_class, info.transient) == (cls, transient), exc
    assert errors.body_message("") == ("", None)
    assert re.search("Bad Gateway", errors.body_message("<html><h1>502 Bad Gateway</h1></html>")[0])


def test_every_provider_request_has_a_timeout(settings):
    from unittest import mock

    from trading_app.providers.http import TimeoutAdapter

    settings.NEXUS_PROVIDER_TIMEOUT = 3
    broker = AlpacaBroker.from_settings()
    adapter = broker.client._session.get_adapter("https://paper-api.alpaca.markets/v2/account")
    assert isinstance(adapter, TimeoutAdapter)
    with mock.patch("requests.adapters.HTTPAdapter.send", return_value="sent") as send:
        adapter.send(mock.Mock(), timeout=None)
        adapter.send(mock.Mock(), timeout=30)
    assert [c.kwargs["timeout"] for c in send.call_args_list] == [3.0, 3.0]
    assert isinstance(NewsApiNews("k").session.get_adapter("https://newsapi.org/v2/everything"), TimeoutAdapter)


SID = "0f6a3c7e-8d3e-4a5e-9b1e-2a3b4c5d6e7f"
LID = "1f6a3c7e-8d3e-4a5e-9b1e-2a3b4c5d6e7f"


@pytest.mark.django_db
def test_alpaca_stops_replace_and_cancel(requests_mock):
    stop = {"id": SID, "client_order_id": "x-sl", "symbol": "AAPL", "side": "sell", "order_type": "stop",
            "qty": "10", "filled_qty": "0", "stop_price": "180", "status": "new", "legs": None}
    parent = {**ORDER, "status": "filled", "legs": [{**stop, "id": LID, "status": "held"}]}
    orders = requests_mock.get(f"{PAPER}/orders", json=[parent, stop])
    broker = make_broker()
    stops = broker.open_stop_orders("AAPL")
    assert {s["order_id"] for s in stops} == {SID, LID} and stops[0]["stop_price"] == 180.0
    assert orders.last_request.qs["status"] == ["open"] and orders.last_request.qs["nested"] == ["true"]
    patch = requests_mock.patch(f"{PAPER}/orders/{SID}", json={**stop, "stop_price": "185"})
    assert broker.replace_stop(SID, stop_price=185.0)["stop_price"] == 185.0
    assert patch.last_request.json()["stop_price"] == 185.0
    requests_mock.delete(f"{PAPER}/orders/{SID}", status_code=204, text="")
    assert broker.cancel_order(order_id=SID)["canceled"] is True


def test_alpaca_many_symbols_one_request_through_the_cache(requests_mock):
    from trading_app.providers.cache import CachedMarketData

    def rows(base):
        return [{"t": f"2025-08-{d:02d}T04:00:00Z", "o": base, "h": base + 1, "l": base - 1, "c": base + d / 10,
                 "v": 1000} for d in range(1, 21)]

    bars = requests_mock.get(f"{DATA}/v2/stocks/bars", json={"bars": {"AAPL": rows(190), "MSFT": rows(400)},
                                                             "next_page_token": None})
    md = CachedMarketData(AlpacaMarketData.from_settings(), "alpaca")
    out = md.daily_bars_many(["AAPL", "MSFT"], limit=10)
    assert bars.call_count == 1 and len(out["AAPL"]) == 10 and out["MSFT"]["close"].iloc[-1] == 402.0
    assert set(bars.last_request.qs["symbols"][0].upper().split(",")) == {"AAPL", "MSFT"}
    again = md.daily_bars_many(["AAPL", "MSFT"], limit=10)
    assert bars.call_count == 1 and again["AAPL"].equals(out["AAPL"])
