"""The specification's workflows and queues, as written there, plus its practice exercises.

`load_examples()` creates whatever is missing (idempotent: an existing workflow of the same
name is left as it is) and returns what it did. `make run` calls it on every start.
"""
from __future__ import annotations

from trading_app import accounts, demo
from workflows_app import operations, queues
from workflows_app.errors import OperationError
from workflows_app.models import Workflow

TEN_SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "UNH"]

MARKET_TRIGGERS = [
    {"type": "price_change", "symbol": "AAPL", "threshold": 0.02, "direction": "any"},
    {"type": "volume_spike", "symbol": "AAPL", "multiplier": 2.0},
    {"type": "volatility", "symbol": "AAPL", "vix_threshold": 30},
]
NEWS_TRIGGERS = [
    {"type": "news_sentiment", "keywords": ["earnings", "FDA", "acquisition"], "sentiment_threshold": 0.7},
    {"type": "breaking_news", "sources": ["Reuters", "Bloomberg"], "priority": "high"},
]
# The specification's 9:00 and 15:30 New York schedules, on NYSE trading days only (no holiday firings).
SCHEDULE_TRIGGERS = [
    {"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York", "calendar": "XNYS"},
    {"type": "schedule", "cron": "30 15 * * 1-5", "timezone": "America/New_York", "calendar": "XNYS"},
]
CIRCUIT_BREAKER = {"failure_threshold": 5, "timeout_duration": 60, "reset_timeout": 300}

