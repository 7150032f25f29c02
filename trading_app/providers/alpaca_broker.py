"""The Alpaca broker (alpaca-py ``TradingClient``).

* Paper endpoints unless live trading is enabled (ALPACA_PAPER=false AND NEXUS_ALLOW_LIVE_TRADING=true);
  the broker refuses to start when its base URL disagrees with that decision.
* ``submit_order`` always sends a ``client_order_id``. A duplicate (HTTP 422 "client_order_id must be
  unique") or an ambiguous outcome (timeout, connection error, 5xx: the order may or may not exist)
  is resolved with ``get_order_by_client_id``: the existing order is returned, never a second one.
* Every order is recorded as an ``Order`` row (``broker="alpaca"``), so the counters and the admin see it.

Calls go through ``alpaca_client.AlpacaCaller``; alpaca-py is imported where it is used (optional
and heavy, see ``alpaca_client``).
"""
from __future__ import annotations

import logging

import pandas as pd
import requests

from trading_app import conf, risk
from trading_app.brokers import Broker, BrokerRejected, OrderRequest, RiskRejected
from trading_app.errors import DUPLICATE_HINT, from_http
from trading_app.governor import readings
from trading_app.killswitch import ensure_trading_allowed
from trading_app.models import AccountSnapshot, Order
from trading_app.providers import get_market_data
from trading_app.providers.alpaca_client import AlpacaCaller, api_error, no_sdk_retry, require_keys
from trading_app.symbols import normalise
from workflows_app.errors import PermanentStepError, StepError, TransientStepError

logger = logging.getLogger("nexus.trading.alpaca")
PAPER_URL = "https://paper-api.alpaca.markets"


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


class AlpacaBroker(AlpacaCaller, Broker):
    name = "alpaca"
    account_row = None  # the BrokerAccount row it trades for (trading_app.accounts.broker_for_account)

    def __init__(self, client, market_data=None):
        self.client = no_sdk_retry(client)
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

        key, secret = require_keys("alpaca broker")
        live = conf.live_trading_enabled()
        if conf.get("ALPACA_PAPER") is False and not live:
            logger.warning("ALPACA_PAPER=false ignored: NEXUS_ALLOW_LIVE_TRADING is not true; using paper trading")
        return cls(TradingClient(key, secret, paper=not live, raw_data=True))

    @property
    def market_data(self):
        if self._market_data is None:
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

    # submit_order is brokers.Broker's: every order passes the risk governor, then ``_place``
    def normalise(self, req: OrderRequest) -> None:
        req.symbol = normalise(req.symbol)

    def governed_account(self):
        """The row this broker trades for; the configured Alpaca account's row when unbound."""
        if self.account_row is None:
            from trading_app.accounts import alpaca_account

            self.account_row = alpaca_account()
        return self.account_row

    def risk_reading(self, symbol: str):
        """The Alpaca account's own equity and positions (for the governor)."""
        def fallback(problems):
            return readings.price_of(self.market_data, symbol, problems)

        return readings.broker_reading(self.get_account(), self.get_positions(), symbol, fallback)

    def resolve_refused(self, req: OrderRequest) -> dict | None:
        """A refused retry of an order that did go through (now part of the position) resolves to it."""
        existing = self._lookup(req.client_order_id)
        return None if existing is None else self._record(existing, req, duplicate=True)

    def _place(self, req: OrderRequest) -> dict:
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
        APIError = api_error()  # noqa: N806
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
