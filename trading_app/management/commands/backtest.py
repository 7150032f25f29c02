"""CLI face of the backtests (calls the catalogue's operations; a worker on the ``trading`` queue runs them).

    python manage.py backtest NAME --start 2024-01-02 --end 2024-12-31 [--interval 1d] [--symbols AAPL,MSFT]
        [--data-source simulated|stored|alpaca]
        [--initial-cash 100000] [--fill-model '{"slippage_bps": 10}'] [--seed 42]
        [--overrides '{"steps[2].params.threshold": 0.8}'] [--wait] [--json]
    python manage.py backtest --status ID [--json]
    python manage.py backtest --results ID [--json]
"""
from __future__ import annotations

import time

import trading_app.operations  # noqa: F401 - registers the backtest operations in the catalogue
from workflows_app.management.commands._base import OperationCommand, parse_json_option


class Command(OperationCommand):
    help = "Backtest a workflow over history (workflow_backtest), or show a backtest's status or results."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("workflow", nargs="?", help="A workflow's name or uuid.")
        parser.add_argument("--start")
        parser.add_argument("--end")
        parser.add_argument("--interval", choices=["1d", "1h", "1m"])
        parser.add_argument("--data-source", choices=["simulated", "stored", "alpaca"])
        parser.add_argument("--symbols", help="Comma-separated (default: those the workflow names).")
        parser.add_argument("--initial-cash", type=float)
        parser.add_argument("--fill-model", help="JSON object (or @file).")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--overrides", help="JSON object of path updates (or @file).")
        parser.add_argument("--wait", action="store_true", help="Wait for the run to finish and print its metrics.")
        parser.add_argument("--status", metavar="ID", help="Show a backtest's status.")
        parser.add_argument("--results", metavar="ID", help="Show a finished backtest's results.")

    def handle(self, *args, **o):
        if o["status"] or o["results"]:
            name = "backtest_status" if o["status"] else "backtest_results"
            reply = self.call(name, backtest_id=o["status"] or o["results"])
            return self.emit(reply, self.human)
        reply = self.call("workflow_backtest", workflow_id=o["workflow"], start=o["start"], end=o["end"],
                          interval=o["interval"], data_source=o["data_source"], initial_cash=o["initial_cash"], seed=o["seed"],
                          symbols=[s for s in (o["symbols"] or "").split(",") if s.strip()] or None,
                          fill_model=parse_json_option(o["fill_model"], "--fill-model"),
                          overrides=parse_json_option(o["overrides"], "--overrides"))
        if o["wait"]:
            while reply["status"] not in ("succeeded", "failed"):
                time.sleep(1.0)
                reply = self.call("backtest_status", backtest_id=reply["backtest_id"])
                self.progress(f"{reply['status']}: {reply['bars_done']}/{reply['bars_total']} bars, "
                              f"eta {reply['eta_seconds']} s")
        self.emit(reply, self.human)

    def human(self, r: dict) -> None:
        self.stdout.write(f"backtest {r['backtest_id']}: {r['status']} ({r['bars_done']}/{r['bars_total']} bars, "
                          f"{r['decisions']} decisions)")
        for key, value in (r.get("metrics") or {}).items():
            self.stdout.write(f"  {key}: {value}")
        if r.get("error"):
            self.stdout.write(f"  error: {r['error']}")
