"""The dashboard's money panels (declared in trading_app.plugin). The dashboard is for staff, who may
see every account: P&L per account and per workflow, the trades, open positions with their stops and
targets, the equity curve and candles with fills (Plotly figures: ``charts``), and the kill switch
and each account's risk governor with guarded toggles (``actions``: the dashboard POSTs them, with
its CSRF token and after a confirmation, to the REST face of the kill-switch / risk-reset operations)."""
from __future__ import annotations

from decimal import Decimal

from django.urls import reverse

from trading_app import accounts, charts, killswitch, pnl
from trading_app.governor import service
from trading_app.models import BrokerAccount

MAX_TRADES = 50
_last: list = [(None, None)]  # (since, figures) of the last poll: both panels get the same ``since``


def _figures(since) -> dict:
    """pnl.summary of the paper accounts, computed once per poll (the ledger replayed once, not twice)."""
    seen, figures = _last[0]  # one tuple, swapped whole: safe across threads
    if seen != since or figures is None:
        figures = pnl.summary(BrokerAccount.objects.filter(broker="paper"), limit=MAX_TRADES)
        _last[0] = (since, figures)
    return figures


def _money(value) -> str:
    """Money as the page shows it: two decimals, thousands separated (the exact figures: ``pnl_summary``)."""
    return f"{Decimal(str(value)):,.2f}"


def _qty(value) -> str:
    return f"{Decimal(value).normalize():f}"


def pnl_panel(since) -> dict:
    """P&L per account (the ledger's) and per workflow, the equity curve; the kill switch and governor."""
    accounts.house_account()  # shown from the first look, as the trading faces create it
    accts = BrokerAccount.objects.filter(broker="paper")
    figures = _figures(since)
    governor = {a.name: service.brief(a) for a in accts}
    rows = [[r["account"], _money(r["equity"]), _money(r["realized_pnl"]), _money(r["unrealized_pnl"]),
             _money(r["fees"]), _money(r["net_pnl"]), r["open_positions"], governor[r["account"]]["state"]]
            for r in figures["accounts"]]
    totals = {k: _money(sum(Decimal(r[k]) for r in figures["accounts"]))
              for k in ("equity", "realized_pnl", "unrealized_pnl", "fees", "net_pnl")}
    switch = killswitch.kill_switch_state()
    return {
        "title": "Money: P&L per account and per workflow (paper)",
        "wide": True,
        "metrics": {**totals, "kill_switch": "ACTIVE" if switch["active"] else "off"},
        "columns": ["account", "equity", "realized_pnl", "unrealized_pnl", "fees", "net_pnl", "positions",
                    "risk_governor"],
        "rows": rows,
        "tables": [{"name": "workflows", "title": "P&L per workflow (strategy)",
                    "columns": ["account", "workflow", "realized_pnl", "unrealized_pnl", "fees", "net_pnl",
                                "closed trades", "open trades"],
                    "rows": [[w["account"], w["workflow"], _money(w["realized_pnl"]), _money(w["unrealized_pnl"]),
                              _money(w["fees"]), _money(w["net_pnl"]), w["closed_trades"], w["open_trades"]]
                             for w in figures["workflows"]]}],
        "charts": [{"name": "equity", "title": "Equity", "wide": True, "figure": charts.equity_figure(since)}],
        "actions": _actions(switch, governor),
        "notes": [f"Kill switch {'ACTIVE' if switch['active'] else 'off'}"
                  + (f" ({switch['reason']})" if switch["reason"] else "")
                  + (f", set by {switch['updated_by']}" if switch["updated_by"] else "")]
                 + [f"Risk governor of {name}: {g['state']}" + (f" ({g['reason']})" if g["reason"] else "")
                    for name, g in governor.items() if g["state"] != "active"],
    }


def _actions(switch: dict, governor: dict) -> list[dict]:
    """The guarded toggles: a reason and a confirmation each; the operations decide who may."""
    url = reverse("trading-kill-switch")
    if switch["active"]:
        actions = [{"name": "kill-switch-off", "label": "Resume trading (kill switch off)", "url": url,
                    "body": {"active": False}, "confirm": "Switch the kill switch OFF? New orders are accepted again."}]
    else:
        actions = [{"name": "kill-switch-on", "label": "Halt trading (kill switch on)", "url": url, "danger": True,
                    "body": {"active": True}, "confirm": "Switch the kill switch ON? Every new order is refused."}]
    for name, g in governor.items():
        if g["state"] != "active":
            actions.append({"name": f"risk-reset-{name}", "label": f"Reset risk governor of {name}",
                            "url": reverse("trading-risk-reset"), "body": {"account": name}, "reason_required": True,
                            "confirm": f"Reset the risk governor of {name} to active?"})
    return actions


def trades_panel(since) -> dict:
    """The newest trades (with the execution that made each), open positions and candles with fills."""
    figures = _figures(since)
    trade_rows = [[t["account"], t["workflow"], t["symbol"], t["side"], t["status"], t["entry_at"][:19].replace(
        "T", " "), _money(t["entry_price"]), None if t["exit_price"] is None else _money(t["exit_price"]),
        _qty(t["qty"]), _money(t["realized_pnl"]) if t["status"] == "closed" else _money(t["unrealized_pnl"]),
        _money(t["fees"]), _money(t["net_pnl"]),
        {"text": t["execution_id"][:8], "href": t["execution_url"]} if t["execution_url"] else "-"]
        for t in figures["trades"]]
    position_rows = [[p["account"], p["symbol"], _qty(p["qty"]), _money(p["avg_entry_price"]), _money(p["last_price"]),
                      _money(p["unrealized_pnl"]), ", ".join(map(_money, p["stops"])) or "none",
                      ", ".join(map(_money, p["targets"])) or "none"]
                     for p in figures["open_positions"]]
    return {
        "title": f"Trades ({figures['trade_count']}; the newest {MAX_TRADES}) and open positions",
        "wide": True,
        "tables": [
            {"name": "trades", "title": "Trades",
             "columns": ["account", "workflow", "symbol", "side", "status", "entry at", "entry", "exit", "qty",
                         "P&L (open: unrealised)", "fees", "net", "execution"], "rows": trade_rows},
            {"name": "positions", "title": "Open positions",
             "columns": ["account", "symbol", "qty", "avg entry", "last", "unrealized_pnl", "stop", "target"],
             "rows": position_rows},
        ],
        "charts": charts.candle_figures(since),
    }
