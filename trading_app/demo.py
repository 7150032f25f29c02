"""Demo mode: a simulated world eventful enough that `make run` shows every scenario in its first minute.

Switched on by ``NEXUS_DEMO=true`` (a setting, from the environment; default false). Then
``load_examples`` also calls ``load_demo()``, which creates four small demo workflows and two
django-celery-beat entries: ``nexus-demo-tick`` (``nexus.trading.demo_tick`` every 5 s) and
``nexus-demo-dead-letters`` (the real dead-letter job, every 10 s instead of every minute).
With the switch off, ``load_examples`` disables those entries again.

Nothing is faked. The tick only does what a busy market and a busy user would do:

* it injects events into the simulator (a 3 % price jump on one of the ten example symbols, a
  volume spike and a VIX spike, a breaking Reuters headline) and publishes the simulator's current
  readings as ``tick`` events through the real ingestion path (the minute-bar poller sees nothing
  new while the exchange is closed; these ticks keep flowing day and night), then runs the real
  news poller, so the example workflows' price_change, volume_spike, volatility, news_sentiment and
  breaking_news triggers fire through the real evaluators;
* it starts executions of the demo workflows (owner-less, ``metadata.account = "demo"``: they trade on
  the demo's own paper account, never on a user's), whose steps are real step types that really fail
  or succeed: ``demo_flaky_quote`` is a quote from the simulator behind a provider that answers
  HTTP 429 to the first ``fail_attempts`` calls of an execution (a retry, or a ``rate_limit``
  dead letter that the policy redrives) and refuses unlisted symbols (``invalid_symbol``,
  discarded); ``demo_broker_call`` is the paper account behind a simulated broker outage window
  (HTTP 503), protected by a circuit breaker with compressed timings; the demo saga's last step is
  an order the paper broker refuses (insufficient buying power), so the saga compensates.

One round takes ``CYCLE`` ticks (60 s):

| s  | what |
|----|------|
| 0  | jump +3 % on a symbol (rotating through the ten), AAPL volume x10 for 30 s, VIX x2.2 for 30 s; broker outage for 18 s; protected trader runs every tick until 35 s |
| 5  | breaking Reuters headline, news poll |
| 10 | dead letters: an unlisted symbol (discarded) and a provider that stays rate-limited (redriven) |
| 15 | a saga that succeeds (fills an order; every ``SAGA_SUCCESS_EVERY`` rounds) |
| 20 | a provider 429 retried once |
| 30 | the injections are removed (conditions stop holding, so the next round's moves are new edges) |
| 40 | a saga whose last order the broker rejects: compensations in reverse order |
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from celery import shared_task
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from pydantic import Field

from trading_app import accounts, conf
from trading_app.pollers import active_triggers, poll_news
from trading_app.providers import get_market_data, simulated
from trading_app.steps.common import Params
from trading_app.symbols import validate_simulated
from trading_app.triggers import MARKET_TYPES
from workflows_app import operations
from workflows_app.circuit import redis_client
from workflows_app.errors import OperationError, TransientStepError
from workflows_app.models import Workflow
from workflows_app.registry import RetryPolicy, StepContext, StepType
from workflows_app.services import events

log = logging.getLogger("nexus.trading.demo")

TICK_SECONDS = 5
CYCLE = 12  # ticks per round: 60 s
SAGA_SUCCESS_EVERY = 10  # rounds: the successful saga buys ~2 % of equity, so not every minute
TICK_KEY = "nexus:demo:tick"
OUTAGE_KEY = "nexus:demo:broker-outage"
OUTAGE_SECONDS = 18
JUMP = 0.03
VIX_MULTIPLIER = 2.2
JUMP_SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "UNH"]
HEADLINES = [
    ("{c} beats earnings estimates and raises guidance, shares surge to a record high", "earnings"),
    ("{c} wins FDA approval for breakthrough treatment, stock soars", "FDA"),
    ("{c} agrees to a bullish acquisition, shares jump as analysts cheer", "acquisition"),
]
PERIODIC_TASKS = {
    "nexus-demo-tick": ("nexus.trading.demo_tick", TICK_SECONDS),
    "nexus-demo-dead-letters": ("nexus.maintenance.process_dead_letters", 10),
}
CIRCUIT = {"failure_threshold": 3, "timeout_duration": 30, "reset_timeout": 15}

DEMO_WORKFLOWS: list[dict] = [
    {
        "name": "demo-provider-retry",
        "description": "Demo: the quote provider answers HTTP 429 once; the engine retries with backoff",
        "steps": [{"name": "fetch_quote", "type": "demo_flaky_quote", "params": {"fail_attempts": 1}}],
    },
    {
        "name": "demo-dead-letters",
        "description": "Demo: an unlisted symbol (dead letter, discarded) or a provider that stays rate-limited "
                       "(dead letter, redriven by the policy)",
        "steps": [{"name": "fetch_quote", "type": "demo_flaky_quote", "params": {"fail_attempts": 2},
                   "retry": {"max_retries": 1, "backoff": 1, "backoff_max": 2}}],
    },
    {
        "name": "demo-protected-trader",
        "description": "Demo: protected-trader with compressed breaker timings; the broker has outage windows",
        "steps": [
            {"name": "check_circuit", "type": "circuit_breaker", "params": CIRCUIT},
            {"name": "execute_if_open", "type": "conditional", "condition": "circuit_status == 'closed'",
             "actions": ["demo_broker_call"]},
        ],
    },
    {
        "name": "demo-trading-saga",
        "description": "Demo: trading-saga; with oversized_hedge the broker rejects the last order and every "
                       "completed step is compensated in reverse order",
        "steps": [
            {"name": "reserve_funds", "compensate": "release_funds", "params": {"amount": 2000}},
            {"name": "place_order", "compensate": "cancel_order"},
            {"name": "update_portfolio", "compensate": "revert_portfolio"},
            {"name": "send_notification", "compensate": "send_failure_alert"},
            {"name": "place_hedge_leg", "type": "place_order", "condition": "oversized_hedge",
             "params": {"symbol": "SPY", "qty": 1000000}},
        ],
    },
]


def enabled() -> bool:
    return bool(conf.get("NEXUS_DEMO", False))


# --- demo step types ------------------------------------------------------------------------------
class FlakyQuoteParams(Params):
    symbol: str | None = Field(None, description="Default: the context's `symbol`, else AAPL.")
    fail_attempts: int = Field(1, ge=0, le=10, description="The first N calls of an execution get HTTP 429.")


def demo_flaky_quote(ctx: StepContext) -> dict:
    """A quote from the simulated market behind a provider that rate-limits the first calls."""
    p: FlakyQuoteParams = ctx.params
    symbol = validate_simulated(p.symbol or (ctx.context or {}).get("symbol") or "AAPL")  # unlisted: invalid_symbol
    if ctx.attempt <= p.fail_attempts:
        raise TransientStepError(f"demo quote provider: HTTP 429 Too Many Requests (call {ctx.attempt} of the "
                                 f"{p.fail_attempts} it refuses)", error_class="rate_limit")
    price = float(get_market_data(True).latest_price(symbol))
    return {"symbol": symbol, "price": price, "attempt": ctx.attempt, "provider": "simulated"}


def demo_broker_call(ctx: StepContext) -> dict:
    """The paper account, behind a simulated broker that is down while the outage window is open."""
    ttl = redis_client().ttl(OUTAGE_KEY)
    if ttl and ttl > 0:
        raise TransientStepError(f"demo broker outage: HTTP 503 Service Unavailable (back in {ttl} s)",
                                 error_class="server_error")
    account = accounts.broker_for(ctx).get_account()  # the demo workflows trade on the demo account
    return {"broker": "paper", "account": account.get("account"), "equity": account.get("equity"),
            "cash": account.get("cash"), "reachable": True}


# Declared always (definitions naming them stay valid); the demo itself runs only with NEXUS_DEMO on.
STEP_TYPES = (
    StepType(name="demo_flaky_quote", handler=demo_flaky_quote, params_model=FlakyQuoteParams,
             retry=RetryPolicy(max_retries=3, backoff=1.0, backoff_max=5.0), timeout=30,
             description="Demo: a simulated quote behind a provider that answers 429 first."),
    StepType(name="demo_broker_call", handler=demo_broker_call, params_model=Params, queue="trading",
             retry=RetryPolicy(max_retries=0), timeout=30, action=True,
             description="Demo: the paper account behind a broker with outage windows."),
)


# --- setup ----------------------------------------------------------------------------------------
def load_demo(*, owner=None) -> dict:
    """Create the demo workflows that are missing and enable the demo's beat entries (idempotent)."""
    accounts.demo_account()
    created = []
    for definition in DEMO_WORKFLOWS:
        existing = Workflow.objects.filter(name=definition["name"], owner=owner).first()  # names are per owner
        if existing is None:
            operations.workflow_create(**definition, metadata={"account": accounts.DEMO}, user=owner)
            created.append(definition["name"])
        elif (existing.metadata or {}).get("account") != accounts.DEMO and existing.owner_id is None:
            # made before demo accounts existed: move it onto the demo account
            operations.workflow_update(workflow_id=str(existing.id), updates={"metadata": {
                **(existing.metadata or {}), "account": accounts.DEMO}})
    for name, (task, seconds) in PERIODIC_TASKS.items():
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.update_or_create(name=name, defaults={
            "task": task, "interval": interval, "crontab": None, "solar": None, "clocked": None, "enabled": True,
            "one_off": False, "expire_seconds": seconds, "description": "NEXUS_DEMO (trading_app/demo.py)"})
    return {"demo": True, "created": created, "beat": sorted(PERIODIC_TASKS)}


