"""Reads: every figure here is computed from rows (or live Redis), never estimated."""
from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta

from celery import current_app
from croniter import croniter
from django.db.models import Count
from django.utils import timezone

from workflows_app import queues
from workflows_app.definitions import execution_groups, step_type_name
from workflows_app.errors import OperationError
from workflows_app.models import (
    Agent,
    AuditEvent,
    AvailabilitySample,
    DeadLetter,
    Execution,
    MessageQueue,
    StepRun,
    Trigger,
    Workflow,
)
from workflows_app.registry import registry

_WINDOW = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_window(window: str | None, field: str = "window") -> timedelta:
    match = _WINDOW.match(str(window or "24h").strip())
    if not match:
        raise OperationError("INVALID_INPUT_DATA", f"{field} must look like 30m, 24h or 7d", {"field": field})
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))  # ceil
    return sorted_values[min(rank, len(sorted_values)) - 1]


# --- workflows ----------------------------------------------------------------------------------
def next_run_at(trigger: Trigger, workflow: Workflow, now: datetime | None = None) -> str | None:
    if trigger.type != "schedule" or workflow.status != Workflow.Status.ACTIVE or not trigger.enabled:
        return None
    tz = zoneinfo.ZoneInfo(trigger.params.get("timezone", "UTC"))
    base = (now or timezone.now()).astimezone(tz)
    return croniter(trigger.params["cron"], base).get_next(datetime).isoformat()


def trigger_summary(trigger: Trigger, workflow: Workflow) -> dict:
    return {
        "type": trigger.type,
        **trigger.params,
        "enabled": trigger.enabled and workflow.status == Workflow.Status.ACTIVE,
        "last_fired_at": iso(trigger.last_fired_at),
        "next_run_at": next_run_at(trigger, workflow),
        "periodic_task": trigger.periodic_task.name if trigger.periodic_task_id else None,
    }


def workflow_summary(workflow: Workflow) -> dict:
    return {
        "workflow_id": str(workflow.id),
        "name": workflow.name,
        "description": workflow.description,
        "status": workflow.status,
        "priority": workflow.priority,
        "version": workflow.version,
        "queue": workflow.queue,
        "created_at": iso(workflow.created_at),
        "updated_at": iso(workflow.updated_at),
    }


