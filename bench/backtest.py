"""Backtest benchmarks (issue 15), each run on a real worker (the ``trading`` queue, one process):

1. one year of daily bars x 10 symbols, the specification's first workflow on its ``0 9 * * 1-5``
   schedule (news, technicals, signals, risk-sized orders): target <= 20 s;
2. one month of 1-minute bars x 10 symbols with ``price_change`` triggers: target <= 60 s; bars/s and
   trigger evaluations/s;
3. a 16-point sweep (4 thresholds x 4 risk limits, six months of daily bars x 2 symbols by default) with 1
   and then 2 worker processes: the speed-up, and how many points ran at once (from the rows' times).

The time is the run's own (the row's started_at to finished_at) and the end-to-end time from the
call to the stored results. Usage: ``python bench/backtest.py [--only daily|minute|sweep]``; the worker's CPU seconds are printed
beside the wall time (the load-independent figure on a shared machine).
"""
from __future__ import annotations

import argparse
import time

from _harness import Worker, configure, database_kind, load_average

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "XOM"]
SPEC_STEPS = [
    {"name": "analyze_news", "type": "news_analysis", "params": {"symbols": SYMBOLS, "store": False}},
    {"name": "market_analysis", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
    {"name": "generate_signals", "type": "signal_generation", "params": {"threshold": 0.3}},
    {"name": "execute_trades", "type": "trade_execution", "params": {"risk_limit": 0.02}},
]


def run(worker: Worker, name: str, steps: list, triggers: list, **arguments) -> dict:
    from trading_app import operations as trading
    from trading_app.backtest.record import Backtest
    from workflows_app import operations

    name = f"{name}-{int(time.time())}"  # the bench database outlives a run
    operations.workflow_create(name=name, steps=steps, triggers=triggers)
    t0, cpu0 = time.monotonic(), worker.cpu_seconds()
    started = trading.workflow_backtest(workflow_id=name, **arguments)
    while not (bt := Backtest.objects.get(pk=started["backtest_id"])).is_final:
        time.sleep(0.2)
    wall, cpu = time.monotonic() - t0, worker.cpu_seconds() - cpu0
    if bt.status != "succeeded":
        raise SystemExit(f"{name} failed: {bt.error}")
    own = (bt.finished_at - bt.started_at).total_seconds()
    from trading_app.models import Order

    orphans = Order.objects.filter(account=bt.account, reject_reason="position already closed").count()
    return {"bars": bt.bars_total, "seconds": own, "end_to_end": wall, "cpu": cpu, "metrics": bt.metrics,
            "orphans_canceled": orphans}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["daily", "minute", "sweep"])
    parser.add_argument("--sweep-start", default="2024-01-01")
    parser.add_argument("--sweep-end", default="2024-07-01", help="6 months by default: points long enough to overlap")
    args = parser.parse_args()
    configure()
    print(f"database {database_kind()}, load {load_average()}")
    if args.only == "sweep":
        return sweep(args.sweep_start, args.sweep_end)
    worker = Worker(concurrency=1, queues="trading", name="bench-backtest")
    try:
        if args.only in (None, "daily"):
            r = run(worker, "bench-bt-daily", SPEC_STEPS,
                    [{"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York"}],
                    start="2024-01-01", end="2025-01-01", interval="1d", symbols=SYMBOLS)
            print(f"load {load_average()}")
            print(f"daily: 1 year x 10 symbols, {r['bars']} bars, {r['metrics']['decisions']} decisions: "
                  f"{r['seconds']:.1f} s (end to end {r['end_to_end']:.1f} s, worker CPU {r['cpu']:.1f} s; target <= 20 s) "
                  f"-> {r['metrics']['decisions'] / r['seconds']:.1f} decisions/s")
            m = r["metrics"]
            print(f"daily results: {m['fills']} fills, final equity {m['final_equity']:,.2f}, "
                  f"Sharpe {m['sharpe']}, max drawdown {m['max_drawdown']}, "
                  f"{r['orphans_canceled']} exit legs cancelled (position already closed)")
        if args.only in (None, "minute"):
            triggers = [{"type": "price_change", "symbol": s, "threshold": 0.004, "window": "15m", "cooldown": 3600}
                        for s in SYMBOLS]
            steps = [{"name": "buy", "type": "trade_execution", "params": {"signal": "BUY", "risk_limit": 0.01}}]
            r = run(worker, "bench-bt-minute", steps, triggers, start="2024-03-01", end="2024-04-01", interval="1m",
                    symbols=SYMBOLS)
            evals = r["metrics"]["trigger_evaluations"]
            print(f"load {load_average()}")
            print(f"minute: 1 month x 10 symbols, {r['bars']} bars, {evals} trigger evaluations, "
                  f"{r['metrics']['decisions']} decisions: {r['seconds']:.1f} s (end to end {r['end_to_end']:.1f} s, "
                  f"worker CPU {r['cpu']:.1f} s; target <= 60 s) -> {r['bars'] / r['seconds']:.0f} bars/s, {evals / r['seconds']:.0f} evaluations/s")
    finally:
        worker.stop()
    print(f"load after: {load_average()}")


def overlap(points: list) -> tuple[int, float]:
    """(the most points running at once, the sum of the points' own run times) from their rows."""
    edges = sorted([(p.started_at, 1) for p in points] + [(p.finished_at, -1) for p in points],
                   key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most, sum((p.finished_at - p.started_at).total_seconds() for p in points)


def sweep(start: str, end: str) -> None:
    """16 points (4 thresholds x 4 risk limits) over ``start``..``end`` of daily bars x 2 symbols, with 1
    and then 2 worker processes (prefetch 1, acks late: a process takes one point at a time)."""
    from trading_app import operations as trading
    from trading_app.backtest.record import Backtest
    from workflows_app import operations

    grid = {"steps[2].params.threshold": [0.2, 0.3, 0.4, 0.5], "steps[3].params.risk_limit": [0.005, 0.01, 0.02, 0.03]}
    steps = [{**SPEC_STEPS[0], "params": {"symbols": ["AAPL", "MSFT"], "store": False}}, *SPEC_STEPS[1:]]
    took = {}
    for processes in (1, 2):
        name = f"bench-bt-sweep-{processes}-{int(time.time())}"
        operations.workflow_create(name=name, steps=steps, triggers=[{"type": "schedule", "cron": "0 9 * * 1-5",
                                                                       "timezone": "America/New_York"}])
        worker = Worker(concurrency=processes, queues="trading", name=f"bench-sweep-{processes}")
        try:
            print(f"load {load_average()}")
            t0, cpu0 = time.monotonic(), worker.cpu_seconds()
            parent = trading.workflow_backtest(workflow_id=name, start=start, end=end, sweep=grid)
            while not (row := Backtest.objects.get(pk=parent["backtest_id"])).is_final:
                time.sleep(0.2)
            took[processes] = time.monotonic() - t0
            cpu = worker.cpu_seconds() - cpu0
        finally:
            worker.stop()
        points = list(row.points.all())
        most, own = overlap(points)
        print(f"sweep {start}..{end}: 16 points ({row.metrics.get('failed_points')} failed, "
              f"{sum(p.decisions for p in points)} decisions), {processes} worker process(es): {took[processes]:.1f} s, "
              f"worker CPU {cpu:.1f} s, points' own time {own:.1f} s, at most {most} point(s) at once "
              f"(load {load_average()})")
    print(f"sweep speed-up 1 -> 2 processes: {took[1] / took[2]:.2f}x")


if __name__ == "__main__":
    main()