def sync_demo(*, owner=None) -> dict:
    """load_demo() when NEXUS_DEMO is on; otherwise switch the demo's beat entries off."""
    if enabled():
        return load_demo(owner=owner)
    for task in PeriodicTask.objects.filter(name__in=list(PERIODIC_TASKS), enabled=True):
        task.enabled = False
        task.save(update_fields=["enabled"])  # save() (not update()) so a running beat notices
    return {"demo": False}


# --- the tick -------------------------------------------------------------------------------------
def _start(name: str, input_data: dict) -> str | None:
    try:
        return operations.workflow_execute(workflow_id=name, input_data={"test_mode": True, **input_data},
                                           trigger="demo")["execution_id"]
    except OperationError as exc:  # deleted or paused by the user: the rest of the demo goes on
        log.info("demo: %s not started: %s", name, exc.message)
        return None


def publish_ticks(md=None, tag: str = "") -> int:
    """The simulator's current price, last-minute volume (vs its 20-minute average) and VIX for
    every symbol an active market trigger watches, as tick events through the events queue."""
    md = md or simulated.SimulatedMarketData()
    symbols = sorted(set(active_triggers(MARKET_TYPES).exclude(symbol="").values_list("symbol", flat=True)))
    if not symbols:
        return 0
    now = simulated.sim_now()
    vix = float(md.vix(at=now))
    batch = []
    for symbol in symbols:
        try:
            sizes = [t["size"] for t in md.ticks(symbol, count=21 * 60, start=now - timedelta(minutes=21))]
            price = float(md.latest_price(symbol, at=now))
        except Exception as exc:  # noqa: BLE001 - an unlisted symbol in a trigger must not stop the others
            log.info("demo: no tick for %s: %s", symbol, exc)
            continue
        minutes = [sum(sizes[i:i + 60]) for i in range(0, len(sizes), 60)]
        stamp = datetime.now(UTC).replace(microsecond=0)
        batch.append(events.make_event("tick", {
            "symbol": symbol, "price": round(price, 4), "volume": float(minutes[-1]),
            "avg_volume": round(sum(minutes[:-1]) / max(len(minutes) - 1, 1), 2), "vix": vix,
            "timestamp": stamp.isoformat(), "ts": stamp.timestamp()}, source="simulator",
            event_id=f"demo:{symbol}:{stamp.isoformat()}{tag}"))
    if batch:
        events.ingest_many(batch)
    return len(batch)


