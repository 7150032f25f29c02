"""Start, run and read backtests (the operations and the task call these; they add no logic).

``start`` validates everything before anything is stored (the range and its ceilings, the
overrides applied to a copy of the current version and validated as ``workflow_update`` would,
steps a replay can run, the symbols), then creates the run's account and its ``Backtest`` row in
one transaction and sends the task on commit. ``run`` is the task's body.
"""
from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from trading_app import conf
from trading_app.backtest import decisions, metrics, sources
from trading_app.backtest.arguments import PERIODS_PER_YEAR, check_range
from trading_app.backtest.broker import new_account
from trading_app.backtest.data import check_history
from trading_app.backtest.record import Backtest
from trading_app.providers.simulated._clock import seeded
from workflows_app import definitions
from workflows_app.errors import OperationError

log = logging.getLogger("nexus.trading.backtest")
RUN_TASK = "nexus.trading.run_backtest"


def _refuse(field: str, message: str) -> OperationError:
    return OperationError("INVALID_INPUT_DATA", f"{field}: {message}" if not message.startswith(field) else message,
                          {"field": field})


def workflow_symbols(definition: dict) -> list[str]:
    """The symbols the workflow's triggers and steps name, in order."""
    found: list[str] = []
    for item in [*definition.get("triggers", []), *[s.get("params") or {} for s in definition.get("steps", [])]]:
        for value in [item.get("symbol"), *(item.get("symbols") or [])]:
            if isinstance(value, str) and value.strip() and value.strip().upper() not in found:
                found.append(value.strip().upper())
    return found


def prepare(workflow, args) -> tuple[dict, list[str]]:
    """(the definition to replay, the symbols), or a field-named refusal."""
    try:
        check_range(args.start, args.end, args.interval)
    except ValueError as exc:
        raise _refuse("end", str(exc)) from None
    if args.end > datetime.now(UTC):
        raise _refuse("end", "end must not be in the future")
    if args.data_source == "simulated":
        check_history(args.start)
    definition = dict(workflow.current_version.definition)
    if args.overrides:
        try:
            raw, _ = definitions.apply_updates(definition, args.overrides)
            definition = definitions.validate_definition(raw, workflow_id=str(workflow.id), owner=workflow.owner)
        except OperationError as exc:
            raise OperationError("INVALID_INPUT_DATA", f"overrides: {exc.message}",
                                 {"field": "overrides", **(exc.details or {})}) from None
    unsupported = decisions.unsupported_steps(definition)
    if unsupported:
        raise _refuse("workflow_id", f"workflow_id: a backtest cannot run {', '.join(unsupported)}")
    replayable = [t for t in definition["triggers"] if t["type"] != "manual" and t["type"] != "webhook"]
    if not replayable:
        raise _refuse("workflow_id", "workflow_id: the workflow has no schedule, market or news trigger to replay")
    symbols = args.symbols or workflow_symbols(definition)
    if not symbols:
        raise _refuse("symbols", "symbols: the workflow names no symbols; give symbols")
    ceiling = int(conf.get("NEXUS_BACKTEST_MAX_SYMBOLS"))
    if len(symbols) > ceiling:
        raise _refuse("symbols", f"symbols: {len(symbols)} symbols, over NEXUS_BACKTEST_MAX_SYMBOLS={ceiling}")
    sources.check_source(args.data_source, symbols, args.start, args.end, args.interval)
    return definition, symbols


def start(workflow, args, owner) -> Backtest:
    definition, symbols = prepare(workflow, args)
    arguments = {"start": args.start.isoformat(), "end": args.end.isoformat(), "interval": args.interval,
                 "data_source": args.data_source, "symbols": symbols, "initial_cash": args.initial_cash,
                 "fill_model": args.fill_model,
                 "news_delay_seconds": args.news_delay_seconds,
                 "seed": args.seed if args.seed is not None else int(conf.get("NEXUS_SIM_SEED")),
                 "overrides": args.overrides}
    if args.sweep:
        from trading_app.backtest import sweeps

        return sweeps.start(workflow, args, owner, arguments, prepare)
    with transaction.atomic():
        bt = Backtest(workflow=workflow, version=workflow.current_version, owner=owner, arguments=arguments,
                      definition=definition)
        bt.account = new_account(bt.pk, args.initial_cash, args.fill_model)
        bt.save()
        transaction.on_commit(lambda: _send(bt.pk))
    return bt


