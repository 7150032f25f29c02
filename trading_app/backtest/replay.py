"""The replay: history walked in time order on the simulated clock, through the workflow's own
trigger evaluation, step handlers, risk checks and broker interface.

At each instant, in this order: the bars that close (limit/stop/bracket fills against their
high/low; their tick events go through the engine's trigger evaluation, ``evaluate_held``), the
schedule firings (croniter on the trigger's cron in its timezone) and news events, the decisions
those firings make (``decisions.run`` with the providers bound to the backtest), then the bars
that open (market orders placed until now fill at the open). The equity curve gets a point at
every bar close.
"""
from __future__ import annotations

import math
import time
import zoneinfo
from collections import deque
from datetime import UTC, datetime
from itertools import groupby

from croniter import croniter
from django.db import transaction

from trading_app import conf
from trading_app.backtest import decisions, fills
from trading_app.backtest.broker import BacktestBroker
from trading_app.backtest.data import ReplayNews, SimClock
from trading_app.backtest.sources import open_history
from trading_app.pollers import news_event
from trading_app.providers.binding import bound
from workflows_app.services.triggers import TriggerIndex, evaluate_held

PHASE = {"close": 0, "schedule": 1, "news": 1, "open": 2}
MAX_STORED = 2000  # curve points, fills and decisions kept in the artefacts (the metrics use all)


def schedule_events(triggers: list[dict], start: datetime, end: datetime, workflow_id: str) -> list[tuple]:
    out = []
    for position, trig in enumerate(triggers):
        if trig["type"] != "schedule" or trig.get("enabled", True) is False:
            continue
        tz = zoneinfo.ZoneInfo(trig.get("timezone") or "UTC")
        it = croniter(trig["cron"], start.astimezone(tz))
        while (at := it.get_next(datetime)) < end:
            wall = at.strftime("%Y-%m-%dT%H:%M")
            event = {"kind": "schedule", "trigger_id": position, "workflow_id": workflow_id, "cron": trig["cron"],
                     "timezone": str(tz), "wall_clock": wall, "scheduled_for": at.isoformat(), "priority": "normal",
                     "timestamp": at.astimezone(UTC).isoformat(), "id": f"schedule:{position}:{wall}",
                     "trigger": {"id": position, "type": "schedule", "position": position,
                                 "workflow_id": workflow_id}}
            out.append((at.timestamp(), "schedule", "", {"trigger_id": position, "event": event}))
    return out


def news_events(index: TriggerIndex, news: ReplayNews, start: datetime, end: datetime, symbols: list[str]) -> list:
    if not any(kind == "news" for kind, _ in index.by_key):
        return []
    articles = news.source.get_news(symbols, limit=100_000, start=start, end=end)
    delay = news.delay.total_seconds()  # an article reaches the triggers when it became available
    return [(datetime.fromisoformat(a["published_at"]).timestamp() + delay, "news", "", news_event(a))
            for a in articles]


