"""The operations contract: one function per operation, shared by every face.

REST views, MCP tools, admin actions and management commands call these and add no logic.
Each returns a JSON-serialisable dict with ``success: True`` or raises ``OperationError``.
``user`` is the caller: None for trusted local callers (CLI, MCP over stdio, beat); a
non-staff user sees and changes only their own workflows and executions.
"""
from __future__ import annotations

import math
import re
import uuid
from collections import Counter
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from workflows_app import definitions, engine, filters, selectors
from workflows_app.errors import OperationError
from workflows_app.models import Agent, DeadLetter, Execution, StepRun, Workflow
from workflows_app.registry import registry
from workflows_app.services import audit, workflows

# --- argument checking --------------------------------------------------------------------------


def _uuid(value, field: str, code: str = "INVALID_INPUT_DATA") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise OperationError(code, f"{field} must be a UUID", {"field": field}) from None


def _int(value, field: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise OperationError("INVALID_INPUT_DATA", f"{field} must be an integer", {"field": field})
    try:
        number = int(value)
    except ValueError:
        raise OperationError("INVALID_INPUT_DATA", f"{field} must be an integer", {"field": field}) from None
    if not low <= number <= high:
        raise OperationError("INVALID_INPUT_DATA", f"{field} must be between {low} and {high}", {"field": field})
    return number


def _bool(value, field: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise OperationError("INVALID_INPUT_DATA", f"{field} must be true or false", {"field": field})


def _dict(value, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OperationError("INVALID_INPUT_DATA", f"{field} must be an object", {"field": field})
    return value


def _datetime(value, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    parsed = value if isinstance(value, datetime) else parse_datetime(str(value))
    if parsed is None:
        raise OperationError("INVALID_INPUT_DATA", f"{field} must be an ISO 8601 timestamp", {"field": field})
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.utc)


def _no_extra(extra: dict) -> None:
    if extra:
        field = sorted(extra)[0]
        raise OperationError("INVALID_INPUT_DATA", f"unknown argument '{field}'", {"field": field})


def _require_staff(user, what: str) -> None:
    """Queue writes and manual events act on shared infrastructure: staff (or trusted local callers) only."""
    if user is not None and not getattr(user, "is_staff", False):
        raise OperationError("PERMISSION_DENIED", f"only staff may {what}", {"field": "user"})


def _can_see(user, owner_id) -> bool:
    return user is None or getattr(user, "is_staff", False) or owner_id == getattr(user, "id", None)


def _workflow(workflow_id, user, *, for_update: bool = False) -> Workflow:
    """By uuid or by name; someone else's workflow is reported as not found."""
    if workflow_id in (None, ""):
        raise OperationError("INVALID_INPUT_DATA", "workflow_id is required", {"field": "workflow_id"})
    # Names are unique per owner: resolved within the caller's own workflows (definitions).
    workflow = definitions.resolve_workflow_ref(workflow_id, user)
    if workflow is None or not _can_see(user, workflow.owner_id):
        raise OperationError("WORKFLOW_NOT_FOUND", f"no workflow {workflow_id}", {"field": "workflow_id"})
    return workflow


def _execution(execution_id, user) -> Execution:
    pk = _uuid(execution_id, "execution_id", "EXECUTION_NOT_FOUND")
    execution = Execution.objects.select_related("workflow", "version").filter(pk=pk).first()
    if execution is None or not _can_see(user, execution.owner_id if execution.owner_id else execution.workflow.owner_id):
        raise OperationError("EXECUTION_NOT_FOUND", f"no execution {execution_id}", {"field": "execution_id"})
    return execution


# --- workflows ----------------------------------------------------------------------------------


def workflow_create(*, name=None, steps=None, description="", triggers=None, priority=5, metadata=None,
                    queue="workflows", user=None, **extra) -> dict:
    _no_extra(extra)
    raw = {"name": name, "steps": steps, "description": description or "", "triggers": triggers or [],
           "priority": 5 if priority is None else priority, "metadata": metadata or {}, "queue": queue or "workflows"}
    workflow = workflows.create_workflow(raw, owner=user if getattr(user, "pk", None) else None)
    definition = workflow.current_version.definition
    return {"success": True, **selectors.workflow_summary(workflow), "features": definitions.features(definition),
            "steps": len(definition["steps"]), "triggers": len(definition["triggers"])}


def workflow_execute(*, workflow_id=None, input_data=None, trigger="manual", timeout=None, user=None,
                     async_=None, **extra) -> dict:
    run_async = _bool(extra.pop("async", async_), "async", True)
    _no_extra(extra)
    workflow = _workflow(workflow_id, user)
    data = _dict(input_data, "input_data")
    engine_keys = sorted(k for k in data if str(k).startswith("_"))
    if engine_keys:
        raise OperationError("INVALID_INPUT_DATA", f"input key '{engine_keys[0]}' is reserved for the engine",
                             {"field": f"input_data.{engine_keys[0]}"})
    if "test_mode" in data and not isinstance(data["test_mode"], bool):
        raise OperationError("INVALID_INPUT_DATA", "input_data.test_mode must be true or false",
                             {"field": "input_data.test_mode"})
    if not isinstance(trigger, str) or not re.fullmatch(r"[a-z_]{1,50}", trigger):
        raise OperationError("INVALID_INPUT_DATA", "trigger must be a trigger type name", {"field": "trigger"})
    wait = settings.NEXUS_SYNC_WAIT_SECONDS
    if timeout is not None:
        wait = float(_int(timeout, "timeout", 30, 1, 600))
    execution = engine.start_execution(workflow, data, trigger=trigger,
                                           owner=user if getattr(user, "pk", None) else None)
    reply = {"success": True, "execution_id": str(execution.id), "workflow_id": str(workflow.id),
             "workflow_name": workflow.name, "status": execution.status, "version": workflow.version,
             "started_at": selectors.iso(execution.queued_at), "async": run_async}
    if run_async:
        return reply
    execution = engine.wait_until_final(execution.id, wait)
    if not execution.is_final:
        raise OperationError("EXECUTION_TIMEOUT", f"execution still {execution.status} after {wait:g}s; it keeps running",
                             {"execution_id": str(execution.id), "status": execution.status})
    detail = selectors.execution_detail(execution)
    steps = {name: {**run, "result": audit.summarise(run["result"])} for name, run in detail["steps"].items()}
    return {**reply, "status": execution.status, "finished_at": detail["finished_at"], "duration": detail["duration"],
            "error": detail["error"], "steps": steps, "completed_steps": detail["completed_steps"]}


def workflow_status(*, workflow_id=None, execution_id=None, include_metrics=False, user=None, **extra) -> dict:
    _no_extra(extra)
    include = _bool(include_metrics, "include_metrics", False)
    if execution_id:
        execution = _execution(execution_id, user)
        reply = {"success": True, "type": "execution", **selectors.execution_detail(execution)}
        if include:
            reply["metrics"] = {"steps_performance": selectors.steps_performance(
                StepRun.objects.filter(execution=execution), execution.queued_at)}
        return reply
    if not workflow_id:
        raise OperationError("INVALID_INPUT_DATA", "give workflow_id or execution_id", {"field": "workflow_id"})
    workflow = _workflow(workflow_id, user)
    reply = {"success": True, "type": "workflow", **selectors.workflow_detail(workflow)}
    if include:
        reply["metrics"] = workflow_metrics(workflow_id=str(workflow.id), user=user)
        reply["metrics"].pop("success", None)
    return reply


def workflow_list(*, limit=10, offset=0, status=None, name=None, priority_min=None, priority_max=None,
                  created_after=None, created_before=None, user=None, **extra) -> dict:
    _no_extra(extra)
    limit = _int(limit, "limit", 10, 1, 500)
    offset = _int(offset, "offset", 0, 0, 10**9)
    qs = Workflow.objects.select_related("current_version").order_by("-created_at")
    if user is not None and not getattr(user, "is_staff", False):
        qs = qs.filter(owner_id=user.id)
    qs = filters.apply(filters.WorkflowFilter, qs, {
        "status": status, "name": name, "priority_min": priority_min, "priority_max": priority_max,
        "created_after": created_after, "created_before": created_before})
    total = qs.count()
    items = [selectors.workflow_summary(w) for w in qs[offset:offset + limit]]
    return {"success": True, "workflows": items, "count": len(items), "total": total, "limit": limit, "offset": offset}


def workflow_get(*, workflow_id=None, user=None, **extra) -> dict:
    _no_extra(extra)
    return {"success": True, **selectors.workflow_detail(_workflow(workflow_id, user))}


def workflow_update(*, workflow_id=None, updates=None, expected_version=None, user=None, **extra) -> dict:
    """Updates serialise on the workflow row; with `expected_version` a stale caller gets CONFLICT."""
    _no_extra(extra)
    workflow = _workflow(workflow_id, user)
    expected = None if expected_version is None else _int(expected_version, "expected_version", 1, 1, 10**9)
    workflow, changed = workflows.update_by_paths(workflow.id, _dict(updates, "updates"),
                                                  user=user if getattr(user, "pk", None) else None,
                                                  expected_version=expected)
    previous = workflow.version - 1
    return {"success": True, "workflow_id": str(workflow.id), "name": workflow.name, "version": workflow.version,
            "previous_version": previous, "changed": changed, "updated_at": selectors.iso(workflow.updated_at)}


def workflow_set_owner(*, workflow_id=None, owner_id=None, user=None, **extra) -> dict:
    """Staff only (the admin's owner field): owner_id is a user's id, or null for no owner."""
    _no_extra(extra)
    _require_staff(user, "change a workflow's owner")
    workflow = _workflow(workflow_id, user)
    owner = None
    if owner_id not in (None, ""):
        from django.contrib.auth import get_user_model

        try:
            owner = get_user_model().objects.get(pk=int(owner_id))
        except (TypeError, ValueError, get_user_model().DoesNotExist):
            raise OperationError("INVALID_INPUT_DATA", f"no user {owner_id}", {"field": "owner_id"}) from None
    workflow = workflows.set_owner(workflow.id, owner, user=user if getattr(user, "pk", None) else None)
    return {"success": True, "workflow_id": str(workflow.id), "name": workflow.name,
            "owner_id": workflow.owner_id, "updated_at": selectors.iso(workflow.updated_at)}


def workflow_pause(*, workflow_id=None, user=None, **extra) -> dict:
    _no_extra(extra)
    workflow = workflows.set_status(_workflow(workflow_id, user).id, Workflow.Status.PAUSED)
    return {"success": True, "workflow_id": str(workflow.id), "status": workflow.status}


def workflow_resume(*, workflow_id=None, user=None, **extra) -> dict:
    _no_extra(extra)
    workflow = workflows.set_status(_workflow(workflow_id, user).id, Workflow.Status.ACTIVE)
    return {"success": True, "workflow_id": str(workflow.id), "status": workflow.status}


def workflow_delete(*, workflow_id=None, user=None, **extra) -> dict:
    _no_extra(extra)
    workflow = _workflow(workflow_id, user)
    if workflow.executions.exclude(status__in=Execution.FINAL).exists():
        raise OperationError("CONFLICT", "workflow has unfinished executions; cancel them first", {"field": "workflow_id"})
    workflows.delete_workflow(workflow.id)
    return {"success": True, "workflow_id": str(workflow.id), "deleted": True}


def _tokens(text: str) -> Counter:
    return Counter(t for t in re.split(r"[^a-z0-9]+", text.lower()) if t)


def _cosine(a: Counter, b: Counter) -> float:
    dot = sum(a[t] * b[t] for t in a)
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


def workflow_agent_assign(*, workflow_id=None, task_id=None, agent_type=None, use_vector_similarity=False,
                          user=None, **extra) -> dict:
    _no_extra(extra)
    workflow = _workflow(workflow_id, user)
    if not isinstance(task_id, str) or not task_id:
        raise OperationError("INVALID_INPUT_DATA", "task_id must name a step of the workflow", {"field": "task_id"})
    use_similarity = _bool(use_vector_similarity, "use_vector_similarity", False)
    step = next((s for s in workflow.current_version.definition["steps"] if s["name"] == task_id), None)
    if step is None:
        raise OperationError("INVALID_INPUT_DATA", f"workflow has no step '{task_id}'", {"field": "task_id"})
    similarity = None
    if use_similarity:
        # Bag-of-words vectors: the step (name, type, param names) against each agent's capabilities.
        step_vector = _tokens(" ".join([step["name"], definitions.step_type_name(step), *step.get("params", {})]))
        candidates = Agent.objects.filter(type=agent_type) if agent_type else Agent.objects.all()
        scored = sorted(((_cosine(step_vector, _tokens(" ".join(map(str, a.capabilities)) + " " + a.type)), a)
                         for a in candidates), key=lambda pair: -pair[0])
        if scored:
            similarity, best = scored[0]
            agent_type = best.type
    if not agent_type:
        raise OperationError("INVALID_INPUT_DATA", "agent_type is required", {"field": "agent_type"})
    workflow, agent = workflows.assign_agent(workflow.id, task_id, agent_type)
    try:
        from nexus_project.celery import app

        app.control.add_consumer(agent.queue, reply=False)  # running workers start consuming it now
    except Exception:  # noqa: BLE001 - workers also pick agent queues up at start
        pass
    return {"success": True, "workflow_id": str(workflow.id), "version": workflow.version,
            "assignment": {"step": task_id, "agent": agent.name, "agent_type": agent.type, "queue": agent.queue,
                           "matching": "vector_similarity" if use_similarity else "agent_type",
                           "similarity": round(similarity, 4) if similarity is not None else None}}


def agent_list(*, user=None, **extra) -> dict:
    _no_extra(extra)
    agents = [{"name": a.name, "type": a.type, "capabilities": a.capabilities, "queue": a.queue}
              for a in Agent.objects.all()]
    return {"success": True, "agents": agents, "count": len(agents)}


# --- executions ---------------------------------------------------------------------------------


def execution_cancel(*, execution_id=None, user=None, **extra) -> dict:
    _no_extra(extra)
    execution = engine.cancel(_execution(execution_id, user).id)
    return {"success": True, "execution_id": str(execution.id), "status": execution.status}


def execution_retry(*, execution_id=None, user=None, **extra) -> dict:
    _no_extra(extra)
    execution = engine.retry(_execution(execution_id, user).id)
    return {"success": True, "execution_id": str(execution.id), "status": execution.status,
            "from_step": execution.current_step or None}


def workflow_audit_trail(*, workflow_id=None, execution_id=None, limit=50, start_time=None, offset=0, user=None,
                         **extra) -> dict:
    _no_extra(extra)
    limit = _int(limit, "limit", 50, 1, 1000)
    offset = _int(offset, "offset", 0, 0, 10**9)
    since = _datetime(start_time, "start_time")
    reply = {"success": True}
    if execution_id:
        execution = _execution(execution_id, user)
        reply.update(execution_id=str(execution.id), workflow_id=str(execution.workflow_id))
        reply.update(selectors.audit_events(execution_id=execution.id, limit=limit, start_time=since, offset=offset))
    elif workflow_id:
        workflow = _workflow(workflow_id, user)
        reply.update(workflow_id=str(workflow.id))
        reply.update(selectors.audit_events(workflow_id=workflow.id, limit=limit, start_time=since, offset=offset))
    else:
        raise OperationError("INVALID_INPUT_DATA", "give workflow_id or execution_id", {"field": "workflow_id"})
    return reply


def workflow_metrics(*, workflow_id=None, window="24h", user=None, **extra) -> dict:
    _no_extra(extra)
    since = timezone.now() - selectors.parse_window(window)
    executions_qs = Execution.objects.all()
    runs_qs = StepRun.objects.all()
    reply = {"success": True, "window": window or "24h", "since": selectors.iso(since)}
    if workflow_id:
        workflow = _workflow(workflow_id, user)
        executions_qs = executions_qs.filter(workflow=workflow)
        runs_qs = runs_qs.filter(execution__workflow=workflow)
        reply.update(workflow_id=str(workflow.id), workflow_name=workflow.name)
    elif user is not None and not getattr(user, "is_staff", False):
        executions_qs = executions_qs.filter(workflow__owner=user)
        runs_qs = runs_qs.filter(execution__workflow__owner=user)
    figures = selectors.execution_metrics(executions_qs, since)
    reply.update(figures)
    reply["executions_last_window"] = figures["executions"]
    reply["steps_performance"] = selectors.steps_performance(runs_qs, since)
    system = selectors.system_figures(since)
    reply["system"] = system
    messages = system.get("messages_processed") or 0
    minutes = selectors.agent_minutes(runs_qs, since)
    costs = {
        "executions": {"count": figures["executions"], "unit_price": settings.NEXUS_COST_PER_EXECUTION,
                       "cost": round(figures["executions"] * settings.NEXUS_COST_PER_EXECUTION, 6)},
        "messages": {"count": messages, "unit_price": settings.NEXUS_COST_PER_MESSAGE,
                     "cost": round(messages * settings.NEXUS_COST_PER_MESSAGE, 6)},
        "agent_time": {"minutes": round(minutes, 4), "unit_price": settings.NEXUS_COST_PER_AGENT_MINUTE,
                       "cost": round(minutes * settings.NEXUS_COST_PER_AGENT_MINUTE, 6)},
    }
    costs["total"] = round(sum(c["cost"] for c in costs.values()), 6)
    reply["cost_breakdown"] = costs
    return reply


# --- dead letters -------------------------------------------------------------------------------


def _dead_letter(letter: DeadLetter) -> dict:
    return {"id": str(letter.id), "source": letter.source, "queue": letter.queue_name or None,
            "workflow_id": str(letter.workflow_id) if letter.workflow_id else None,
            "execution_id": str(letter.execution_id) if letter.execution_id else None,
            "step": letter.step_name or None, "error": letter.error_class, "error_class": letter.error_class,
            "message": letter.error, "attempts": letter.attempts, "status": letter.status,
            "redrive_count": letter.redrive_count, "payload": letter.payload,
            "created_at": selectors.iso(letter.created_at), "next_attempt_at": selectors.iso(letter.next_attempt_at)}


def _visible_letters(user):
    qs = DeadLetter.objects.select_related("workflow")
    if user is not None and not getattr(user, "is_staff", False):
        qs = qs.filter(workflow__owner=user)
    return qs


def dead_letters(*, status=None, error_class=None, queue_name=None, source=None, created_after=None, limit=50,
                 offset=0, include_traceback=False, user=None, **extra) -> dict:
    _no_extra(extra)
    limit = _int(limit, "limit", 50, 1, 1000)
    offset = _int(offset, "offset", 0, 0, 10**9)
    with_traceback = _bool(include_traceback, "include_traceback", False)
    qs = filters.apply(filters.DeadLetterFilter, _visible_letters(user).order_by("-created_at"), {
        "status": status, "error_class": error_class, "queue_name": queue_name, "source": source,
        "created_after": created_after})
    total = qs.count()
    items = []
    for letter in qs[offset:offset + limit]:
        item = _dead_letter(letter)
        if with_traceback:
            item["traceback"] = letter.traceback
        items.append(item)
    return {"success": True, "dead_letters": items, "count": len(items), "total": total}


def dead_letter_redrive(*, dead_letter_id=None, dead_letter_ids=None, user=None, **extra) -> dict:
    _no_extra(extra)
    ids = dead_letter_ids if dead_letter_ids is not None else ([dead_letter_id] if dead_letter_id else [])
    if not isinstance(ids, list) or not ids or len(ids) > 500:
        raise OperationError("INVALID_INPUT_DATA", "give dead_letter_id or a list dead_letter_ids (at most 500)",
                             {"field": "dead_letter_id"})
    results = []
    for raw_id in ids:
        pk = _uuid(raw_id, "dead_letter_id")
        letter = _visible_letters(user).filter(pk=pk).first()
        if letter is None:
            raise OperationError("INVALID_INPUT_DATA", f"no dead letter {raw_id}", {"field": "dead_letter_id"})
        results.append(redrive_letter(letter))
    return {"success": True, "redriven": results, "count": len(results)}


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


# =================================================================================================
# --- triggers, events, named queues, dead-letter processing (issue 5) ----------------------------
# =================================================================================================


def _queue_name(value, field: str = "queue_name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise OperationError("INVALID_INPUT_DATA", f"{field} is required", {"field": field})
    return value.strip()


def queue_send(*, queue_name=None, message=None, group_id=None, deduplication_id=None, delay=None, user=None,
               message_group_id=None, **extra) -> dict:
    """Send a message to a named queue (FIFO per group_id, deduplicated within the queue's window)."""
    _require_staff(user, "send to a queue")
    from workflows_app.services import queues

    _no_extra(extra)
    name = _queue_name(queue_name)
    if message is None:
        raise OperationError("INVALID_INPUT_DATA", "message is required", {"field": "message"})
    if not isinstance(message, dict | list | str | int | float | bool):
        raise OperationError("INVALID_INPUT_DATA", "message must be JSON", {"field": "message"})
    group = group_id if group_id is not None else message_group_id
    if group is not None and (not isinstance(group, str | int) or len(str(group)) > 100):
        raise OperationError("INVALID_INPUT_DATA", "group_id must be a short string", {"field": "group_id"})
    if deduplication_id is not None and (not isinstance(deduplication_id, str | int) or len(str(deduplication_id)) > 200):
        raise OperationError("INVALID_INPUT_DATA", "deduplication_id must be a short string",
                             {"field": "deduplication_id"})
    seconds = None
    if delay not in (None, 0, "0"):
        try:
            seconds = float(delay)
        except (TypeError, ValueError):
            raise OperationError("INVALID_INPUT_DATA", "delay must be a number of seconds", {"field": "delay"}) from None
    reply = queues.send(name, message, group_id=group, dedup_id=deduplication_id, delay=seconds)
    return {"success": True, **reply}


def workflow_queue_status(*, queue_name=None, include_messages=None, limit=100, user=None, **extra) -> dict:
    """Live figures per named queue: messages_available, messages_in_flight, oldest_message_age,
    processing_rate (messages/minute over the last minute), dead_lettered, config. The
    dead-letter-queue lists its messages unless include_messages is false (the specification's
    dead-letter loop reads them from a plain status call)."""
    from workflows_app.services import queues

    _no_extra(extra)
    limit = _int(limit, "limit", 100, 1, 1000)
    name = _queue_name(queue_name) if queue_name not in (None, "") else None
    include = _bool(include_messages, "include_messages", name == queues.DEAD_LETTER_QUEUE)
    owner_id = None if user is None or getattr(user, "is_staff", False) else getattr(user, "id", -1)
    return {"success": True, **queues.status(name, include_messages=include, limit=limit, owner_id=owner_id),
            "measured_at": selectors.iso(timezone.now())}


_QUEUE_FIELDS = {"max_retries": (0, 100), "visibility_timeout": (0.1, 43_200), "message_retention": (1, 30 * 86_400),
                 "batch_size": (1, 1000), "deduplication_window": (1, 7 * 86_400), "max_messages": (1, 10_000_000)}


def queue_create(*, name=None, max_retries=3, visibility_timeout=30, message_retention=86_400, batch_size=10,
                 ordering="FIFO", deduplication=True, deduplication_window=300, max_messages=100_000, description="",
                 workflow_id=None, user=None, **extra) -> dict:
    """Create (or reconfigure) a named queue with the specification's queue_config fields."""
    _require_staff(user, "configure a queue")
    import re as _re

    from workflows_app.models import MessageQueue
    from workflows_app.models.queues import QUEUE_NAME_PATTERN

    _no_extra(extra)
    name = _queue_name(name, "name")
    if not _re.match(QUEUE_NAME_PATTERN, name):
        raise OperationError("INVALID_INPUT_DATA", "name may hold letters, digits, '.', '_' and '-' (max 100)",
                             {"field": "name"})
    values = {}
    for field, raw in (("max_retries", max_retries), ("visibility_timeout", visibility_timeout),
                       ("message_retention", message_retention), ("batch_size", batch_size),
                       ("deduplication_window", deduplication_window), ("max_messages", max_messages)):
        low, high = _QUEUE_FIELDS[field]
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise OperationError("INVALID_INPUT_DATA", f"{field} must be a number", {"field": field}) from None
        if isinstance(raw, bool) or not low <= number <= high:
            raise OperationError("INVALID_INPUT_DATA", f"{field} must be between {low} and {high}", {"field": field})
        values[field] = number if field == "visibility_timeout" else int(number)
    if str(ordering).upper() == "FIFO":
        values["ordering"] = MessageQueue.Ordering.FIFO
    elif str(ordering).lower() == "standard":
        values["ordering"] = MessageQueue.Ordering.STANDARD
    else:
        raise OperationError("INVALID_INPUT_DATA", "ordering must be FIFO or standard", {"field": "ordering"})
    values["deduplication"] = _bool(deduplication, "deduplication", True)
    values["description"] = str(description or "")[:300]
    if workflow_id:
        values["workflow"] = _workflow(workflow_id, user)
    existing = MessageQueue.objects.filter(name=name).first()
    if existing is not None and existing.kind != MessageQueue.Kind.STREAM:
        raise OperationError("CONFLICT", f"queue '{name}' is the dead-letter store", {"field": "name"})
    queue, created = MessageQueue.objects.update_or_create(name=name, defaults=values)
    audit.record("queue_created" if created else "queue_updated", queue=name, config=queue.config())
    return {"success": True, "created": created, "queue": queue.config()}


def queue_list(*, user=None, **extra) -> dict:
    from workflows_app.models import MessageQueue

    _no_extra(extra)
    items = [q.config() for q in MessageQueue.objects.all()]
    return {"success": True, "queues": items, "count": len(items)}


def queue_receive(*, queue_name=None, max_messages=None, consumer="api", user=None, **extra) -> dict:
    """Pull messages (each stays invisible for visibility_timeout; ack with queue_ack)."""
    _require_staff(user, "receive from a queue")
    from workflows_app.services import queues

    _no_extra(extra)
    name = _queue_name(queue_name)
    count = _int(max_messages, "max_messages", 0, 0, 1000) or None
    if not isinstance(consumer, str) or not _re_consumer.fullmatch(consumer):
        raise OperationError("INVALID_INPUT_DATA", "consumer must be a short name", {"field": "consumer"})
    messages = [m.as_dict() for m in queues.receive(name, consumer=consumer, count=count)]
    return {"success": True, "queue": name, "messages": messages, "count": len(messages)}


_re_consumer = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")


def queue_ack(*, queue_name=None, message_ids=None, message_id=None, user=None, **extra) -> dict:
    _require_staff(user, "acknowledge queue messages")
    from workflows_app.services import queues

    _no_extra(extra)
    name = _queue_name(queue_name)
    ids = message_ids if message_ids is not None else ([message_id] if message_id else [])
    if not isinstance(ids, list) or not ids or len(ids) > 1000 or not all(isinstance(i, str) for i in ids):
        raise OperationError("INVALID_INPUT_DATA", "give message_id or a list message_ids", {"field": "message_ids"})
    acked = queues.ack(queues.get_queue(name).name, ids)
    return {"success": True, "queue": name, "acknowledged": acked}


def event_ingest(*, kind="event", payload=None, source="manual", event_id=None, user=None, **extra) -> dict:
    """A manual event: it goes through the events queue and is matched against triggers."""
    _require_staff(user, "inject events")
    from workflows_app.services import events

    _no_extra(extra)
    reply = events.ingest(kind, _dict(payload, "payload"), source=str(source or "manual"), event_id=event_id)
    return {"success": True, **reply}


def webhook_receive(*, source=None, body=b"", signature=None, timestamp=None, user=None, **extra) -> dict:
    """A signed webhook (REST face: POST /api/v1/events/ with X-Nexus-Source, X-Nexus-Timestamp and
    X-Nexus-Signature = hex HMAC-SHA256(secret, f"{timestamp}." + raw body))."""
    from workflows_app.services import events

    _no_extra(extra)
    if not isinstance(source, str) or not source:
        raise OperationError("INVALID_INPUT_DATA", "source is required", {"field": "source"})
    return {"success": True, **events.receive_webhook(source, body, signature, timestamp)}


def process_dead_letters(*, limit=100, user=None, **extra) -> dict:
    """Apply the dead-letter policies now (beat also runs them): rate_limit -> retry with backoff,
    invalid_symbol -> discard (audited), otherwise -> alert an operator and keep."""
    from workflows_app.services import deadletters

    _no_extra(extra)
    if user is not None and not getattr(user, "is_staff", False):
        raise OperationError("PERMISSION_DENIED", "only staff may process dead letters", {"field": "user"})
    return {"success": True, **deadletters.process_dead_letters(limit=_int(limit, "limit", 100, 1, 5000))}
