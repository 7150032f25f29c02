"""The dashboard's P&L and positions panel (registered into the engine's registry)."""
from __future__ import annotations

from trading_app.models import AccountSnapshot
from trading_app.paper import PaperBroker


def pnl_panel(since) -> dict:
    """Paper account figures and positions marked at the last price; equity series from snapshots."""
    broker = PaperBroker()
    account = broker.get_account()
    positions = broker.get_positions()
    unrealized = sum(p["unrealized_pnl"] for p in positions)
    snapshots = AccountSnapshot.objects.filter(taken_at__gte=since).order_by("taken_at").values_list("taken_at", "equity")
    return {
        "title": "P&L and positions (paper)",
        "metrics": {"equity": round(account["equity"], 2), "cash": round(account["cash"], 2),
                    "realized_pnl": round(account["realized_pnl"], 2), "unrealized_pnl": round(unrealized, 2),
                    "commissions": round(account["total_commission"], 2)},
        "columns": ["symbol", "qty", "avg_price", "last_price", "market_value", "unrealized_pnl"],
        "rows": [[p["symbol"], p["qty"], p["avg_entry_price"], p["last_price"], round(p["market_value"], 2),
                  round(p["unrealized_pnl"], 2)] for p in positions],
        "series": [{"t": t.isoformat(), "value": float(v)} for t, v in snapshots[:500]],
    }


def register() -> None:
    from workflows_app.registry import registry

    registry.register_dashboard_panel("trading", pnl_panel)
