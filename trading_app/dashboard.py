"""The dashboard's P&L panel (declared in trading_app.plugin). The dashboard is for staff,
who may see every account: one row per paper account, plus the house account's figures and series."""
from __future__ import annotations

from trading_app import accounts
from trading_app.governor import service
from trading_app.models import AccountSnapshot, BrokerAccount
from trading_app.paper import PaperBroker


def pnl_panel(since) -> dict:
    """Each paper account's equity, cash and P&L marked at the last price; equity series of the house account."""
    house = accounts.house_account()
    rows, totals = [], {}
    for acct in BrokerAccount.objects.filter(broker="paper").prefetch_related("owners").order_by("name"):
        broker = PaperBroker(account=acct)
        account = broker.get_account()
        positions = broker.get_positions()
        unrealized = sum(p["unrealized_pnl"] for p in positions)
        if acct.pk == house.pk:
            totals = {"equity": round(account["equity"], 2), "cash": round(account["cash"], 2),
                      "realized_pnl": round(account["realized_pnl"], 2), "unrealized_pnl": round(unrealized, 2),
                      "commissions": round(account["total_commission"], 2)}
        rows.append([acct.name, acct.kind, ", ".join(sorted(u.username for u in acct.owners.all())) or "-",
                     round(account["equity"], 2), round(account["cash"], 2), round(account["realized_pnl"], 2),
                     round(unrealized, 2), len(positions), "halted" if acct.halted else "active",
                     service.brief(acct)["state"]])
    snapshots = AccountSnapshot.objects.filter(account=house, taken_at__gte=since).order_by(
        "taken_at").values_list("taken_at", "equity")
    return {
        "title": "P&L per account (paper)",
        "metrics": totals,
        "columns": ["account", "kind", "owners", "equity", "cash", "realized_pnl", "unrealized_pnl", "positions",
                    "state", "risk_governor"],
        "rows": rows,
        "series": [{"t": t.isoformat(), "value": float(v)} for t, v in snapshots[:500]],
    }