def workflow_detail(workflow: Workflow) -> dict:
    definition = workflow.current_version.definition if workflow.current_version_id else {}
    counts = dict(workflow.executions.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {
        **workflow_summary(workflow),
        "metadata": workflow.metadata,
        "steps": definition.get("steps", []),
        "triggers": [trigger_summary(t, workflow) for t in workflow.triggers.select_related("periodic_task")],
        "executions": {"total": sum(counts.values()), "by_status": counts},
    }


# --- executions ---------------------------------------------------------------------------------
def step_run_summary(run: StepRun) -> dict:
    return {
        "step": run.step_name, "type": run.step_type, "attempt": run.attempt, "status": run.status,
        "queue": run.queue or None,
        "compensation": run.is_compensation, "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
        "duration": round(run.duration, 6) if run.duration is not None else None,
        "result": run.result, "error": run.error or None, "error_class": run.error_class or None,
    }


def execution_detail(execution: Execution, *, include_steps: bool = True) -> dict:
    steps = execution.version.definition["steps"]
    runs = list(execution.step_runs.order_by("started_at", "id"))
    finished = {r.step_name for r in runs if not r.is_compensation and r.status in ("succeeded", "skipped")}
    names = [s["name"] for s in steps]
    completed = [n for n in names if n in finished]
    pending = [n for n in names if n not in finished]
    reply = {
        "execution_id": str(execution.id),
        "workflow_id": str(execution.workflow_id),
        "workflow_name": execution.workflow.name,
        "version": execution.version.number,
        "status": execution.status,
        "trigger": execution.trigger,
        "test_mode": execution.test_mode,
        "progress": round(len(completed) / len(names), 4) if names else 1.0,
        "current_step": execution.current_step or None,
        "completed_steps": completed,
        "pending_steps": pending,
        "queued_at": iso(execution.queued_at),
        "started_at": iso(execution.started_at),
        "finished_at": iso(execution.finished_at),
        "duration": execution.duration,
        "error": execution.error,
        "parent_execution_id": str(execution.parent_id) if execution.parent_id else None,
        "child_execution_ids": [str(c) for c in execution.children.values_list("id", flat=True)],
    }
    if include_steps:
        reply["step_runs"] = [step_run_summary(r) for r in runs]
        reply["steps"] = {
            r.step_name: {"status": r.status, "result": r.result, "duration": r.duration}
            for r in runs if not r.is_compensation
        }
    return reply


# --- audit --------------------------------------------------------------------------------------
def audit_event(event: AuditEvent) -> dict:
    item = {"timestamp": iso(event.timestamp), "event": event.event}
    if event.step:
        item["step"] = event.step
    item.update({k: v for k, v in event.data.items() if k not in ("timestamp", "event")})
    if event.execution_id:
        item.setdefault("execution_id", str(event.execution_id))
    return item


def audit_events(*, workflow_id=None, execution_id=None, limit: int = 50, start_time: datetime | None = None,
                 offset: int = 0) -> dict:
    qs = AuditEvent.objects.all()
    if execution_id:
        qs = qs.filter(execution_id=execution_id)
    elif workflow_id:
        qs = qs.filter(workflow_id=workflow_id)
    if start_time:
        qs = qs.filter(timestamp__gte=start_time)
    total = qs.count()
    events = [audit_event(e) for e in qs.order_by("timestamp", "id")[offset:offset + limit]]
    return {"events": events, "count": len(events), "total": total}


# --- metrics ------------------------------------------------------------------------------------
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


MESSAGES_COUNTED = ("named-queue acknowledgements (every stream queue's counter, the events queue included: one per "
                    "ingested event processed), all time, not limited to the window")


def message_figures() -> dict:
    """Messages, counted from the named queues' own counters (Redis): ``messages_processed`` is every
    acknowledgement of a processed message (``queue_ack``, a workflow-bound queue's drain, the ``events``
    queue's drain); ``messages_queued`` the messages sent and not yet processed (available, in flight,
    delayed); ``messages_dead_lettered`` the ones moved to the dead-letter store."""
    streams = [q for q in queues.status()["queues"] if "messages_processed" in q]  # stream queues (not the DLQ)
    return {
        "messages_processed": sum(q["messages_processed"] for q in streams),
        "messages_queued": sum(q["messages_available"] + q["messages_in_flight"] + q["messages_delayed"]
                               for q in streams),
        "messages_dead_lettered": sum(q["dead_lettered"] for q in streams),
        "messages_counted": MESSAGES_COUNTED,
    }


AVAILABILITY_MEANS = ("share of the window, from the first availability sample, during which a worker consuming the "
                      "workflows queue, an active beat and a web process (NEXUS_AVAILABILITY_REQUIRES) were all alive; "
                      "a gap longer than the max_gap between samples counts as unavailable (beat, the sampler, was "
                      "down or could not write); truncated, never rounded up to 100%")


def availability(since: datetime, now: datetime | None = None) -> dict:
    """Availability over [since, now] from the samples beat takes (services/availability.py).

    Each sample stands for the time until the next one, for at most ``max_gap`` seconds; time after
    that, with no sample, is unobserved and counted as unavailable. Time before the first sample is
    not counted (nothing was measuring); with no sample at all the figure is None, never 100 %.
    """
    from django.conf import settings


    now = now or timezone.now()
    period = float(settings.NEXUS_AVAILABILITY_SAMPLE_EVERY)
    max_gap = timedelta(seconds=max(3 * period, 30.0))
    rows = list(AvailabilitySample.objects.filter(taken_at__gte=since - max_gap, taken_at__lte=now)
                .order_by("taken_at").values_list("taken_at", "available", "down"))
    figure = {"percent": None, "samples": len(rows), "sample_every": period, "max_gap": max_gap.total_seconds(),
              "means": AVAILABILITY_MEANS}
    if not rows:
        return {**figure, "reason": "no availability samples in the window (beat takes them: is it running?)"}
    start = max(since, rows[0][0])
    up = down = unobserved = 0.0
    down_by_role: dict[str, float] = {}
    for i, (taken_at, available, roles) in enumerate(rows):
        following = rows[i + 1][0] if i + 1 < len(rows) else now
        begin = max(taken_at, start)
        covered_end = min(following, taken_at + max_gap)
        if covered_end > begin:
            span = (covered_end - begin).total_seconds()
            if available:
                up += span
            else:
                down += span
                for role in roles or []:
                    down_by_role[role] = round(down_by_role.get(role, 0.0) + span, 3)
        gap_from = max(covered_end, begin)
        if following > gap_from:
            unobserved += (following - gap_from).total_seconds()
    observed = up + down + unobserved
    if observed <= 0:
        return {**figure, "reason": "a single sample, no time observed yet"}
    percent = int(up / observed * 10000) / 100  # truncated: 99.999 % is not "100.00%"
    return {**figure, "percent": percent, "since": iso(start), "observed_seconds": round(observed, 3),
            "available_seconds": round(up, 3), "unavailable_seconds": round(down + unobserved, 3),
            "unobserved_seconds": round(unobserved, 3), "down_by_role": down_by_role}


def uptime_label(figure: dict) -> str | None:
    """The specification's table spells availability "99.97%"."""
    return None if figure["percent"] is None else f"{figure['percent']:.2f}%"


def uptime(timeout: float = 0.5) -> float | None:
    """Seconds the longest-running live worker has been up (Celery's own `stats`), None if none answer."""

    try:
        stats = current_app.control.inspect(timeout=timeout).stats() or {}
    except Exception:  # noqa: BLE001 - no broker: no figure, not a made-up one
        return None
    uptimes = [s.get("uptime") for s in stats.values() if isinstance(s.get("uptime"), int | float)]
    return float(max(uptimes)) if uptimes else None


def system_figures(since: datetime) -> dict:
    measured = availability(since)
    figures = {
        "uptime": uptime_label(measured),  # availability over the window, see `availability`
        "availability": measured,
        "uptime_seconds": uptime(),  # the longest-running live worker's own uptime, now
        **message_figures(),
        # step runs are not messages: their own figure, in the window
        "steps_executed": StepRun.objects.filter(finished_at__gte=since).count(),
    }
    for name, counter in registry.counters.items():
        try:
            figures[name] = counter(since)
        except Exception as exc:  # noqa: BLE001 - a broken counter must not hide the rest
            figures[name] = None
            figures.setdefault("counter_errors", {})[name] = str(exc)[:200]
    return figures


# --- figures for the faces (dashboard, /metrics): they read here, never the ORM themselves ----------
def executions_by_status() -> dict[str, int]:
    counts = dict(Execution.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {status: counts.get(status, 0) for status in Execution.Status.values}


def summary_figures(since: datetime) -> dict:
    """Every execution's figures in the window (the dashboard's summary) plus those still running."""
    return {**execution_metrics(Execution.objects.all(), since), "running": running_executions()}


def all_steps_performance(since: datetime) -> dict:
    return steps_performance(StepRun.objects.all(), since)


def running_executions() -> int:
    return Execution.objects.exclude(status__in=Execution.FINAL).count()


def step_duration_histogram(bounds: tuple[float, ...]) -> list[dict]:
    """Finished step runs per step type: total, summed seconds and cumulative counts per bound."""
    from django.db.models import DurationField, ExpressionWrapper, F, Q, Sum

    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    aggregates = {f"le{i}": Count("id", filter=Q(duration__lte=timedelta(seconds=bound)))
                  for i, bound in enumerate(bounds)}
    rows = (StepRun.objects.filter(finished_at__isnull=False).annotate(duration=duration)
            .values("step_type").annotate(total=Count("id"), seconds=Sum("duration"), **aggregates)
            .order_by("step_type"))
    return [{"step_type": row["step_type"] or "", "total": row["total"],
             "seconds": row["seconds"].total_seconds() if row["seconds"] is not None else 0.0,
             "buckets": [(bound, row[f"le{i}"]) for i, bound in enumerate(bounds)]} for row in rows]


def dead_letter_counts() -> list[dict]:

    return list(DeadLetter.objects.values("status", "error_class").annotate(n=Count("id")).order_by())


def dead_letter_summary(recent: int = 10) -> dict:

    by_status = dict(DeadLetter.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    by_class = dict(DeadLetter.objects.exclude(status__in=["redriven", "discarded"]).values_list("error_class")
                    .annotate(n=Count("id")).values_list("error_class", "n"))
    rows = [{"created_at": iso(d.created_at), "error_class": d.error_class, "status": d.status,
             "step": d.step_name or None, "queue": d.queue_name or None,
             "workflow": d.workflow.name if d.workflow else None}
            for d in DeadLetter.objects.select_related("workflow").order_by("-created_at")[:recent]]
    return {"by_status": by_status, "by_error_class": by_class, "total": sum(by_status.values()), "recent": rows}


def agent_queues() -> list[str]:

    return list(Agent.objects.values_list("queue", flat=True))


def broker_queue_lengths(names: list[str], steps: list, sep: str, client) -> dict[str, int]:
    """Celery tasks waiting per broker queue (one Redis list per priority step, summed)."""
    pipe = client.pipeline(transaction=False)
    for name in names:
        for step in steps:
            pipe.llen(name if not step else f"{name}{sep}{step}")
    lengths = pipe.execute()
    return {name: sum(lengths[i * len(steps):(i + 1) * len(steps)]) for i, name in enumerate(names)}


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


def step_names_of(workflow: Workflow) -> list[str]:
    return [s["name"] for s in (workflow.current_version.definition["steps"] if workflow.current_version_id else [])]


def groups_of(workflow: Workflow) -> list[list[int]]:
    return execution_groups(workflow.current_version.definition["steps"])


__all__ = ["step_type_name"]


# --- reads of the operations (lists scoped to what the caller may see) ---------------------------


def _sees_everything(user) -> bool:
    return user is None or bool(getattr(user, "is_staff", False))


def visible_workflows(user):
    qs = Workflow.objects.select_related("current_version").order_by("-created_at")
    return qs if _sees_everything(user) else qs.filter(owner_id=user.id)


def metrics_scope(workflow: Workflow | None, user) -> tuple:
    """(executions, step runs) workflow_metrics counts: one workflow's, or every visible workflow's."""
    executions_qs, runs_qs = Execution.objects.all(), StepRun.objects.all()
    if workflow is not None:
        return executions_qs.filter(workflow=workflow), runs_qs.filter(execution__workflow=workflow)
    if not _sees_everything(user):
        return executions_qs.filter(workflow__owner=user), runs_qs.filter(execution__workflow__owner=user)
    return executions_qs, runs_qs


def cost_breakdown(executions: int, messages: int, agent_minutes_used: float) -> dict:
    from django.conf import settings

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


def agents() -> list[dict]:

    return [{"name": a.name, "type": a.type, "capabilities": a.capabilities, "queue": a.queue}
            for a in Agent.objects.all()]


def queue_configs() -> list[dict]:

    return [q.config() for q in MessageQueue.objects.all()]


def user_by_id(user_id):
    from django.contrib.auth import get_user_model

    try:
        return get_user_model().objects.filter(pk=int(user_id)).first()
    except (TypeError, ValueError):
        return None


def visible_dead_letters(user):

    qs = DeadLetter.objects.select_related("workflow")
    return qs if _sees_everything(user) else qs.filter(workflow__owner=user)


def dead_letter_row(letter, *, include_traceback: bool = False) -> dict:
    row = {"id": str(letter.id), "source": letter.source, "queue": letter.queue_name or None,
           "workflow_id": str(letter.workflow_id) if letter.workflow_id else None,
           "execution_id": str(letter.execution_id) if letter.execution_id else None,
           "step": letter.step_name or None, "error": letter.error_class, "error_class": letter.error_class,
           "message": letter.error, "attempts": letter.attempts, "status": letter.status,
           "redrive_count": letter.redrive_count, "payload": letter.payload,
           "created_at": iso(letter.created_at), "next_attempt_at": iso(letter.next_attempt_at)}
    if include_traceback:
        row["traceback"] = letter.traceback
    return row
