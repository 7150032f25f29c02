"""Everything trading plugs into the engine (called from TradingAppConfig.ready())."""
from __future__ import annotations

# trading_app.operations adds trading's operations to the engine's operation catalogue as it is imported.
from trading_app import errors, operations, saga, steps  # noqa: F401
from trading_app.providers import cache as provider_cache
from workflows_app.registry import RetryPolicy, registry

BROKER_RETRY = RetryPolicy(max_retries=3, backoff=2.0, backoff_max=60.0, jitter=True)
DATA_RETRY = RetryPolicy(max_retries=4, backoff=1.0, backoff_max=60.0, jitter=True)

# name: (handler, params model, queue, retry, timeout, action, description)
STEP_TYPES = {
    "news_analysis": (steps.news_analysis, steps.NewsAnalysisParams, "workflows", DATA_RETRY, 60, False,
                      "Fetch news for the symbols and score it with VADER + finance lexicon."),
    "technical_analysis": (steps.technical_analysis, steps.TechnicalAnalysisParams, "workflows", DATA_RETRY, 60,
                           False, "RSI, MACD and more per symbol (stockstats; vectorised for many symbols)."),
    "signal_generation": (steps.signal_generation, steps.SignalParams, "workflows", DATA_RETRY, 30, False,
                          "BUY/SELL/HOLD: score = weighted sentiment (0.4), RSI (0.2) and MACD (0.4) in [-1, 1]; "
                          "RSI read the standard way (overbought > 70 weighs against buying; rsi_reading: "
                          "momentum for the other way); BUY/SELL when |score| >= threshold."),
    "trade_execution": (steps.trade_execution, steps.TradeParams, "trading", BROKER_RETRY, 120, False,
                        "Risk-sized bracket order for each actionable signal (idempotent client_order_id)."),
    "market_scan": (steps.market_scan, steps.MarketScanParams, "workflows", DATA_RETRY, 120, False,
                    "Rank a universe by momentum / volume / RSI; outputs `symbols` for later steps."),
    "risk_check": (steps.risk_check, steps.RiskCheckParams, "trading", BROKER_RETRY, 60, False,
                   "Per-symbol, gross and net exposure against limits; breaches."),
    "hedge": (steps.hedge, steps.HedgeParams, "trading", BROKER_RETRY, 120, False,
              "Offset net long exposure (inverse ETF or reduce positions)."),
    "stop_loss_management": (steps.stop_loss_management, steps.StopLossParams, "trading", BROKER_RETRY, 120, False,
                             "Attach, tighten or trail stop-losses on open positions."),
    "position_sizing": (steps.position_sizing, steps.PositionSizingParams, "trading", BROKER_RETRY, 60, False,
                        "Shares to trade so that the loss to the stop stays within risk_limit x equity."),
    "reserve_funds": (saga.reserve_funds, saga.ReserveFundsParams, "trading", BROKER_RETRY, 60, False,
                      "Saga: set cash aside (compensate: release_funds)."),
    "release_funds": (saga.release_funds, steps.Params, "trading", BROKER_RETRY, 60, False,
                      "Saga compensation of reserve_funds."),
    "place_order": (saga.place_order, saga.PlaceOrderParams, "trading", BROKER_RETRY, 120, False,
                    "Saga: submit an order from the reservation (compensate: cancel_order)."),
    "cancel_order": (saga.cancel_order, steps.Params, "trading", BROKER_RETRY, 120, False,
                     "Saga compensation of place_order: cancel, or flatten a filled order."),
    "update_portfolio": (saga.update_portfolio, saga.UpdatePortfolioParams, "trading", BROKER_RETRY, 60, False,
                         "Saga: book the order in the portfolio journal (compensate: revert_portfolio)."),
    "revert_portfolio": (saga.revert_portfolio, steps.Params, "trading", BROKER_RETRY, 60, False,
                         "Saga compensation of update_portfolio."),
    "send_notification": (saga.send_notification, saga.NotificationParams, "workflows", DATA_RETRY, 30, False,
                          "Saga: record a notification (compensate: send_failure_alert)."),
    "send_failure_alert": (saga.send_failure_alert, steps.Params, "workflows", DATA_RETRY, 30, False,
                           "Saga compensation of send_notification."),
    # actions for `conditional` steps (default params must work)
    "immediate_hedge": (saga.immediate_hedge, steps.Params, "trading", BROKER_RETRY, 120, True,
                        "Action: hedge with default params."),
    "alert_user": (saga.alert_user, saga.AlertParams, "workflows", DATA_RETRY, 30, True,
                   "Action: record and log an alert with the context's summary."),
    "analyze": (saga.analyze, saga.AnalyzeParams, "workflows", DATA_RETRY, 120, True,
                "Action: news + technicals + signal for the context's symbols."),
    "queue_for_execution": (saga.queue_for_execution, saga.QueueForExecutionParams, "workflows", DATA_RETRY, 30,
                            True, "Action: send the context's signal to the trading-signals queue."),
    "trade": (saga.trade, steps.Params, "trading", BROKER_RETRY, 120, True,
              "Action: analyze if needed, then trade_execution with default params."),
}


def trades_executed(since=None) -> int:
    from trading_app.models import Order

    qs = Order.objects.filter(status__in=("filled", "partially_filled"))
    if since is not None:
        qs = qs.filter(filled_at__gte=since)
    return qs.count()


def register_all() -> None:
    for name, (handler, model, queue, retry, timeout, action, description) in STEP_TYPES.items():
        registry.register_step_type(name, handler, params_model=model, queue=queue, retry=retry, timeout=timeout,
                                    action=action, description=description)
    if errors.classify not in registry.error_classifiers:
        registry.register_error_classifier(errors.classify)
    registry.register_counter("trades_executed", trades_executed)
    registry.register_counter("provider_cache_hits", provider_cache.cache_hits)
    registry.register_counter("provider_cache_misses", provider_cache.cache_misses)
    if hasattr(registry, "register_health_check"):
        registry.register_health_check("trading", trading_health)
    install_beat_jobs()


def beat_jobs() -> dict:
    """Trading housekeeping on beat (periods in seconds, from settings / environment)."""
    from trading_app import conf

    return {
        "nexus-trading-process-open-orders": {"task": "nexus.trading.process_open_orders",
                                              "schedule": float(conf.get("NEXUS_PAPER_PROCESS_SECONDS"))},
        "nexus-trading-sync-broker-orders": {"task": "nexus.trading.sync_broker_orders",
                                             "schedule": float(conf.get("NEXUS_BROKER_SYNC_SECONDS"))},
        "nexus-trading-snapshot-account": {"task": "nexus.trading.snapshot_account",
                                           "schedule": float(conf.get("NEXUS_ACCOUNT_SNAPSHOT_SECONDS"))},
    }


def install_beat_jobs() -> None:
    try:
        from workflows_app.eventing import install_beat_jobs as install
    except ImportError:  # pragma: no cover - an engine without beat-job installation
        return
    install(beat_jobs())


def trading_health() -> dict:
    """/health/ part: the trading mode (paper / alpaca-paper / live), providers and the kill switch."""
    from trading_app.conf import trading_mode

    return {"ok": True, **trading_mode()}
