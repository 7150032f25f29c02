"""Alpaca adapters (alpaca-py): market data, news and the broker.

* The SDK's own 429 loop (3 tries, 3 s sleeps inside a worker) is switched off; ``_call`` retries a
  429/503 at most ``NEXUS_PROVIDER_RETRY_ATTEMPTS`` times with a short wait (honouring
  ``Retry-After`` up to ``NEXUS_PROVIDER_RETRY_MAX_WAIT``), then raises a transient step error so
  the engine's backoff takes over.
* Paper endpoints unless live trading is enabled (ALPACA_PAPER=false AND NEXUS_ALLOW_LIVE_TRADING=true);
  the broker refuses to start when its base URL disagrees with that decision.
* ``submit_order`` always sends a ``client_order_id``. A duplicate (HTTP 422 "client_order_id must be
  unique") or an ambiguous outcome (timeout, connection error, 5xx: the order may or may not exist)
  is resolved with ``get_order_by_client_id``: the existing order is returned, never a second one.
"""
from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import requests

from trading_app import conf, risk
from trading_app.brokers import BrokerRejected, OrderRequest, RiskRejected
from trading_app.errors import DUPLICATE_HINT, from_http
from trading_app.killswitch import ensure_trading_allowed
from trading_app.symbols import InvalidSymbol, normalise
from workflows_app.errors import PermanentStepError, StepError, TransientStepError

logger = logging.getLogger("nexus.trading.alpaca")
PAPER_URL = "https://paper-api.alpaca.markets"


def _api_error():
    from alpaca.common.exceptions import APIError

    return APIError


class TimeoutAdapter(requests.adapters.HTTPAdapter):
    """Every request gets a timeout (NEXUS_PROVIDER_TIMEOUT): the SDK sets none, a hung socket would
    hold a worker until the task's hard time limit."""

    def send(self, request, **kwargs):
        limit = float(conf.get("NEXUS_PROVIDER_TIMEOUT"))
        given = kwargs.get("timeout")
        kwargs["timeout"] = limit if given is None else min(float(given) if not isinstance(given, tuple)
                                                            else max(given), limit)
        return super().send(request, **kwargs)


def with_timeouts(session: requests.Session) -> requests.Session:
    adapter = TimeoutAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _no_sdk_retry(client):
    client._retry = 0  # one attempt per call: retries are ours (bounded) or the engine's
    if isinstance(getattr(client, "_session", None), requests.Session):
        with_timeouts(client._session)
    return client


def _require_keys(what: str) -> tuple[str, str]:
    key, secret = conf.alpaca_keys()
    if not (key and secret):
        raise PermanentStepError(f"{what}: APCA_API_KEY_ID / APCA_API_SECRET_KEY are not set",
                                 error_class="config_error")
    return key, secret


class _Caller:
    sleep = staticmethod(time.sleep)

    def _call(self, what: str, fn):
        """Run one SDK call; map its failures to step errors (429/503 retried a little first)."""
        APIError = _api_error()  # noqa: N806
        attempts = 1 + max(0, int(conf.get("NEXUS_PROVIDER_RETRY_ATTEMPTS")))
        max_wait = float(conf.get("NEXUS_PROVIDER_RETRY_MAX_WAIT"))
        for attempt in range(attempts):
            try:
                return fn()
            except APIError as exc:
                response = exc.response
                status = exc.status_code
                err = from_http(status, response.text if response is not None else str(exc), what=what,
                                response=response)
                if status in (429, 503) and attempt + 1 < attempts:
                    wait = err.retry_after if err.retry_after is not None else 0.25 * 2 ** attempt
                    if wait <= max_wait:
                        self.sleep(wait)
                        continue
                raise err from exc
            except requests.exceptions.Timeout as exc:
                raise TransientStepError(f"{what}: timeout", error_class="timeout") from exc
            except requests.exceptions.ConnectionError as exc:
                raise TransientStepError(f"{what}: connection error", error_class="connection") from exc
            except ValueError as exc:  # a 200 with a body that is not what the SDK expects
                raise TransientStepError(f"{what}: unreadable response ({exc})", error_class="server_error") from exc
        raise AssertionError("unreachable")  # pragma: no cover


