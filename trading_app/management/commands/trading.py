"""CLI face of the trading operations: account, positions, orders and the kill switch.

    python manage.py trading account [--json]
    python manage.py trading positions [--json]
    python manage.py trading orders [--status open] [--symbol AAPL] [--limit 20] [--json]
    python manage.py trading kill-switch [--on | --off] [--reason "..."] [--json]
"""
from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand
from django.core.serializers.json import DjangoJSONEncoder

from trading_app import operations
from workflows_app.errors import OperationError


class Command(BaseCommand):
    help = "Trading account, positions, orders and the kill switch (calls trading_app.operations)."

    def add_arguments(self, parser):
        parser.add_argument("what", choices=["account", "positions", "orders", "kill-switch"])
        parser.add_argument("--json", action="store_true", help="Print the operation's reply as JSON.")
        parser.add_argument("--status")
        parser.add_argument("--symbol")
        parser.add_argument("--limit", type=int, default=20)
        parser.add_argument("--account", help="A broker account by name (default: the house account).")
        switch = parser.add_mutually_exclusive_group()
        switch.add_argument("--on", action="store_true", help="Activate the kill switch.")
        switch.add_argument("--off", action="store_true", help="Deactivate the kill switch.")
        parser.add_argument("--reason", default="")

    def handle(self, *args, **opts):
        try:
            reply = self._call(opts)
        except OperationError as exc:
            if opts["json"]:
                self.stdout.write(json.dumps(exc.as_dict(), indent=2))
            else:
                self.stderr.write(f"error {exc.code}: {exc.message}")
            sys.exit(1)
        if opts["json"]:
            self.stdout.write(json.dumps(reply, cls=DjangoJSONEncoder, indent=2))
            return
        self._human(opts["what"], reply)

    def _call(self, opts) -> dict:
        what = opts["what"]
        if what == "account":
            return operations.trading_account(account=opts["account"])
        if what == "positions":
            return operations.trading_positions(account=opts["account"])
        if what == "orders":
            return operations.trading_orders(status=opts["status"], symbol=opts["symbol"], limit=opts["limit"],
                                             account=opts["account"])
        if opts["on"] or opts["off"]:
            return operations.kill_switch_set(active=bool(opts["on"]), reason=opts["reason"], account=opts["account"])
        return operations.kill_switch_status()

    def _human(self, what: str, reply: dict) -> None:
        w = self.stdout.write
        if what == "account":
            a = reply["account"]
            w(f"{a['broker']} account {a['name']}: equity {a['equity']:.2f}, cash {a['cash']:.2f}, "
              f"positions {a['positions_value']:.2f}; mode {reply['mode']['mode']}")
        elif what == "positions":
            for p in reply["positions"] or []:
                w(f"{p['symbol']:<6} {p['qty']:>10g} @ {p['avg_entry_price']:.2f}  last {p['last_price']:.2f}  "
                  f"P&L {p['unrealized_pnl']:.2f}")
            w(f"{reply['count']} position(s)")
        elif what == "orders":
            for o in reply["orders"]:
                w(f"{o['created_at']}  {o['side']:<4} {o['qty']:>8g} {o['symbol']:<6} {o['type']:<6} {o['status']:<10} "
                  f"{o['filled_avg_price'] or ''}  {o['client_order_id']}")
            w(f"{reply['count']} of {reply['total']} order(s)")
        else:
            ks = reply["kill_switch"]
            w(f"kill switch: {'ACTIVE' if ks['active'] else 'off'}" + (f" ({ks['reason']})" if ks["reason"] else ""))
