"""Trading settings, read from ``django.conf.settings`` at call time (tests override settings).

App modules never read the environment: ``nexus_project/settings`` does, and hands every
``NEXUS_*`` / ``APCA_*`` / ``NEWSAPI_*`` / ``ALPACA_*`` variable on as a setting of the same name;
``get`` converts it to the type of its default below (``workflows_app.conf.AppSettings``).

| name | default | meaning |
|---|---|---|
| NEXUS_MARKET_DATA_PROVIDER | simulated | simulated / alpaca |
| NEXUS_NEWS_PROVIDER | simulated | simulated / newsapi / alpaca |
| NEXUS_BROKER | paper | paper (built in) / alpaca (Alpaca paper unless live is allowed) |
| APCA_API_KEY_ID, APCA_API_SECRET_KEY | "" | Alpaca keys (market data, news, broker) |
| NEWSAPI_KEY | "" | NewsAPI key |
| ALPACA_PAPER | true | false is one of the two switches needed for live trading |
| NEXUS_ALLOW_LIVE_TRADING | false | the second switch; live trading needs both |
| NEXUS_SIM_SEED | 42 | global seed of the simulated market data and news |
| NEXUS_SIM_NOW | "" | pins the simulator's clock (ISO time), for demos and tests; empty = real time |
| NEXUS_PAPER_STARTING_CASH | 100000 | cash of a new paper account |
| NEXUS_PAPER_SLIPPAGE_BPS | 5 | paper fills: price moved against the order by this many basis points |
| NEXUS_PAPER_COMMISSION_PER_SHARE | 0.005 | paper fills: commission per share |
| NEXUS_PAPER_COMMISSION_MIN | 1.0 | paper fills: minimum commission per fill |
| NEXUS_PAPER_FILL_OUTSIDE_HOURS | true | paper: fill outside market hours at the last price (false: wait for the open) |
| NEXUS_MAX_POSITION_PCT | 0.10 | per-symbol exposure cap, fraction of equity |
| NEXUS_MAX_GROSS_EXPOSURE | 1.0 | gross exposure cap, multiple of equity |
| NEXUS_MAX_RISK_LIMIT | 0.05 | largest `risk_limit` (loss entry->stop, fraction of equity) a step may ask for |
| NEXUS_RISK_MAX_DAILY_LOSS | 0.05 | governor: loss since the day's opening equity, fraction of it |
| NEXUS_RISK_MAX_DRAWDOWN | 0.15 | governor: fall from the equity peak, fraction of the peak |
| NEXUS_RISK_MAX_NET_EXPOSURE | 1.0 | governor: abs(net position value), multiple of equity |
| NEXUS_RISK_MAX_ORDER_NOTIONAL | 50000 | governor: qty x price of one order (currency) |
| NEXUS_RISK_MAX_ORDERS_PER_MINUTE | 30 | governor: orders per account in any 60 s |
| NEXUS_RISK_CONFIRM_READINGS | 2 | governor: consecutive valid breaching readings before a limit latches |
| NEXUS_RISK_WARN_AT | 0.8 | governor: warning event at this fraction of any limit |
| NEXUS_RISK_ACTIONS | "" | governor: what a breach does per limit, e.g. `order_rate=halted,drawdown=reduce_only` |
| NEXUS_RISK_TIMEZONE | America/New_York | governor: the exchange's time zone (XNYS) for the trading day |
| NEXUS_RISK_SWEEP_SECONDS | 60 | beat: the governor takes a reading of every account this often |
| NEXUS_CACHE_TTL_BARS / _INTRADAY / _QUOTE / _NEWS / _CLOCK | 3600 / 60 / 5 / 300 / 30 | provider cache TTLs (s) |
| NEXUS_PROVIDER_RETRY_ATTEMPTS | 1 | in-adapter retries of a 429/503 before raising a transient error |
| NEXUS_PROVIDER_RETRY_MAX_WAIT | 2.0 | longest in-adapter wait (s); longer Retry-After goes to the engine |
| NEXUS_PROVIDER_TIMEOUT | 10 | HTTP timeout (s) for NewsAPI |
| NEXUS_PAPER_PROCESS_SECONDS | 15 | beat: paper broker checks open orders / bracket exits this often |
| NEXUS_BROKER_SYNC_SECONDS | 30 | beat: Alpaca order statuses refreshed this often |
| NEXUS_ACCOUNT_SNAPSHOT_SECONDS | 900 | beat: account snapshot this often |
| NEXUS_MARKET_POLL_SECONDS / NEXUS_NEWS_POLL_SECONDS | 15 / 60 | beat: market-data / news pollers this often |
| NEXUS_NEWS_WATCHLIST | AAPL,MSFT,GOOGL,AMZN,TSLA,NVDA,META,JPM | symbols the news poller asks for when a trigger names none |
| NEXUS_DEMO | false | demo mode (trading_app/demo.py) |
| NEXUS_IMPORT_BARS_MAX_BYTES / _MAX_ROWS | 50000000 / 250000 | `manage.py import_bars`: largest file, most rows |

The NEXUS_MAX_* values are ceilings: a definition (or an account's own limits) may ask for less -
a looser value is refused at create/update time with a field error naming the ceiling - never more;
the order path applies them again at run time (``trading_app.risk.check_order``).
"""
from __future__ import annotations

