"""Execution and step figures: the metrics operation's, the dashboard's and /metrics' (the faces
read here, never the ORM themselves)."""
from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum

from workflows_app.models import Execution, StepRun, Workflow
from workflows_app.selectors.common import iso, percentile, sees_everything


def execution_metrics(executions_qs, since: datetime) -> dict:
    rows = list(executions_qs.filter(queued_at__gte=since).values_list("status", "started_at", "finished_at"))
    finished = [r for r in rows if r[0] in Execution.FINAL and r[0] != Execution.Status.CANCELLED]
    durations = sorted((f - s).total_seconds() for st, s, f in finished if s and f)
    succeeded = sum(1 for r in finished if r[0] == Execution.Status.SUCCEEDED)
    by_status: dict[str, int] = {}
    for status, *_ in rows:
        by_status[status] = by_status.get(status, 0) + 1
    return {
        "executions": len(rows),
        "finished": len(finished),
        "by_status": by_status,
        "success_rate": round(succeeded / len(finished), 4) if finished else None,
        "average_duration": round(sum(durations) / len(durations), 6) if durations else None,
        "p50": percentile(durations, 0.50),
        "p99": percentile(durations, 0.99),
    }


def steps_performance(step_runs_qs, since: datetime) -> dict:
    stats: dict[str, dict] = {}
    rows = step_runs_qs.filter(started_at__gte=since, is_compensation=False).exclude(
        status__in=["running", "waiting"]).values_list("step_name", "status", "started_at", "finished_at")
    for name, status, started, finished in rows:
        entry = stats.setdefault(name, {"runs": 0, "succeeded": 0, "total_time": 0.0})
        entry["runs"] += 1
        entry["succeeded"] += status in ("succeeded", "skipped")
        if finished:
            entry["total_time"] += (finished - started).total_seconds()
    return {
        name: {"avg_time": round(e["total_time"] / e["runs"], 6), "success_rate": round(e["succeeded"] / e["runs"], 4),
               "runs": e["runs"]}
        for name, e in stats.items()
    }


def executions_by_status() -> dict[str, int]:
    counts = dict(Execution.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {status: counts.get(status, 0) for status in Execution.Status.values}


def summary_figures(since: datetime) -> dict:
    """Every execution's figures in the window (the dashboard's summary) plus those unfinished now and,
    of them, those waiting at a wait or an approval (no worker holds them)."""
    return {**execution_metrics(Execution.objects.all(), since), "running": running_executions(),
            "waiting": Execution.objects.filter(status=Execution.Status.WAITING).count()}


def all_steps_performance(since: datetime) -> dict:
    return steps_performance(StepRun.objects.all(), since)


def running_executions() -> int:
    return Execution.objects.exclude(status__in=Execution.FINAL).count()


def step_duration_histogram(bounds: tuple[float, ...]) -> list[dict]:
    """Finished step runs per step type: total, summed seconds and cumulative counts per bound."""
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    aggregates = {f"le{i}": Count("id", filter=Q(duration__lte=timedelta(seconds=bound)))
                  for i, bound in enumerate(bounds)}
    rows = (StepRun.objects.filter(finished_at__isnull=False).annotate(duration=duration)
            .values("step_type").annotate(total=Count("id"), seconds=Sum("duration"), **aggregates)
            .order_by("step_type"))
    return [{"step_type": row["step_type"] or "", "total": row["total"],
             "seconds": row["seconds"].total_seconds() if row["seconds"] is not None else 0.0,
             "buckets": [(bound, row[f"le{i}"]) for i, bound in enumerate(bounds)]} for row in rows]


def _hour(value: datetime) -> datetime:
    return value.astimezone(zoneinfo.ZoneInfo("UTC")).replace(minute=0, second=0, microsecond=0)


def _hours(since: datetime, now: datetime) -> list[datetime]:
    start, hours = _hour(since), []
    while start <= now:
        hours.append(start)
        start += timedelta(hours=1)
    return hours


def executions_per_hour(since: datetime, now: datetime) -> dict:
    counts: dict[tuple, int] = {}
    for queued_at, status in Execution.objects.filter(queued_at__gte=since).values_list("queued_at", "status"):
        key = (_hour(queued_at), status)
        counts[key] = counts.get(key, 0) + 1
    hours = _hours(since, now)
    statuses = [s for s in Execution.Status.values if any(k[1] == s for k in counts)]
    return {"hours": [iso(h) for h in hours], "statuses": statuses,
            "series": {s: [counts.get((h, s), 0) for h in hours] for s in statuses}}


def latency_per_hour(since: datetime, now: datetime) -> dict:
    finished = Execution.objects.filter(finished_at__gte=since, started_at__isnull=False).exclude(
        status=Execution.Status.CANCELLED).values_list("finished_at", "started_at")
    buckets: dict[datetime, list[float]] = {}
    for finished_at, started_at in finished:
        buckets.setdefault(_hour(finished_at), []).append((finished_at - started_at).total_seconds())
    hours = _hours(since, now)
    p50, p99 = [], []
    for hour in hours:
        durations = sorted(buckets.get(hour, []))
        p50.append(percentile(durations, 0.5) if durations else None)
        p99.append(percentile(durations, 0.99) if durations else None)
    return {"hours": [iso(h) for h in hours], "p50": p50, "p99": p99}


def recent_executions(limit: int = 12) -> list[dict]:
    rows = Execution.objects.select_related("workflow").order_by("-queued_at")[:limit]
    return [{"execution_id": str(e.id), "pk": e.pk, "workflow": e.workflow.name, "status": e.status,
             "trigger": e.trigger, "current_step": e.current_step or None, "queued_at": iso(e.queued_at),
             "duration": e.duration} for e in rows]


def agent_minutes(step_runs_qs, since: datetime) -> float:
    total = 0.0
    for started, finished in step_runs_qs.filter(started_at__gte=since, finished_at__isnull=False).values_list(
            "started_at", "finished_at"):
        total += (finished - started).total_seconds()
    return total / 60


def metrics_scope(workflow: Workflow | None, user) -> tuple:
    """(executions, step runs) workflow_metrics counts: one workflow's, or every visible workflow's."""
    executions_qs, runs_qs = Execution.objects.all(), StepRun.objects.all()
    if workflow is not None:
        return executions_qs.filter(workflow=workflow), runs_qs.filter(execution__workflow=workflow)
    if not sees_everything(user):
        return executions_qs.filter(workflow__owner=user), runs_qs.filter(execution__workflow__owner=user)
    return executions_qs, runs_qs


def cost_breakdown(executions: int, messages: int, agent_minutes_used: float) -> dict:
    costs = {
        "executions": {"count": executions, "unit_price": settings.NEXUS_COST_PER_EXECUTION,
                       "cost": round(executions * settings.NEXUS_COST_PER_EXECUTION, 6)},
        "messages": {"count": messages, "unit_price": settings.NEXUS_COST_PER_MESSAGE,
                     "cost": round(messages * settings.NEXUS_COST_PER_MESSAGE, 6)},
        "agent_time": {"minutes": round(agent_minutes_used, 4), "unit_price": settings.NEXUS_COST_PER_AGENT_MINUTE,
                       "cost": round(agent_minutes_used * settings.NEXUS_COST_PER_AGENT_MINUTE, 6)},
    }
    costs["total"] = round(sum(c["cost"] for c in costs.values()), 6)
    return costs