# --- market data ------------------------------------------------------------------------------
class AlpacaMarketData(_Caller):
    name = "alpaca"

    def __init__(self, client, feed: str = "iex"):
        self.client = _no_sdk_retry(client)
        self.feed = feed

    @classmethod
    def from_settings(cls) -> AlpacaMarketData:
        from alpaca.data.historical import StockHistoricalDataClient

        key, secret = _require_keys("alpaca market data")
        return cls(StockHistoricalDataClient(key, secret, raw_data=True))

    def generation(self) -> int:
        return 0

    def validate_symbol(self, symbol: str) -> str:
        return normalise(symbol)

    def daily_bars(self, symbol: str, limit: int = 300, end: datetime | None = None) -> pd.DataFrame:
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        end = end or datetime.now(UTC)
        start = end - timedelta(days=int(limit * 1.6) + 10)
        req = StockBarsRequest(symbol_or_symbols=symbol, timeframe=TimeFrame.Day, start=start, end=end,
                               feed=self.feed)
        data = self._call(f"alpaca bars {symbol}", lambda: self.client.get_stock_bars(req))
        return self._frame(symbol, data, limit)

    def daily_bars_many(self, symbols: list[str], limit: int = 300, end: datetime | None = None) -> dict:
        """One request (paginated by the SDK) for many symbols' daily bars."""
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        end = end or datetime.now(UTC)
        start = end - timedelta(days=int(limit * 1.6) + 10)
        req = StockBarsRequest(symbol_or_symbols=list(symbols), timeframe=TimeFrame.Day, start=start, end=end,
                               feed=self.feed)
        data = self._call(f"alpaca bars {len(symbols)} symbols", lambda: self.client.get_stock_bars(req))
        return {sym: self._frame(sym, data, limit) for sym in symbols}

    def intraday_bars(self, symbol: str, minutes: int = 1, limit: int = 390, end: datetime | None = None):
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        end = end or datetime.now(UTC)
        start = end - timedelta(days=5)
        req = StockBarsRequest(symbol_or_symbols=symbol, timeframe=TimeFrame(minutes, TimeFrameUnit.Minute),
                               start=start, end=end, feed=self.feed)
        data = self._call(f"alpaca intraday bars {symbol}", lambda: self.client.get_stock_bars(req))
        return self._frame(symbol, data, limit)

    @staticmethod
    def _frame(symbol: str, data, limit: int) -> pd.DataFrame:
        rows = (data or {}).get(symbol) or []
        if not rows:
            raise InvalidSymbol(symbol, "no bars returned (unknown or untraded symbol)")
        df = pd.DataFrame(rows).rename(columns={"t": "timestamp", "o": "open", "h": "high", "l": "low", "c": "close",
                                                "v": "volume"})
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
        df = df.set_index("timestamp")[["open", "high", "low", "close", "volume"]].astype(float)
        return df.tail(int(limit))

    def latest_price(self, symbol: str, at: datetime | None = None) -> float:
        from alpaca.data.requests import StockLatestTradeRequest

        req = StockLatestTradeRequest(symbol_or_symbols=symbol, feed=self.feed)
        data = self._call(f"alpaca latest trade {symbol}", lambda: self.client.get_stock_latest_trade(req))
        trade = (data or {}).get(symbol)
        if not trade:
            raise InvalidSymbol(symbol, "no trade returned (unknown symbol)")
        return float(trade["p"])

    def market_clock(self, at: datetime | None = None) -> dict:
        from trading_app.providers.simulated import market_clock

        return market_clock(at)  # XNYS calendar (exchange_calendars): same answer, no request


