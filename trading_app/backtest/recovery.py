"""Backtests whose worker was lost: detected by their heartbeat, re-run from scratch or failed.

A running replay writes ``heartbeat_at`` with its progress (at least every second). A worker killed
mid-run (OOM, SIGKILL, a host gone) leaves its row ``running`` with a heartbeat that stops: Celery
may redeliver the task, but the claim (queued -> running) refuses it. ``reconcile`` (a beat job on
the maintenance queue, every NEXUS_BACKTEST_RECONCILE_SECONDS) takes each row whose heartbeat is
older than NEXUS_BACKTEST_STALE_SECONDS and

* re-runs it from scratch: a fresh private account (the lost attempt's one and its orders are
  deleted), progress reset, ``attempt`` + 1, status ``queued``, the task sent again. The replay is
  deterministic (seeded data, simulated clock), so the re-run gives the result the lost run would have;
* or, once NEXUS_BACKTEST_MAX_ATTEMPTS runs were lost, marks it ``failed`` with the reason.

A sweep whose points are all final but whose summary never ran (the chord counted a lost point as
done) is summarised here too.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from trading_app import conf
from trading_app.backtest import sweeps
from trading_app.backtest.broker import new_account
from trading_app.backtest.record import Backtest
from trading_app.models import Fill, Order

log = logging.getLogger("nexus.trading.backtest")


def reconcile(now=None) -> dict:
    now = now or timezone.now()
    bound = now - timedelta(seconds=float(conf.get("NEXUS_BACKTEST_STALE_SECONDS")))
    stale = Backtest.objects.filter(status=Backtest.Status.RUNNING).filter(
        Q(heartbeat_at__lt=bound) | Q(heartbeat_at__isnull=True, started_at__lt=bound))
    rerun, failed = [], []
    for pk in stale.values_list("pk", flat=True):
        outcome = _recover(pk, bound, now)
        if outcome == "rerun":
            rerun.append(str(pk))
        elif outcome == "failed":
            failed.append(str(pk))
    summarised = [str(p.pk) for p in _unsummarised() if not sweeps.summarize(str(p.pk)).get("waiting")]
    return {"rerun": rerun, "failed": failed, "summarised": summarised}


def _recover(pk, bound, now) -> str | None:
    with transaction.atomic():
        bt = Backtest.objects.select_for_update().filter(pk=pk, status=Backtest.Status.RUNNING).first()
        if bt is None or (bt.heartbeat_at or bt.started_at) >= bound:
            return None  # finished or beat meanwhile
        seen = f"no heartbeat since {(bt.heartbeat_at or bt.started_at).isoformat()} (bars {bt.bars_done}/{bt.bars_total})"
        if bt.attempt >= int(conf.get("NEXUS_BACKTEST_MAX_ATTEMPTS")):
            Backtest.objects.filter(pk=bt.pk).update(
                status=Backtest.Status.FAILED, finished_at=now,
                error=f"worker lost: {seen}; {bt.attempt} attempt(s) lost, not re-run again "
                      f"(NEXUS_BACKTEST_MAX_ATTEMPTS)")
            log.error("backtest %s failed: worker lost %s times", bt.pk, bt.attempt)
            return "failed"
        lost = bt.account
        bt.account = new_account(f"{bt.pk}"[:15] + f"r{bt.attempt + 1}", bt.arguments["initial_cash"],
                                 bt.arguments["fill_model"])
        bt.attempt += 1
        bt.status, bt.started_at, bt.heartbeat_at = Backtest.Status.QUEUED, None, None
        bt.bars_done = bt.decisions = 0
        bt.save(update_fields=["account", "attempt", "status", "started_at", "heartbeat_at", "bars_done",
                               "decisions"])
        if lost is not None:  # the lost attempt's fills and orders (protected), then the account and the rest
            Fill.objects.filter(account=lost).delete()
            Order.objects.filter(account=lost).delete()
            lost.delete()
        log.warning("backtest %s: worker lost (%s), re-run as attempt %s", bt.pk, seen, bt.attempt)
        pk_ = bt.pk
        transaction.on_commit(lambda: _send(pk_))
    return "rerun"


def _send(pk) -> None:
    from trading_app.backtest.service import _send as send

    send(pk)


def _unsummarised():
    """Sweep parents not final whose points all are."""
    parents = Backtest.objects.filter(parent__isnull=True, status__in=("queued", "running"), points__isnull=False)
    return [p for p in parents.distinct() if not p.points.exclude(status__in=Backtest.FINAL).exists()]
