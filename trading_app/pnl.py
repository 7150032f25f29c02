"""Money at a glance: P&L per account and per workflow (strategy), the trades, open positions with
their exit legs (selectors over the paper ledger's records; Decimal throughout).

An account's figures are the ledger's own (``BrokerAccount.realized_pnl`` / ``total_commission``,
average cost over the whole account, unrealised at each position's last mark). A workflow's are its
own fills replayed with the ledger's average-cost rule, one book per (account, workflow, symbol):
when one workflow alone trades a symbol in an account the two agree to the cent; when several trade
the same symbol, each is measured against its own entries. An order belongs to the workflow of the
execution that placed it (``Order.execution_id``; bracket legs inherit their parent's); an order
with no execution (an operator's, the CLI's) counts as ``(manual)``.

A trade is one round trip of such a book: it opens when the book leaves zero and closes when it
returns to zero (a fill that flips the book closes the trade and opens the next with the remainder;
its fee goes to the closing trade).
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from trading_app.models import BrokerAccount, Fill, Order, Position
from workflows_app.models import Execution
from workflows_app.operations import links

ZERO = Decimal("0")
AVG = Decimal("0.000001")  # the ledger's average-price precision (paper_ledger._move_position)
MANUAL = "(manual)"


def _s(value: Decimal) -> str:
    """A figure of a reply: a string, at the ledger's precision (a millionth), so JSON keeps it exact."""
    return str(value.quantize(AVG))


def execution_url(execution_id: str | None) -> str | None:
    """The page of the execution that placed an order (its execution view): the one place this link is made."""
    if not _is_uuid(execution_id):
        return None
    return links.execution_url(execution_id)


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except (TypeError, ValueError):
        return False


@dataclass
class Trade:
    account: str
    workflow: str
    symbol: str
    side: str  # long / short
    entry_at: datetime
    execution_id: str
    qty: Decimal = ZERO  # shares entered
    open_qty: Decimal = ZERO  # signed, still held
    entry_price: Decimal = ZERO  # average entry
    exit_qty: Decimal = ZERO
    exit_value: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    exit_at: datetime | None = None
    last_price: Decimal | None = None
    executions: list = field(default_factory=list)

    @property
    def exit_price(self) -> Decimal | None:
        return (self.exit_value / self.exit_qty).quantize(Decimal("0.0001")) if self.exit_qty else None

    @property
    def unrealized(self) -> Decimal:
        if not self.open_qty or self.last_price is None:
            return ZERO
        return self.open_qty * (self.last_price - self.entry_price)

    def as_dict(self) -> dict:
        net = self.realized + self.unrealized - self.fees
        return {"account": self.account, "workflow": self.workflow, "symbol": self.symbol, "side": self.side,
                "status": "open" if self.open_qty else "closed", "qty": _s(self.qty),
                "open_qty": _s(self.open_qty), "entry_price": _s(self.entry_price),
                "exit_price": None if self.exit_price is None else _s(self.exit_price),
                "realized_pnl": _s(self.realized), "unrealized_pnl": _s(self.unrealized), "fees": _s(self.fees),
                "net_pnl": _s(net), "entry_at": self.entry_at.isoformat(),
                "exit_at": self.exit_at.isoformat() if self.exit_at else None,
                "execution_id": self.execution_id or None, "execution_url": execution_url(self.execution_id),
                "executions": self.executions[:10]}


class _Book:
    """One (account, workflow, symbol) position replayed fill by fill, as the ledger moves a position."""

    def __init__(self):
        self.qty, self.avg, self.trade = ZERO, ZERO, None

    def apply(self, fill: Fill, key: tuple, execution_id: str, done: list) -> None:
        delta = fill.qty if fill.side == "buy" else -fill.qty
        if self.qty == 0:
            self._open(key, delta, fill, execution_id)
        trade = self.trade
        if execution_id and execution_id not in trade.executions:
            trade.executions.append(execution_id)
        if self.qty == 0 or (self.qty > 0) == (delta > 0):
            new_q = self.qty + delta
            self.avg = ((self.qty * self.avg + delta * fill.price) / new_q).quantize(AVG)
            self.qty = new_q
            trade.qty += abs(delta)
            trade.fees += fill.commission
            trade.entry_price, trade.open_qty = self.avg, self.qty
            return
        closing = min(abs(delta), abs(self.qty))
        sign = Decimal(1) if self.qty > 0 else Decimal(-1)
        trade.realized += closing * (fill.price - self.avg) * sign
        trade.exit_qty += closing
        trade.exit_value += closing * fill.price
        trade.fees += fill.commission
        new_q = self.qty + delta
        if new_q == 0 or (new_q > 0) != (self.qty > 0):
            trade.open_qty, trade.exit_at = ZERO, fill.timestamp
            done.append(trade)
            self.qty, self.avg, self.trade = ZERO, ZERO, None
            if new_q != 0:  # flipped: the remainder opens the next trade at this price
                self._open(key, new_q, fill, execution_id)
                self.qty, self.avg = new_q, fill.price
                self.trade.qty, self.trade.open_qty, self.trade.entry_price = abs(new_q), new_q, fill.price
            return
        self.qty = new_q
        trade.open_qty = new_q

    def _open(self, key: tuple, delta: Decimal, fill: Fill, execution_id: str) -> None:
        self.trade = Trade(account=key[0], workflow=key[1], symbol=key[2], side="long" if delta > 0 else "short",
                           entry_at=fill.timestamp, execution_id=execution_id,
                           executions=[execution_id] if execution_id else [])