def _send(pk) -> None:
    from nexus_project.celery import app

    app.send_task(RUN_TASK, args=[str(pk)], queue="trading")


class Superseded(Exception):
    """This replay's row was taken over (its heartbeat went stale and ``recovery`` re-ran it)."""


def run(backtest_id: str) -> dict:
    """The task's body: replay, then store metrics and artefacts (a failure is stored, not raised).

    Every write to the row after the claim is conditioned on this attempt still owning it (status
    running, same ``attempt``): a replay that ``recovery`` gave up for lost and re-ran stops at its
    next heartbeat and stores nothing."""
    from trading_app.backtest.replay import Replay

    now = timezone.now()
    claimed = Backtest.objects.filter(pk=backtest_id, status=Backtest.Status.QUEUED).update(
        status=Backtest.Status.RUNNING, started_at=now, heartbeat_at=now)
    if not claimed:
        return {"skipped": True}  # redelivered after it ran (or is running elsewhere)
    bt = Backtest.objects.select_related("account").get(pk=backtest_id)
    mine = Backtest.objects.filter(pk=bt.pk, status=Backtest.Status.RUNNING, attempt=bt.attempt)
    a = bt.arguments

    def progress(done: int, made: int) -> None:
        if not mine.update(bars_done=done, decisions=made, heartbeat_at=timezone.now()):
            raise Superseded(f"backtest {bt.pk} attempt {bt.attempt} was re-run elsewhere")

    try:
        with seeded(int(a["seed"])):
            replay = Replay(bt, a["symbols"], datetime.fromisoformat(a["start"]), datetime.fromisoformat(a["end"]),
                            a["interval"], progress)
            mine.update(bars_total=replay.history.bars_total(), heartbeat_at=timezone.now())
            replay.run()
        out = results_of(replay)
    except Superseded:
        log.warning("backtest %s attempt %s stopped: superseded", backtest_id, bt.attempt)
        return {"status": "superseded"}
    except Exception as exc:  # noqa: BLE001 - the run fails, with its reason, and the row says so
        log.exception("backtest %s failed", backtest_id)
        mine.update(status=Backtest.Status.FAILED, finished_at=timezone.now(),
                    error=f"{type(exc).__name__}: {exc}"[:2000] + "\n" + traceback.format_exc()[-2000:])
        return {"status": "failed", **_summarise_parent(bt)}
    mine.update(status=Backtest.Status.SUCCEEDED, finished_at=timezone.now(), metrics=out["metrics"],
                artefacts=out["artefacts"], decisions=replay.made)
    return {"status": "succeeded", "metrics": out["metrics"], **_summarise_parent(bt)}


def _summarise_parent(bt: Backtest) -> dict:
    """A sweep point that finishes last summarises its sweep: the chord's callback may have run already
    (a point lost with its worker counts as done for the chord, then ``recovery`` re-runs it)."""
    if bt.parent_id is None:
        return {}
    from trading_app.backtest import sweeps

    return {"sweep": sweeps.summarize(str(bt.parent_id))}


def results_of(replay) -> dict:
    equity = [v for _, v in replay.curve]
    bench = metrics.benchmark(replay.first_open, replay.last_close)
    summary = metrics.summary(equity, replay.exposed, replay.broker.fills, PERIODS_PER_YEAR[replay.interval], bench)
    summary.update(decisions=replay.made, trigger_evaluations=replay.evaluations)
    step = max(1, -(-len(replay.curve) // 2000))  # at most 2000 points stored
    dd = metrics.drawdown_series(equity)
    curve = [{"t": datetime.fromtimestamp(t, UTC).isoformat(), "equity": round(v, 2), "drawdown": round(d, 6)}
             for (t, v), d in list(zip(replay.curve, dd, strict=True))[::step]]
    trades = [{**f, "decision": replay.decision_of.get(f["client_order_id"]) or
               replay.decision_of.get(f["client_order_id"].rsplit("-", 1)[0])}
              for f in replay.broker.fills[:2000]]
    return {"metrics": summary, "artefacts": {"equity_curve": curve, "trades": trades,
                                              "decisions": replay.decisions[:500],
                                              "truncated": {"fills": len(replay.broker.fills) > 2000,
                                                            "decisions": replay.made > len(replay.decisions)}}}