# --- news ---------------------------------------------------------------------------------------
class AlpacaNews(_Caller):
    name = "alpaca"

    def __init__(self, client):
        self.client = _no_sdk_retry(client)

    @classmethod
    def from_settings(cls) -> AlpacaNews:
        from alpaca.data.historical.news import NewsClient

        key, secret = _require_keys("alpaca news")
        return cls(NewsClient(key, secret, raw_data=True))

    def get_news(self, symbols, limit=20, start=None, end=None, keywords=None) -> list[dict]:
        from alpaca.data.requests import NewsRequest

        req = NewsRequest(symbols=",".join(symbols) if symbols else None, start=start, end=end,
                          limit=int(limit), sort="desc")
        data = self._call("alpaca news", lambda: self.client.get_news(req))
        items = []
        for n in (data or {}).get("news", []):
            headline = n.get("headline") or ""
            items.append({
                "id": f"alpaca-{n.get('id')}", "headline": headline, "summary": n.get("summary") or "",
                "source": n.get("source") or n.get("author") or "", "symbols": n.get("symbols") or [],
                "published_at": n.get("created_at"), "url": n.get("url") or "", "provider": "alpaca",
                "breaking": headline.upper().startswith("BREAKING"),
            })
        if keywords:
            kws = [k.lower() for k in keywords]
            items = [i for i in items if any(k in (i["headline"] + " " + i["summary"]).lower() for k in kws)]
        return items[: int(limit)]


# --- broker -------------------------------------------------------------------------------------
def _order_dict(o: dict) -> dict:
    def f(v):
        return None if v in (None, "") else float(v)

    legs = o.get("legs") or []
    return {
        "order_id": o.get("id"), "client_order_id": o.get("client_order_id"), "broker": "alpaca",
        "symbol": o.get("symbol"), "side": o.get("side"), "type": o.get("order_type") or o.get("type"),
        "order_class": o.get("order_class") or "simple", "qty": f(o.get("qty")), "filled_qty": f(o.get("filled_qty")),
        "filled_avg_price": f(o.get("filled_avg_price")), "limit_price": f(o.get("limit_price")),
        "stop_price": f(o.get("stop_price")), "status": o.get("status"),
        "created_at": o.get("created_at"), "filled_at": o.get("filled_at"),
        "legs": [leg.get("id") for leg in legs],
        "stop_loss": next((f(leg.get("stop_price")) for leg in legs if leg.get("stop_price")), None),
        "take_profit": next((f(leg.get("limit_price")) for leg in legs if leg.get("limit_price")), None),
    }


