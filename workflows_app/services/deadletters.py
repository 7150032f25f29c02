"""Dead-letter processing: a policy per error class, run by beat and on demand.

- the plugins' retry classes (the engine's ``rate_limit``; NEXUS_DLQ_RETRY_CLASSES, when set,
  replaces them): retried with exponential backoff (NEXUS_DLQ_RETRY_BASE seconds, doubling per
  redrive, capped at NEXUS_DLQ_RETRY_MAX); after NEXUS_DLQ_MAX_AUTO_RETRIES automatic redrives it
  is alerted instead.
- the plugins' discard classes (trading's ``invalid_symbol``; NEXUS_DLQ_DISCARD_CLASSES, when set,
  replaces them): discarded, with an audit record.
- anything else: an operator is alerted (warning log + ``operator_alert`` audit event, shown in the
  admin) and the letter is kept for a manual redrive.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from workflows_app import audit, conf, engine
from workflows_app.errors import OperationError
from workflows_app.models import DeadLetter
from workflows_app.registry import registry

log = logging.getLogger("nexus.notify")


def _classes(setting: str, declared: set[str]) -> set[str]:
    return set(conf.get(setting)) if conf.is_set(setting) else set(declared)


def retry_classes() -> set[str]:
    return _classes("NEXUS_DLQ_RETRY_CLASSES", registry.retry_classes)


def discard_classes() -> set[str]:
    return _classes("NEXUS_DLQ_DISCARD_CLASSES", registry.discard_classes)


def backoff(redrives: int) -> float:
    return min(conf.get("NEXUS_DLQ_RETRY_MAX"), conf.get("NEXUS_DLQ_RETRY_BASE") * (2 ** redrives))


def policy_for(letter: DeadLetter) -> str:
    if letter.error_class in discard_classes():
        return "discard"
    if letter.error_class in retry_classes():
        if letter.redrive_count >= conf.get("NEXUS_DLQ_MAX_AUTO_RETRIES"):
            return "alert"
        return "retry"
    return "alert"


def redrive(letter: DeadLetter) -> dict:
    return redrive_letter(letter)


def process_one(letter: DeadLetter, now=None) -> dict:
    now = now or timezone.now()
    policy = policy_for(letter)
    item = {"id": str(letter.id), "error_class": letter.error_class, "policy": policy}
    if policy == "discard":
        letter.status = DeadLetter.Status.DISCARDED
        letter.save(update_fields=["status", "updated_at"])
        audit.record("dead_letter_discarded", workflow_id=letter.workflow_id, execution_id=letter.execution_id,
                     step=letter.step_name, dead_letter_id=str(letter.id), error_class=letter.error_class,
                     queue=letter.queue_name or None, payload=letter.payload)
        item["action"] = "discarded"
    elif policy == "retry":
        if letter.status == DeadLetter.Status.RETRY_SCHEDULED and letter.next_attempt_at and letter.next_attempt_at <= now:
            try:
                item["target"] = redrive(letter)["target"]
                item["action"] = "redriven"
            except OperationError as exc:
                letter.status = DeadLetter.Status.ALERTED
                letter.save(update_fields=["status", "updated_at"])
                _alert(letter, f"automatic redrive failed: {exc.message}")
                item["action"] = "alerted"
        else:
            delay = backoff(letter.redrive_count)
            letter.status = DeadLetter.Status.RETRY_SCHEDULED
            letter.next_attempt_at = now + timedelta(seconds=delay)
            letter.save(update_fields=["status", "next_attempt_at", "updated_at"])
            audit.record("dead_letter_retry_scheduled", workflow_id=letter.workflow_id,
                         execution_id=letter.execution_id, step=letter.step_name, dead_letter_id=str(letter.id),
                         error_class=letter.error_class, delay=delay, next_attempt_at=letter.next_attempt_at)
            item.update(action="retry_scheduled", delay=delay, next_attempt_at=letter.next_attempt_at.isoformat())
    else:
        letter.status = DeadLetter.Status.ALERTED
        letter.save(update_fields=["status", "updated_at"])
        _alert(letter, "needs an operator")
        item["action"] = "alerted"
    return item


def _alert(letter: DeadLetter, why: str) -> None:
    where = letter.step_name and f"step {letter.step_name}" or f"queue {letter.queue_name}"
    message = f"dead letter {letter.id} ({letter.error_class}, {where}): {why}: {letter.error[:300]}"
    log.warning("[operator alert] %s", message)
    audit.record("operator_alert", workflow_id=letter.workflow_id, execution_id=letter.execution_id,
                 step=letter.step_name, dead_letter_id=str(letter.id), error_class=letter.error_class,
                 message=message, level="critical")


def process_dead_letters(limit: int = 100, now=None) -> dict:
    """Apply the policies to new letters and to retries that are due. Each letter is handled in its
    own transaction under a row lock, so two runs never handle one letter twice."""
    now = now or timezone.now()
    due = Q(status=DeadLetter.Status.PENDING) | Q(status=DeadLetter.Status.RETRY_SCHEDULED, next_attempt_at__lte=now)
    ids = list(DeadLetter.objects.filter(due).order_by("created_at").values_list("id", flat=True)[:limit])
    results = []
    for pk in ids:
        with transaction.atomic():
            letter = DeadLetter.objects.select_for_update().filter(pk=pk).filter(due).first()
            if letter is None:
                continue
            results.append(process_one(letter, now))
    counts: dict[str, int] = {}
    for item in results:
        counts[item["action"]] = counts.get(item["action"], 0) + 1
    return {"processed": len(results), "actions": counts, "results": results}


def redrive_letter(letter: DeadLetter) -> dict:
    """Send a dead letter back: a step's execution resumes from the failed step; a queue
    message goes back on its queue (through the redriver the queue module registers)."""
    if letter.status == DeadLetter.Status.REDRIVEN:
        raise OperationError("CONFLICT", f"dead letter {letter.id} was already redriven", {"field": "dead_letter_id"})
    with transaction.atomic():
        if letter.source == "step":
            if letter.execution_id is None:
                raise OperationError("CONFLICT", "its execution no longer exists", {"field": "dead_letter_id"})
            execution = engine.retry(letter.execution_id, reason=f"dead letter {letter.id} redriven")
            target = {"execution_id": str(execution.id), "status": execution.status}
        else:
            redriver = registry.dead_letter_redrivers.get(letter.source)
            if redriver is None:
                raise OperationError("CONFLICT", f"no redriver for {letter.source} dead letters", {"field": "dead_letter_id"})
            target = redriver(letter)
        letter.status = DeadLetter.Status.REDRIVEN
        letter.redrive_count += 1
        letter.save(update_fields=["status", "redrive_count", "updated_at"])
        audit.record("dead_letter_redriven", workflow_id=letter.workflow_id, execution_id=letter.execution_id,
                     step=letter.step_name, dead_letter_id=str(letter.id), error_class=letter.error_class)
    return {"id": str(letter.id), "status": letter.status, "target": target}
