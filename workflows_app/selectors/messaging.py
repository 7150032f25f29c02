"""Reads of dead letters, named queues' configuration, broker queue lengths and agents."""
from __future__ import annotations

from django.db.models import Count

from workflows_app.models import Agent, DeadLetter, MessageQueue
from workflows_app.selectors.common import iso, sees_everything


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


def agents() -> list[dict]:
    return [{"name": a.name, "type": a.type, "capabilities": a.capabilities, "queue": a.queue}
            for a in Agent.objects.all()]


def queue_configs() -> list[dict]:
    return [q.config() for q in MessageQueue.objects.all()]


def visible_dead_letters(user):
    qs = DeadLetter.objects.select_related("workflow")
    return qs if sees_everything(user) else qs.filter(workflow__owner=user)


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