import logging
from typing import Any

from workflows_app.conf import AppSettings

logger = logging.getLogger("nexus.trading")

DEFAULTS: dict[str, Any] = {
    "NEXUS_MARKET_DATA_PROVIDER": "simulated",
    "NEXUS_NEWS_PROVIDER": "simulated",
    "NEXUS_BROKER": "paper",
    "APCA_API_KEY_ID": "",
    "APCA_API_SECRET_KEY": "",
    "NEWSAPI_KEY": "",
    "ALPACA_PAPER": True,
    "NEXUS_ALLOW_LIVE_TRADING": False,
    "NEXUS_SIM_SEED": 42,
    "NEXUS_SIM_NOW": "",
    "NEXUS_PAPER_STARTING_CASH": 100_000.0,
    "NEXUS_PAPER_SLIPPAGE_BPS": 5.0,
    "NEXUS_PAPER_COMMISSION_PER_SHARE": 0.005,
    "NEXUS_PAPER_COMMISSION_MIN": 1.0,
    "NEXUS_PAPER_FILL_OUTSIDE_HOURS": True,
    "NEXUS_MAX_POSITION_PCT": 0.10,
    "NEXUS_MAX_GROSS_EXPOSURE": 1.0,
    "NEXUS_MAX_RISK_LIMIT": 0.05,
    "NEXUS_RISK_MAX_DAILY_LOSS": 0.05,
    "NEXUS_RISK_MAX_DRAWDOWN": 0.15,
    "NEXUS_RISK_MAX_NET_EXPOSURE": 1.0,
    "NEXUS_RISK_MAX_ORDER_NOTIONAL": 50_000.0,
    "NEXUS_RISK_MAX_ORDERS_PER_MINUTE": 30.0,
    "NEXUS_RISK_CONFIRM_READINGS": 2,
    "NEXUS_RISK_WARN_AT": 0.8,
    "NEXUS_RISK_ACTIONS": "",
    "NEXUS_RISK_TIMEZONE": "America/New_York",
    "NEXUS_RISK_SWEEP_SECONDS": 60.0,
    "NEXUS_CACHE_TTL_BARS": 3600,
    "NEXUS_CACHE_TTL_INTRADAY": 60,
    "NEXUS_CACHE_TTL_QUOTE": 5,
    "NEXUS_CACHE_TTL_NEWS": 300,
    "NEXUS_CACHE_TTL_CLOCK": 30,
    "NEXUS_PROVIDER_RETRY_ATTEMPTS": 1,
    "NEXUS_PROVIDER_RETRY_MAX_WAIT": 2.0,
    "NEXUS_PROVIDER_TIMEOUT": 10.0,
    "NEXUS_PAPER_PROCESS_SECONDS": 15.0,
    "NEXUS_BROKER_SYNC_SECONDS": 30.0,
    "NEXUS_ACCOUNT_SNAPSHOT_SECONDS": 900.0,
    "NEXUS_MARKET_POLL_SECONDS": 15.0,
    "NEXUS_NEWS_POLL_SECONDS": 60.0,
    "NEXUS_NEWS_WATCHLIST": "AAPL,MSFT,GOOGL,AMZN,TSLA,NVDA,META,JPM",
    "NEXUS_DEMO": False,
    # Backtests (trading_app.backtest): ceilings on what one run may replay, and its task's time limit.
    "NEXUS_BACKTEST_MAX_BARS": 100_000,
    "NEXUS_BACKTEST_MAX_SYMBOLS": 20,
    "NEXUS_BACKTEST_MAX_DAYS": 3_660,
    "NEXUS_BACKTEST_MAX_DECISIONS": 5_000,
    "NEXUS_BACKTEST_MAX_SWEEP_POINTS": 64,
    "NEXUS_BACKTEST_TIME_LIMIT": 3_600,
    # A running backtest with no heartbeat for this long lost its worker: it is re-run from scratch on a
    # fresh account (up to NEXUS_BACKTEST_MAX_ATTEMPTS runs in all), then marked failed. Checked every
    # NEXUS_BACKTEST_RECONCILE_SECONDS by a beat job on the maintenance queue.
    "NEXUS_BACKTEST_STALE_SECONDS": 120.0,
    "NEXUS_BACKTEST_MAX_ATTEMPTS": 3,
    "NEXUS_BACKTEST_RECONCILE_SECONDS": 30.0,
    # manage.py import_bars (trading_app.backtest.bar_import): the largest file and row count one import takes.
    "NEXUS_IMPORT_BARS_MAX_BYTES": 50_000_000,
    "NEXUS_IMPORT_BARS_MAX_ROWS": 250_000,
}