def tick() -> dict:
    """One demo tick (see the module docstring for the round)."""
    if not enabled():
        return {"demo": False}
    client = redis_client()
    n = int(client.incr(TICK_KEY)) - 1
    rnd, phase = divmod(n, CYCLE)
    now = simulated.sim_now()
    symbol = JUMP_SYMBOLS[rnd % len(JUMP_SYMBOLS)]
    done: dict = {"round": rnd, "phase": phase, "at": phase * TICK_SECONDS}
    simulated_feed = conf.provider_name("market_data") == "simulated"
    if phase == 0 and simulated_feed:
        done["baseline_ticks"] = publish_ticks(tag=":before")  # the price the jump is measured against
        simulated.inject_jump(symbol, JUMP, at=now)
        simulated.inject_volume_spike("AAPL", 10.0, at=now, duration=30)
        # from a week back, so the VIX close is raised even while the exchange is closed
        simulated.set_volatility_regime("VIX", VIX_MULTIPLIER, start=now - timedelta(days=7), end=now + timedelta(seconds=30))
        done["injected"] = {"jump": [symbol, JUMP], "volume_spike": ["AAPL", 10.0], "vix_regime": VIX_MULTIPLIER}
    if phase == 0:
        client.set(OUTAGE_KEY, 1, ex=OUTAGE_SECONDS)
        done["broker_outage"] = OUTAGE_SECONDS
    if phase == 1 and conf.provider_name("news") == "simulated":
        company = simulated.COMPANIES.get(symbol, symbol)
        headline = HEADLINES[rnd % len(HEADLINES)][0].format(c=company)
        simulated.inject_headline(f"BREAKING: {headline}", [symbol], source="Reuters", breaking=True, at=now,
                                  summary=f"{company} (simulated demo headline)")
        done["headline"] = headline
        done["news_poll"] = poll_news()
    if phase == 6 and simulated_feed:
        for name in sorted({symbol, "AAPL", "VIX"}):  # back to the walk: the next round's spikes are new edges
            simulated.clear_injections(name)
        done["cleared"] = sorted({symbol, "AAPL", "VIX"})
    if simulated_feed:
        done["ticks"] = publish_ticks()
    started = {}
    if phase <= 7:
        started["protected"] = _start("demo-protected-trader", {})
    if phase == 2:
        started["invalid_symbol"] = _start("demo-dead-letters", {"symbol": "ZZZZ"})
        started["rate_limited"] = _start("demo-dead-letters", {"symbol": symbol})
    if phase == 3 and rnd % SAGA_SUCCESS_EVERY == 0:
        started["saga"] = _start("demo-trading-saga", {"symbol": symbol, "oversized_hedge": False})
    if phase == 4:
        started["retry"] = _start("demo-provider-retry", {"symbol": symbol})
    if phase == 8:
        started["saga_rejected"] = _start("demo-trading-saga", {"symbol": symbol, "oversized_hedge": True})
    done["started"] = started
    return done


@shared_task(name="nexus.trading.demo_tick", max_retries=0, acks_late=False, ignore_result=True, time_limit=30,
             soft_time_limit=25)
def demo_tick() -> dict:
    """Beat (every TICK_SECONDS, only with NEXUS_DEMO on): one demo tick. No retries: the next tick comes."""
    return tick()