class Replay:
    def __init__(self, backtest, symbols: list[str], start: datetime, end: datetime, interval: str, progress):
        self.bt, self.symbols, self.start, self.end, self.interval = backtest, symbols, start, end, interval
        self.definition = backtest.definition
        self.progress = progress
        self.clock = SimClock(start)
        self.history, self.md = open_history(backtest.arguments.get("data_source") or "simulated", symbols, start,
                                             end, interval, self.clock)
        self.news = ReplayNews(self.clock, float(backtest.arguments.get("news_delay_seconds") or 0))
        self.broker = BacktestBroker(self.md, backtest.account, fills.Costs.of(backtest.arguments["fill_model"]),
                                     self.clock)
        self.index = TriggerIndex.for_definition(str(backtest.workflow_id), self.definition["triggers"])
        self.ticking = {s for kind, s in self.index.by_key if kind == "tick"}
        self.blobs: dict[str, dict] = {}
        self.recent = {s: deque(maxlen=21) for s in symbols}
        self.last_close: dict[str, float] = {}
        self.first_open: dict[str, float] = {}
        self.curve: list[tuple[float, float]] = [(start.timestamp(), float(backtest.account.cash))]
        self.exposed: list[bool] = [False]
        self.decisions: list[dict] = []
        self.made = 0
        self.decision_of: dict[str, int] = {}
        self.held, self.cash = {}, float(backtest.account.cash)
        self.evaluations = 0
        # the prefix of the decisions' execution ids (so of their client order ids): a re-run after a lost
        # worker gets its own, its orders never collide with the lost attempt's
        self.run_id = f"bt-{backtest.pk.hex[:12]}" + (f"r{backtest.attempt}" if backtest.attempt > 1 else "")

    def run(self) -> None:
        timeline = self.history.timeline()
        timeline += schedule_events(self.definition["triggers"], self.start, self.end, str(self.bt.workflow_id))
        timeline += news_events(self.index, self.news, self.start, self.end, self.symbols)
        timeline.sort(key=lambda e: (e[0], PHASE[e[1]], e[2]))
        done, beat = 0, time.monotonic()
        with bound(market_data=self.md, news=self.news, broker=self.broker):
            for ts, group in groupby(timeline, key=lambda e: e[0]):
                self.clock.move(ts)
                with transaction.atomic():  # one commit per simulated instant, not one per order and fill
                    done += self._instant(list(group))
                if time.monotonic() - beat > 1.0:
                    self.progress(done, self.made)
                    beat = time.monotonic()
        self.progress(done, self.made)

    def _instant(self, events: list[tuple]) -> int:
        firings, closed, dirty = [], 0, False
        for _, phase, symbol, item in events:
            if phase == "close":
                closed += 1
                dirty |= bool(self.broker.on_close(symbol, item))
                self.last_close[symbol] = item.close
                self.recent[symbol].append((item.close, item.volume))
                if symbol in self.ticking or "" in self.ticking:
                    self.evaluations += 1
                    firings += evaluate_held(self.index, [self._tick(symbol, item.end)], self.blobs)
            elif phase == "schedule":
                firings.append(item)
            elif phase == "news":
                firings += evaluate_held(self.index, [item], self.blobs)
        for firing in firings:
            dirty |= self._decide(firing)
        if dirty:
            self.held, self.cash = self.broker.positions_and_cash()
        if closed:
            self._mark()
        for _, phase, symbol, item in events:
            if phase == "open":
                self.first_open.setdefault(symbol, item.open)
                if self.broker.on_open(symbol, item):
                    self.held, self.cash = self.broker.positions_and_cash()
        return closed

    def _tick(self, symbol: str, ts: float) -> dict:
        """The poller's tick event (``pollers.market_event``'s fields) from the last 21 bars."""
        rows = list(self.recent[symbol])
        price, volume = rows[-1]
        stamp = datetime.fromtimestamp(ts, UTC).isoformat()
        event = {"kind": "tick", "symbol": symbol, "price": round(price, 4), "volume": volume, "timestamp": stamp,
                 "ts": ts, "source": "market_data", "ingest_source": "market_data", "id": f"{symbol}:{stamp}"}
        if len(rows) > 1:
            event["avg_volume"] = round(sum(v for _, v in rows[:-1]) / (len(rows) - 1), 2)
        rets = [math.log(b[0] / a[0]) for a, b in zip(rows, rows[1:], strict=False) if a[0] > 0 and b[0] > 0]
        if len(rets) >= 5:
            event["realised_vol"] = round(math.sqrt(sum(r * r for r in rets) / len(rets) * 252 * 390), 6)
        return event

    def _decide(self, firing: dict) -> bool:
        if self.made >= int(conf.get("NEXUS_BACKTEST_MAX_DECISIONS")):
            return False
        self.made += 1
        n, event = self.made, firing["event"]
        self.broker.mark_to_market()
        result = decisions.run(self.definition, execution_id=f"{self.run_id}-{n}",
                               workflow_id=str(self.bt.workflow_id), owner_id=self.bt.owner_id,
                               input_data=decisions.input_for(firing))
        orders = [a for a in result["audit"] if a["event"] in ("order_submitted", "order_resolved")]
        for order in orders:
            self.decision_of[order.get("client_order_id") or ""] = n
        if len(self.decisions) < MAX_STORED:
            trig = event.get("trigger") or {}
            self.decisions.append({
                "n": n, "at": self.clock.now.isoformat(), "trigger": {"type": trig.get("type"),
                                                                      "position": trig.get("position"),
                                                                      "detail": event.get("detail") or {}},
                "symbols": decisions.input_for(firing).get("symbols"), "steps": result["steps"],
                "error": result["error"], "orders": [o.get("client_order_id") for o in orders]})
        return bool(orders)

    def _mark(self) -> None:
        value = sum(q * self.last_close.get(s) if s in self.last_close else q * self.md.latest_price(s)
                    for s, q in self.held.items())
        self.curve.append((self.clock.now.timestamp(), self.cash + value))
        self.exposed.append(bool(self.held))
