"""Trading housekeeping tasks (thin: they call the broker services). Routed to the `trading` queue
by name (``nexus.trading.*``). Suggested beat entries: process_open_orders every 15 s during market
hours (the paper broker's limit/stop orders and bracket exits fire on the current price),
sync_broker_orders every 30 s (Alpaca fills), snapshot_account every 15 min."""
from __future__ import annotations

from celery import shared_task

from trading_app import accounts, conf
from trading_app.models import BrokerAccount, Order
from trading_app.paper import PaperBroker
from workflows_app.errors import TransientStepError

TASK = {"acks_late": True, "reject_on_worker_lost": True, "time_limit": 120, "soft_time_limit": 100,
        "autoretry_for": (TransientStepError,), "retry_backoff": 2, "retry_backoff_max": 60, "retry_jitter": True,
        "max_retries": 3}


@shared_task(name="nexus.trading.process_open_orders", **TASK)
def process_open_orders() -> dict:
    """Paper broker: check every open order (limits, stops, bracket legs) against the current price."""
    fills = PaperBroker().process_open_orders()
    return {"fills": len(fills), "detail": fills}


@shared_task(name="nexus.trading.sync_broker_orders", **TASK)
def sync_broker_orders() -> dict:
    """Alpaca: refresh the status / fills of orders still open in our records."""
    if conf.provider_name("broker") != "alpaca":
        return {"synced": 0, "reason": "broker is not alpaca"}
    broker = accounts.get_broker()
    synced = 0
    for coid in Order.objects.filter(broker="alpaca", status__in=Order.OPEN_STATUSES).values_list(
            "client_order_id", flat=True)[:200]:
        if broker.get_order_by_client_id(coid) is not None:
            synced += 1
    return {"synced": synced}


@shared_task(name="nexus.trading.snapshot_account", **TASK)
def snapshot_account() -> dict:
    """A snapshot of every paper account (marked to market), and of the Alpaca account when configured."""
    taken = {}
    for acct in BrokerAccount.objects.filter(broker="paper"):
        broker = accounts.broker_for_account(acct)
        broker.mark_to_market()
        taken[acct.name] = broker.snapshot(reason="scheduled")
    if conf.provider_name("broker") == "alpaca":
        taken[accounts.ALPACA] = accounts.broker_for_account(accounts.alpaca_account()).snapshot(reason="scheduled")
    return {"accounts": taken}


@shared_task(name="nexus.trading.risk_sweep", **TASK)
def risk_sweep() -> dict:
    """The risk governor takes a reading of every account (a breach is seen between orders too)."""
    from trading_app.governor import service

    return {"accounts": service.sweep(accounts.broker_for_account)}


@shared_task(name="nexus.trading.run_backtest", acks_late=True, reject_on_worker_lost=True, max_retries=0,
             time_limit=int(conf.get("NEXUS_BACKTEST_TIME_LIMIT")) + 30,
             soft_time_limit=int(conf.get("NEXUS_BACKTEST_TIME_LIMIT")))
def run_backtest(backtest_id: str) -> dict:
    """Replay one backtest (trading_app.backtest.service.run): claimed once, its outcome stored on its row."""
    from trading_app.backtest import service

    return {k: v for k, v in service.run(backtest_id).items() if k != "metrics"}


@shared_task(name="nexus.maintenance.reconcile_backtests", acks_late=True, max_retries=0, time_limit=120,
             soft_time_limit=100)
def reconcile_backtests() -> dict:
    """Backtests whose worker was lost: re-run or failed (trading_app.backtest.recovery). On the
    maintenance queue (its name): never waiting behind the backtests it recovers."""
    from trading_app.backtest import recovery

    return recovery.reconcile()


@shared_task(name="nexus.trading.summarize_sweep", acks_late=True, max_retries=0, time_limit=120, soft_time_limit=100)
def summarize_sweep(parent_id: str) -> dict:
    """A sweep's chord callback: rank its points (trading_app.backtest.sweeps.summarize)."""
    from trading_app.backtest import sweeps

    return sweeps.summarize(parent_id)