class AlpacaBroker(_Caller):
    name = "alpaca"
    account_row = None  # the BrokerAccount row it trades for (trading_app.accounts.broker_for_account)

    def __init__(self, client, market_data=None):
        self.client = _no_sdk_retry(client)
        base = getattr(client, "_base_url", "") or ""
        base = str(getattr(base, "value", base))
        if not conf.live_trading_enabled() and not base.startswith(PAPER_URL):
            raise PermanentStepError(f"refusing a non-paper Alpaca endpoint ({base}) while live trading is disabled",
                                     error_class="config_error")
        self.paper = base.startswith(PAPER_URL)
        self._market_data = market_data

    @classmethod
    def from_settings(cls) -> AlpacaBroker:
        from alpaca.trading.client import TradingClient

        key, secret = _require_keys("alpaca broker")
        live = conf.live_trading_enabled()
        if conf.get("ALPACA_PAPER") is False and not live:
            logger.warning("ALPACA_PAPER=false ignored: NEXUS_ALLOW_LIVE_TRADING is not true; using paper trading")
        return cls(TradingClient(key, secret, paper=not live, raw_data=True))

    @property
    def market_data(self):
        if self._market_data is None:
            from trading_app.providers import get_market_data

            self._market_data = get_market_data(False)
        return self._market_data

    # -- orders
    def _build(self, req: OrderRequest):
        from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
        from alpaca.trading.requests import (
            LimitOrderRequest,
            MarketOrderRequest,
            StopLossRequest,
            StopOrderRequest,
            TakeProfitRequest,
        )

        common = {"symbol": req.symbol, "qty": req.qty, "side": OrderSide(req.side),
                  "time_in_force": TimeInForce(req.time_in_force), "client_order_id": req.client_order_id}
        if req.stop_loss and req.take_profit:
            common.update(order_class=OrderClass.BRACKET, stop_loss=StopLossRequest(stop_price=req.stop_loss),
                          take_profit=TakeProfitRequest(limit_price=req.take_profit))
        elif req.stop_loss:
            common.update(order_class=OrderClass.OTO, stop_loss=StopLossRequest(stop_price=req.stop_loss))
        elif req.take_profit:
            common.update(order_class=OrderClass.OTO, take_profit=TakeProfitRequest(limit_price=req.take_profit))
        if req.type == "limit":
            return LimitOrderRequest(limit_price=req.limit_price, **common)
        if req.type == "stop":
            return StopOrderRequest(stop_price=req.stop_price, **common)
        return MarketOrderRequest(**common)

    def submit_order(self, req: OrderRequest) -> dict:
        req.validate()
        req.symbol = normalise(req.symbol)
        ensure_trading_allowed(self.account_row)
        self._check_caps(req)
        order_data = self._build(req)
        try:
            raw = self._call(f"alpaca submit {req.symbol}", lambda: self.client.submit_order(order_data))
            duplicate = False
        except StepError as err:
            text = str(err)
            if DUPLICATE_HINT.search(text) or err.transient:
                # duplicate client_order_id, or an ambiguous outcome: does the order exist?
                existing = self._lookup(req.client_order_id)
                if existing is not None:
                    return self._record(existing, req, duplicate=True)
                if DUPLICATE_HINT.search(text):
                    raise TransientStepError("duplicate client_order_id but the order is not visible yet",
                                             error_class="broker_consistency") from err
            if err.error_class == "broker_rejected":
                raise BrokerRejected(text) from err
            raise
        return self._record(raw, req, duplicate=duplicate)

    def _check_caps(self, req: OrderRequest) -> None:
        """The operator's caps on the Alpaca account's own figures: the last check before the order
        leaves. A refusal first looks the client_order_id up: a retry of an order that already went
        through (and is now part of the position) resolves to it instead of being refused."""
        account = self.get_account()
        positions = {p["symbol"]: p for p in self.get_positions()}
        pos = positions.get(req.symbol)
        price = (pos or {}).get("last_price") or req.limit_price or float(self.market_data.latest_price(req.symbol))
        try:
            risk.check_order(side=req.side, qty=float(req.qty), price=float(price), equity=float(account["equity"]),
                             held_qty=float((pos or {}).get("qty") or 0.0), symbol=req.symbol,
                             gross_value=sum(abs(float(p["market_value"])) for p in positions.values()),
                             lim=risk.limits(self.account_row))
        except risk.RiskLimitExceeded as exc:
            if self._lookup(req.client_order_id) is not None:
                return
            raise RiskRejected(f"order refused before sending: {exc}") from exc

    def _record(self, raw: dict, req: OrderRequest | None, duplicate: bool) -> dict:
        from trading_app.models import Order

        data = _order_dict(raw)
        status = data["status"] or "new"
        status = status if status in dict(Order.Status.choices) else ("new" if status in ("pending_new",) else status)
        defaults = {
            "broker": "alpaca", "broker_order_id": data["order_id"] or "", "symbol": data["symbol"] or "",
            "side": data["side"] or "buy", "order_type": (data["type"] or "market")[:8],
            "order_class": (data["order_class"] or "simple")[:16], "qty": data["qty"] or 0,
            "filled_qty": data["filled_qty"] or 0, "filled_avg_price": data["filled_avg_price"],
            "limit_price": data["limit_price"], "stop_price": data["stop_price"], "status": status[:20],
            "stop_loss_price": data["stop_loss"], "take_profit_price": data["take_profit"], "raw": raw,
            "filled_at": pd.Timestamp(data["filled_at"]).to_pydatetime() if data["filled_at"] else None,
        }
        if req is not None:
            defaults.update(execution_id=req.execution_id, step_name=req.step_name, test_mode=req.test_mode)
        if self.account_row is not None:
            defaults["account"] = self.account_row
        Order.objects.update_or_create(client_order_id=data["client_order_id"], defaults=defaults)
        return {**data, "duplicate": duplicate}

    def _lookup(self, client_order_id: str) -> dict | None:
        APIError = _api_error()  # noqa: N806
        try:
            return self.client.get_order_by_client_id(client_order_id)
        except APIError as exc:
            if exc.status_code == 404:
                return None
            response = exc.response
            raise from_http(exc.status_code, response.text if response is not None else "",
                            what="alpaca order lookup", response=response) from exc
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
            raise TransientStepError("alpaca order lookup: no answer", error_class="timeout") from exc

    def get_order_by_client_id(self, client_order_id: str) -> dict | None:
        raw = self._lookup(client_order_id)
        return None if raw is None else self._record(raw, None, duplicate=False)

    def get_order(self, order_id: str) -> dict | None:
        raw = self._call("alpaca get order", lambda: self.client.get_order_by_id(order_id))
        return self._record(raw, None, duplicate=False) if raw else None

    def cancel_order(self, order_id: str | None = None, client_order_id: str | None = None) -> dict:
        if order_id is None and client_order_id:
            found = self._lookup(client_order_id)
            order_id = found and found.get("id")
        if not order_id:
            return {"canceled": False, "reason": "order not found"}
        self._call("alpaca cancel order", lambda: self.client.cancel_order_by_id(order_id))
        return {"canceled": True, "order_id": order_id}

    def open_stop_orders(self, symbol: str) -> list[dict]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        req = GetOrdersRequest(status=QueryOrderStatus.OPEN, symbols=[symbol], nested=True)
        orders = self._call("alpaca open orders", lambda: self.client.get_orders(req)) or []
        flat = []
        for o in orders:
            flat.append(o)
            flat.extend(o.get("legs") or [])
        return [_order_dict(o) for o in flat if (o.get("order_type") or o.get("type")) in ("stop", "trailing_stop")
                and o.get("status") in ("new", "accepted", "held")]

    def replace_stop(self, order_id: str, stop_price=None, trail_percent=None) -> dict:
        from alpaca.trading.requests import ReplaceOrderRequest

        req = ReplaceOrderRequest(stop_price=stop_price, trail=trail_percent * 100 if trail_percent else None)
        return _order_dict(self._call("alpaca replace order", lambda: self.client.replace_order_by_id(order_id, req)))

    # -- account
    def get_account(self, mark: bool = False) -> dict:
        a = self._call("alpaca account", self.client.get_account)
        equity = float(a.get("equity") or 0)
        cash = float(a.get("cash") or 0)
        return {"broker": "alpaca", "paper": self.paper, "account": a.get("account_number"), "cash": cash,
                "equity": equity, "positions_value": equity - cash,
                "buying_power": float(a.get("buying_power") or 0), "status": a.get("status"),
                "trading_blocked": a.get("trading_blocked"), "slippage_bps": 0.0, "commission_per_share": 0.0,
                "commission_min": 0.0}

    def get_positions(self) -> list[dict]:
        rows = self._call("alpaca positions", self.client.get_all_positions) or []
        return [{"symbol": p["symbol"], "qty": float(p["qty"]), "avg_entry_price": float(p["avg_entry_price"]),
                 "last_price": float(p.get("current_price") or 0), "market_value": float(p.get("market_value") or 0),
                 "unrealized_pnl": float(p.get("unrealized_pl") or 0), "side": p.get("side")} for p in rows]

    def get_position(self, symbol: str) -> dict | None:
        return next((p for p in self.get_positions() if p["symbol"] == symbol), None)

    def snapshot(self, reason: str = "manual", execution_id: str = "") -> dict:
        from trading_app.models import AccountSnapshot

        a = self.get_account()
        positions = self.get_positions()
        gross = sum(abs(p["market_value"]) for p in positions)
        snap = AccountSnapshot.objects.create(
            broker="alpaca", account=self.account_row, cash=a["cash"], positions_value=a["positions_value"],
            equity=a["equity"],
            gross_exposure=gross, net_exposure=a["positions_value"], reason=reason, execution_id=execution_id,
            positions=positions)
        return {"snapshot_id": snap.pk, "equity": a["equity"], "cash": a["cash"],
                "positions_value": a["positions_value"]}

    def get_clock(self) -> dict:
        c = self._call("alpaca clock", self.client.get_clock)
        return {"is_open": c.get("is_open"), "timestamp": c.get("timestamp"), "next_open": c.get("next_open"),
                "next_close": c.get("next_close")}
