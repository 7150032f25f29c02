"""Everything trading plugs into the engine, as one declaration (``TradingAppConfig.plugin``).

Step types are declared next to their handlers (``STEP_TYPES`` in the ``steps`` modules, adaptive, demo),
trigger types and their event kinds next to their evaluators (``triggers``), the pollers' beat jobs
next to the pollers (``pollers``); this module collects
them and adds trading's words the engine must not know: its named queues (``trading-signals``,
the ``queue_send`` default, and ``risk-alerts``), the ``invalid_symbol`` dead letters it discards,
its error classifier, counters, /health/ part, dashboard panel and beat jobs.
"""
from __future__ import annotations

from trading_app import accounts, adaptive, conf, dashboard, demo, errors, killswitch, pollers, triggers
from trading_app.governor import service
from trading_app.models import Order
from trading_app.providers import cache as provider_cache
from trading_app.steps import actions, analysis, notifications, orders, protection, saga
from workflows_app.registry import BeatJob, Plugin


def trades_executed(since=None) -> int:
    qs = Order.objects.filter(status__in=("filled", "partially_filled")).exclude(broker="backtest")  # simulated
    if since is not None:
        qs = qs.filter(filled_at__gte=since)
    return qs.count()


def trading_health() -> dict:
    """/health/ part: the trading mode (paper / alpaca-paper / live), providers, the kill switch and
    each account's risk governor state (from the database: no broker call)."""
    governor = {}
    try:
        for acct in accounts.visible_accounts(None).order_by("name")[:100]:
            row = service.brief(acct)
            governor[acct.name] = {"state": row["state"], "reason": row["reason"] or None}
    except Exception:  # noqa: BLE001 - database not ready (migrate): the database check reports it
        governor = None
    return {"ok": True, **killswitch.trading_mode(), "risk_governor": governor}


PLUGIN = Plugin(
    name="trading_app",
    step_types=(*analysis.STEP_TYPES, *orders.STEP_TYPES, *protection.STEP_TYPES, *saga.STEP_TYPES,
                *notifications.STEP_TYPES, *actions.STEP_TYPES, *adaptive.STEP_TYPES, *demo.STEP_TYPES),
    trigger_types=triggers.TRIGGER_TYPES,
    event_kinds=triggers.EVENT_KINDS,
    error_classifiers=(errors.classify,),
    default_queues={
        "trading-signals": {"description": "Trade signals queued for execution."},
        "risk-alerts": {"description": "Risk alerts for hedging and operators."},
    },
    send_queue="trading-signals",
    discard_classes=("invalid_symbol",),
    counters={"trades_executed": trades_executed, "provider_cache_hits": provider_cache.cache_hits,
              "provider_cache_misses": provider_cache.cache_misses},
    health_checks={"trading": trading_health},
    dashboard_panels={"trading": dashboard.pnl_panel, "trades": dashboard.trades_panel},
    beat_jobs=(
        *pollers.BEAT_JOBS,
        BeatJob("nexus-trading-process-open-orders", "nexus.trading.process_open_orders",
                every=lambda: conf.get("NEXUS_PAPER_PROCESS_SECONDS")),
        BeatJob("nexus-trading-sync-broker-orders", "nexus.trading.sync_broker_orders",
                every=lambda: conf.get("NEXUS_BROKER_SYNC_SECONDS")),
        BeatJob("nexus-trading-risk-sweep", "nexus.trading.risk_sweep",
                every=lambda: conf.get("NEXUS_RISK_SWEEP_SECONDS")),
        BeatJob("nexus-trading-snapshot-account", "nexus.trading.snapshot_account",
                every=lambda: conf.get("NEXUS_ACCOUNT_SNAPSHOT_SECONDS")),
        BeatJob("nexus-trading-reconcile-backtests", "nexus.maintenance.reconcile_backtests",
                every=lambda: conf.get("NEXUS_BACKTEST_RECONCILE_SECONDS")),
    ),
)