EXAMPLES: list[dict] = [
    {
        "name": "alpaca-trading-workflow",
        "description": "Automated trading workflow with news analysis",
        "steps": [
            {"name": "analyze_news", "type": "news_analysis", "params": {"symbols": ["AAPL", "MSFT"]}},
            {"name": "market_analysis", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
            {"name": "generate_signals", "type": "signal_generation", "params": {"threshold": 0.7}},
            {"name": "execute_trades", "type": "trade_execution", "params": {"risk_limit": 0.02}},
        ],
        "triggers": [{"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York", "calendar": "XNYS"}],
    },
    {
        "name": "event-driven-trader",
        "description": "Responds to multiple market events",
        "steps": [
            {"name": "event_classifier", "type": "classify", "params": {"categories": ["urgent", "normal", "ignore"]}},
            {"name": "urgent_handler", "type": "conditional", "condition": "category == 'urgent'",
             "actions": ["immediate_hedge", "alert_user"]},
            {"name": "normal_handler", "type": "conditional", "condition": "category == 'normal'",
             "actions": ["analyze", "queue_for_execution"]},
        ],
        "triggers": [*MARKET_TRIGGERS, *NEWS_TRIGGERS, *SCHEDULE_TRIGGERS],
    },
    {
        "name": "protected-trader",
        "description": "Trades only while the circuit breaker lets it",
        "steps": [
            {"name": "check_circuit", "type": "circuit_breaker", "params": CIRCUIT_BREAKER},
            {"name": "execute_if_open", "type": "conditional", "condition": "circuit_status == 'closed'",
             "actions": ["trade"]},
        ],
    },
    {
        "name": "trading-saga",
        "description": "Distributed transaction: every completed step is undone if a later one fails",
        "steps": [
            {"name": "reserve_funds", "compensate": "release_funds"},
            {"name": "place_order", "compensate": "cancel_order"},
            {"name": "update_portfolio", "compensate": "revert_portfolio"},
            {"name": "send_notification", "compensate": "send_failure_alert"},
        ],
    },
    # Workflow composition: the three children first, then the parent that runs them.
    {
        "name": "scanner-workflow",
        "description": "Scan the universe for the most active movers",
        "steps": [{"name": "scan", "type": "market_scan", "params": {"symbols": TEN_SYMBOLS, "top_n": 3}}],
    },
    {
        "name": "analyzer-workflow",
        "description": "News and indicators for the scanned symbols, then a signal",
        "steps": [
            {"name": "news", "type": "news_analysis"},
            {"name": "technicals", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
            {"name": "generate_signal", "type": "signal_generation", "params": {"threshold": 0.7}},
        ],
    },
    {
        "name": "executor-workflow",
        "description": "Execute the best signal within the risk limit",
        "steps": [{"name": "execute", "type": "trade_execution", "params": {"risk_limit": 0.02}}],
    },
    {
        "name": "master-trader",
        "description": "Composition of scanner, analyzer and executor workflows",
        "steps": [
            {"name": "market_scan", "type": "subprocess", "workflow_id": "scanner-workflow"},
            {"name": "analyze_opportunities", "type": "subprocess", "workflow_id": "analyzer-workflow"},
            {"name": "execute_best", "type": "subprocess", "workflow_id": "executor-workflow"},
        ],
    },
    # Practice exercise 1: monitors 10 symbols, triggers on a 2% move, news for context, acts.
    {
        "name": "multi-symbol-workflow",
        "description": "Exercise 1: 10 symbols, a 2% move triggers news + technicals, then a trade",
        "steps": [
            {"name": "news_context", "type": "news_analysis"},
            {"name": "technicals", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
            {"name": "decide", "type": "signal_generation", "params": {"threshold": 0.7}},
            {"name": "act", "type": "trade_execution", "params": {"risk_limit": 0.01}},
        ],
        "triggers": [{"type": "price_change", "symbol": s, "threshold": 0.02, "direction": "any"} for s in TEN_SYMBOLS],
    },
    # Practice exercise 2: exposure monitoring, automatic hedging, position sizing, stop losses.
    {
        "name": "risk-management-workflow",
        "description": "Exercise 2: exposure monitoring, automatic hedging, position sizing, stop-loss management",
        "steps": [
            # risk_check reads the account's risk governor too: governor_state, governor_headroom
            {"name": "monitor_exposure", "type": "risk_check"},
            # a hedge adds exposure: only while the governor lets new exposure in (stop management
            # runs whatever the state: the governor lets protective stops through even when halted)
            {"name": "auto_hedge", "type": "hedge", "condition": "breaches and governor_state == 'active'"},
            {"name": "resize_positions", "type": "position_sizing", "params": {"risk_limit": 0.01},
             "condition": "governor_state != 'halted'"},
            {"name": "manage_stops", "type": "stop_loss_management", "params": {"mode": "trail"}},
        ],
        "triggers": [
            {"type": "schedule", "cron": "*/15 9-16 * * 1-5", "timezone": "America/New_York"},
            {"type": "volatility", "symbol": "SPY", "vix_threshold": 30},
        ],
    },
    # Practice exercise 3: breaking news, classified by importance, signals, performance tracking.
    {
        "name": "news-driven-workflow",
        "description": "Exercise 3: breaking news, classified by importance, signals and performance tracking",
        "steps": [
            {"name": "classify_importance", "type": "classify", "params": {"categories": ["high", "medium", "low"]}},
            {"name": "news", "type": "news_analysis", "condition": "category != 'low'"},
            {"name": "generate_signal", "type": "signal_generation", "params": {"threshold": 0.7},
             "condition": "category != 'low'"},
            {"name": "trade_on_signal", "type": "trade_execution", "params": {"risk_limit": 0.01},
             "condition": "category == 'high' and signal in ['BUY', 'SELL']"},
            {"name": "track_performance", "type": "send_notification",
             "params": {"subject": "news-driven result", "message": "signal {signal}, confidence {confidence}"}},
        ],
        "triggers": [{"type": "breaking_news", "sources": ["Reuters", "Bloomberg"], "priority": "high"}],
    },
]


def load_examples(*, owner=None) -> dict:
    """Create the example workflows and queues that do not exist yet."""
    # In demo mode the demo's injections fire these workflows' triggers: owner-less, they trade on the
    # demo's own account (otherwise on the house account); never on a user's account.
    metadata = {"account": "demo"} if owner is None and demo.enabled() else {}
    if metadata:
        accounts.demo_account()
    created, kept = [], []
    for definition in EXAMPLES:
        if Workflow.objects.filter(name=definition["name"], owner=owner).exists():  # names are per owner
            kept.append(definition["name"])
            continue
        try:
            operations.workflow_create(**definition, metadata=metadata, user=owner)
        except OperationError as exc:  # an example that does not validate is a bug: say which
            raise OperationError(exc.code, f"example {definition['name']}: {exc.message}", exc.details) from exc
        created.append(definition["name"])
    queue_names = [q.name for q in queues.ensure_default_queues()]
    demo_state = demo.sync_demo(owner=owner)  # NEXUS_DEMO on: the demo workflows and beat entries; off: disabled
    return {"success": True, "created": created, "kept": kept, "queues": queue_names, "demo": demo_state}
