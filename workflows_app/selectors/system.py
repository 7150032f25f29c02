"""System figures: availability from beat's samples, worker uptime, message counters, plugin counters."""
from __future__ import annotations

from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.utils import timezone

from workflows_app import queues
from workflows_app.models import AvailabilitySample, StepRun
from workflows_app.registry import registry
from workflows_app.selectors.common import iso

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
