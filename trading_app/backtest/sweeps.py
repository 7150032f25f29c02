"""Sweeps: a parameter grid run as one backtest per point, spread over the Celery workers (a chord
of the points' runs with a summary), the points ranked by a chosen metric.

The parent ``Backtest`` row keeps the grid, ``rank_by`` and, once the summary ran, the ranking; each
point is an ordinary backtest (its own account, overrides = the run's overrides plus the point),
validated before anything is stored. More workers on the ``trading`` queue finish a sweep sooner.
"""
from __future__ import annotations

import itertools

from celery import chord, signature
from django.db import transaction
from django.utils import timezone

from trading_app.backtest.broker import new_account
from trading_app.backtest.record import Backtest

SUMMARY_TASK = "nexus.trading.summarize_sweep"
LOWER_IS_BETTER = {"max_drawdown"}


def grid(sweep: dict) -> list[dict]:
    paths = list(sweep)
    return [dict(zip(paths, values, strict=True)) for values in itertools.product(*(sweep[p] for p in paths))]


def start(workflow, args, owner, arguments: dict, prepare) -> Backtest:
    """Validate every point (``prepare`` with its overrides), then store the parent and the points."""
    points = []
    for point in grid(args.sweep):
        merged = args.model_copy(update={"overrides": {**args.overrides, **point}})
        definition, _ = prepare(workflow, merged)
        points.append((point, definition))
    with transaction.atomic():
        parent = Backtest.objects.create(workflow=workflow, version=workflow.current_version, owner=owner,
                                         arguments={**arguments, "sweep": args.sweep, "rank_by": args.rank_by},
                                         definition=points[0][1])
        children = []
        for point, definition in points:
            child = Backtest(workflow=workflow, version=workflow.current_version, owner=owner, parent=parent,
                             point=point, definition=definition,
                             arguments={**arguments, "overrides": {**args.overrides, **point}})
            child.account = new_account(child.pk, args.initial_cash, args.fill_model)
            child.save()
            children.append(child.pk)
        transaction.on_commit(lambda: send(parent.pk, children))
    return parent


def send(parent_pk, children: list) -> None:
    from trading_app.backtest.service import RUN_TASK

    header = [signature(RUN_TASK, args=[str(pk)], queue="trading", immutable=True) for pk in children]
    chord(header, signature(SUMMARY_TASK, args=[str(parent_pk)], queue="trading", immutable=True)).apply_async()


def progress(parent: Backtest) -> dict:
    rows = list(parent.points.values_list("status", "bars_done", "bars_total", "decisions"))
    statuses = {r[0] for r in rows}
    status = parent.status if parent.is_final else ("running" if statuses - {"queued"} else "queued")
    return {"status": status, "bars_done": sum(r[1] for r in rows), "bars_total": sum(r[2] for r in rows),
            "decisions": sum(r[3] for r in rows), "points": len(rows),
            "points_done": sum(1 for r in rows if r[0] in Backtest.FINAL)}


def summarize(parent_id: str) -> dict:
    """Rank the points by ``rank_by`` (failed points last) and store the ranking on the parent, once
    every point is final (until then: nothing; the last point to finish calls this again)."""
    parent = Backtest.objects.get(pk=parent_id)
    waiting = parent.points.exclude(status__in=Backtest.FINAL).count()
    if waiting or parent.is_final:
        return {"waiting": waiting, "final": parent.is_final}
    key = parent.arguments.get("rank_by", "sharpe")
    rows = [{"backtest_id": str(c.pk), "point": c.point, "status": c.status, key: (c.metrics or {}).get(key),
             **{k: (c.metrics or {}).get(k) for k in ("total_return", "max_drawdown", "sharpe", "fills")}}
            for c in parent.points.all()]
    sign = 1 if key in LOWER_IS_BETTER else -1
    rows.sort(key=lambda r: (r[key] is None, sign * (r[key] or 0)))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    failed = [r for r in rows if r["status"] != Backtest.Status.SUCCEEDED]
    Backtest.objects.filter(pk=parent.pk).update(
        status=Backtest.Status.FAILED if len(failed) == len(rows) else Backtest.Status.SUCCEEDED,
        metrics={"rank_by": key, "ranking": rows, "best": rows[0] if rows and rows[0]["status"] == "succeeded" else None,
                 "points": len(rows), "failed_points": len(failed)},
        started_at=parent.created_at, finished_at=timezone.now(), **progress_totals(parent))
    return {"points": len(rows), "failed": len(failed)}


def progress_totals(parent: Backtest) -> dict:
    p = progress(parent)
    return {"bars_done": p["bars_done"], "bars_total": p["bars_total"], "decisions": p["decisions"]}