trading_settings = AppSettings(DEFAULTS)


def get(name: str, default: Any = None) -> Any:
    """A setting: the Django setting of that name converted to its default's type, else DEFAULTS."""
    return trading_settings.get(name, default)


def alpaca_keys() -> tuple[str, str]:
    return str(get("APCA_API_KEY_ID") or ""), str(get("APCA_API_SECRET_KEY") or "")


def has_alpaca_keys() -> bool:
    key, secret = alpaca_keys()
    return bool(key and secret)


def live_trading_enabled() -> bool:
    """Live (real-money) trading needs BOTH ALPACA_PAPER=false and NEXUS_ALLOW_LIVE_TRADING=true."""
    return (get("ALPACA_PAPER") is False) and (get("NEXUS_ALLOW_LIVE_TRADING") is True)


def provider_name(kind: str, test_mode: bool = False) -> str:
    """The configured provider for kind in {market_data, news, broker}; test mode forces offline ones."""
    if kind == "broker":
        return "paper" if test_mode else str(get("NEXUS_BROKER")).lower()
    key = {"market_data": "NEXUS_MARKET_DATA_PROVIDER", "news": "NEXUS_NEWS_PROVIDER"}[kind]
    return "simulated" if test_mode else str(get(key)).lower()


def trading_mode() -> dict:
    """The configured mode: providers, broker, whether live trading is possible, and warnings
    (``killswitch.trading_mode`` adds the kill switch for /health/)."""
    broker = provider_name("broker")
    live = live_trading_enabled()
    if broker == "alpaca":
        mode = "live" if live else "alpaca-paper"
    else:
        mode = "paper"
    alpaca_paper_setting = get("ALPACA_PAPER")
    info = {
        "mode": mode,
        "broker": broker,
        "market_data_provider": provider_name("market_data"),
        "news_provider": provider_name("news"),
        "live_trading_enabled": live and broker == "alpaca",
        "alpaca_paper": alpaca_paper_setting,
        "allow_live_trading": get("NEXUS_ALLOW_LIVE_TRADING"),
        "alpaca_keys_configured": has_alpaca_keys(),
        "newsapi_key_configured": bool(get("NEWSAPI_KEY")),
    }
    warnings = []
    if alpaca_paper_setting is False and not live:
        warnings.append("ALPACA_PAPER=false ignored: NEXUS_ALLOW_LIVE_TRADING is not true (still paper)")
    if broker == "alpaca" and info["market_data_provider"] == "simulated":
        warnings.append("NEXUS_BROKER=alpaca with simulated market data: orders are sized on simulated prices")
    if warnings:
        info["warning"] = "; ".join(warnings)
    return info


def log_mode() -> None:
    info = trading_mode()
    level = logging.WARNING if info["mode"] == "live" or "warning" in info else logging.INFO
    logger.log(level, "trading mode: %s", info)