def workflow_names(execution_ids) -> dict[str, str]:
    """execution id -> its workflow's name (ids that are not executions are left out)."""
    ids = {str(i) for i in execution_ids if _is_uuid(i)}
    rows = Execution.objects.filter(pk__in=ids).values_list("pk", "workflow__name") if ids else []
    return {str(pk): name for pk, name in rows}


def trades(accounts_qs=None, workflow: str | None = None) -> list[Trade]:
    """Every trade of the accounts (default: all), oldest first; open ones marked at the last price."""
    fills = Fill.objects.select_related("order", "account").order_by("timestamp", "id")
    if accounts_qs is not None:
        fills = fills.filter(account__in=accounts_qs)
    fills = list(fills.filter(account__isnull=False))
    names = workflow_names({f.order.execution_id for f in fills})
    books: dict[tuple, _Book] = defaultdict(_Book)
    done: list[Trade] = []
    for f in fills:
        eid = f.order.execution_id or ""
        key = (f.account.name, names.get(eid, MANUAL), f.symbol)
        if workflow is not None and key[1] != workflow:
            continue
        books[key].apply(f, key, eid, done)
    last = {(p.account.name, p.symbol): p.last_price for p in Position.objects.select_related("account")}
    open_trades = [b.trade for b in books.values() if b.trade is not None]
    for t in open_trades:
        t.last_price = last.get((t.account, t.symbol))
    return sorted(done + open_trades, key=lambda t: t.entry_at)


def by_workflow(all_trades: list[Trade]) -> list[dict]:
    """Realised, unrealised, fees and net P&L per (account, workflow)."""
    sums: dict[tuple, dict] = {}
    for t in all_trades:
        row = sums.setdefault((t.account, t.workflow), {"realized": ZERO, "unrealized": ZERO, "fees": ZERO,
                                                        "closed": 0, "open": 0})
        row["realized"] += t.realized
        row["unrealized"] += t.unrealized
        row["fees"] += t.fees
        row["open" if t.open_qty else "closed"] += 1
    return [{"account": a, "workflow": w, "realized_pnl": _s(r["realized"]), "unrealized_pnl": _s(r["unrealized"]),
             "fees": _s(r["fees"]), "net_pnl": _s(r["realized"] + r["unrealized"] - r["fees"]),
             "closed_trades": r["closed"], "open_trades": r["open"]} for (a, w), r in sorted(sums.items())]


def by_account(accounts_qs) -> list[dict]:
    """The ledger's figures per account: realised, unrealised at the last marks, fees, equity."""
    rows = []
    for acct in accounts_qs.order_by("name"):
        positions = list(Position.objects.filter(account=acct).exclude(qty=0))
        unrealized = sum((p.unrealized_pnl for p in positions), ZERO)
        value = sum((p.market_value for p in positions), ZERO)
        rows.append({"account": acct.name, "broker": acct.broker, "realized_pnl": _s(acct.realized_pnl),
                     "unrealized_pnl": _s(unrealized), "fees": _s(acct.total_commission),
                     "net_pnl": _s(acct.realized_pnl + unrealized - acct.total_commission),
                     "equity": _s(acct.cash + value), "starting_cash": _s(acct.starting_cash),
                     "open_positions": len(positions)})
    return rows


def open_positions(accounts_qs) -> list[dict]:
    """Each open position with its exit legs: open stop orders (bracket stop-loss legs, protective
    stops) and open limit orders on the closing side (take-profit legs)."""
    rows = []
    for p in Position.objects.filter(account__in=accounts_qs).exclude(qty=0).select_related("account")[:200]:
        exit_side = "sell" if p.qty > 0 else "buy"
        legs = Order.objects.filter(account=p.account, symbol=p.symbol, side=exit_side,
                                    status__in=Order.OPEN_STATUSES).order_by("created_at")[:20]
        stops = [_s(o.stop_price) for o in legs if o.order_type == "stop" and o.stop_price is not None]
        targets = [_s(o.limit_price) for o in legs if o.order_type == "limit" and o.limit_price is not None]
        rows.append({"account": p.account.name, "symbol": p.symbol, "qty": _s(p.qty),
                     "avg_entry_price": _s(p.avg_entry_price), "last_price": _s(p.last_price),
                     "unrealized_pnl": _s(p.unrealized_pnl), "stops": stops, "targets": targets})
    return rows


def summary(accounts_qs=None, workflow: str | None = None, limit: int = 50) -> dict:
    """Per-account and per-workflow P&L, the newest ``limit`` trades and the open positions."""
    accounts_qs = BrokerAccount.objects.all() if accounts_qs is None else accounts_qs
    all_trades = trades(accounts_qs, workflow)
    newest = sorted(all_trades, key=lambda t: t.exit_at or t.entry_at, reverse=True)[:limit]
    return {"accounts": by_account(accounts_qs), "workflows": by_workflow(all_trades),
            "trades": [t.as_dict() for t in newest], "trade_count": len(all_trades),
            "open_positions": open_positions(accounts_qs)}
