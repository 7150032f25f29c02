"""The engine's own step types: conditional, classify, circuit_breaker, subprocess, transform,
wait, approval, notify, queue_send. ``STEP_TYPES`` (below) declares them for the engine's plugin
(``workflows_app.plugin``); a domain app declares its own in its plugin the same way."""
from __future__ import annotations

import dataclasses
import logging
import re
from datetime import timedelta
from typing import Any

from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from workflows_app import conf, expressions, market_calendar, queues
from workflows_app.circuit import CircuitBreaker
from workflows_app.definitions import step_type_name
from workflows_app.engine import Suspension, is_reserved
from workflows_app.engine.timers import resolve_until
from workflows_app.errors import OperationError, PermanentStepError, TransientStepError
from workflows_app.registry import NoParams, RetryPolicy, StepContext, StepType, registry
from workflows_app.services import notifications
from workflows_app.services.approvals import announce_approval

log = logging.getLogger("nexus.notify")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- conditional --------------------------------------------------------------------------------
def run_action(ctx: StepContext, action: str) -> dict:
    """Run a named action inline: another step of this workflow, or a registered step type with
    its default params."""
    step = next((s for s in ctx.steps if s["name"] == action), None)
    type_name = step_type_name(step) if step else action
    step_type = registry.get_step_type(type_name)
    if step_type is None or type_name in ("conditional", "subprocess", "wait", "approval"):
        raise PermanentStepError(f"action '{action}' cannot run", error_class="invalid_action")
    params = step_type.params_model.model_validate((step or {}).get("params", {}))
    action_ctx = dataclasses.replace(ctx, step_type=type_name, params=params)
    output = step_type.handler(action_ctx)
    ctx.audit("action_completed", action=action, result=output)
    return output if isinstance(output, dict) else {"result": output}


def conditional(ctx: StepContext) -> dict:
    # The engine evaluated the step's `condition` before calling this: reaching here means it held.
    step = next((s for s in ctx.steps if s["name"] == ctx.step_name), {})
    results = {}
    for action in step.get("actions") or ctx.params.actions:
        results[action] = run_action(ctx, action)
    return {"matched": True, "actions": results}


class ConditionalParams(Strict):
    actions: list[str] = Field(default_factory=list, description="Run these when the condition holds.")


# --- classify -----------------------------------------------------------------------------------
class Rule(Strict):
    when: str = Field(max_length=expressions.MAX_LENGTH)
    category: str

    @field_validator("when")
    @classmethod
    def _valid_expression(cls, value: str) -> str:
        expressions.validate(value)
        return value


class ClassifyParams(Strict):
    categories: list[str] = Field(default_factory=lambda: ["urgent", "normal", "ignore"], min_length=1, max_length=20)
    rules: list[Rule] | None = None
    default: str | None = None


def default_rules(categories: list[str]) -> list[Rule]:
    """Without rules, classify the triggering event by its severity (0..1) or priority."""
    first, last = categories[0], categories[-1]
    middle = categories[len(categories) // 2] if len(categories) > 2 else first
    return [
        Rule(when="event.priority == 'high' or event.severity >= 0.7", category=first),
        Rule(when="event.priority == 'normal' or event.severity >= 0.3", category=middle),
        Rule(when="event is not None", category=last),
    ]


def classify(ctx: StepContext) -> dict:
    params: ClassifyParams = ctx.params
    rules = params.rules or default_rules(params.categories)
    for index, rule in enumerate(rules):
        if rule.category not in params.categories:
            raise PermanentStepError(f"rule {index} names unknown category '{rule.category}'", "invalid_params")
        if expressions.evaluate(rule.when, ctx.context):
            return {"category": rule.category, "rule": index, "rule_expression": rule.when}
    fallback = params.default or params.categories[-1]
    return {"category": fallback, "rule": None, "rule_expression": None}


# --- circuit breaker ----------------------------------------------------------------------------
class CircuitParams(Strict):
    failure_threshold: int = Field(5, ge=1, le=10_000)
    timeout_duration: float = Field(60, gt=0, le=86_400)
    reset_timeout: float = Field(300, gt=0, le=86_400)
    name: str | None = Field(None, max_length=100, description="Share one breaker across workflows.")


def circuit_breaker(ctx: StepContext) -> dict:
    params: CircuitParams = ctx.params
    key = params.name or f"{ctx.workflow_name}:{ctx.step_name}"
    config = {"failure_threshold": params.failure_threshold, "timeout_duration": params.timeout_duration,
              "reset_timeout": params.reset_timeout}
    allowed, snap = CircuitBreaker(key, **config).acquire(ctx.execution_id)
    output = {"circuit_status": "closed" if allowed else "open", "state": snap["state"],
              "recent_failures": snap["recent_failures"], "circuit": key, "trial": bool(snap.get("trial"))}
    if allowed:
        # Later failures of this execution count against the breaker (workflows_app.engine).
        output["_circuits"] = {**(ctx.context.get("_circuits") or {}), key: config}
    return output


# --- subprocess (run by the executor itself) ----------------------------------------------------
def subprocess(ctx: StepContext) -> dict:
    raise PermanentStepError("subprocess steps are run by the executor", "invalid_action")


# --- transform, wait, notify --------------------------------------------------------------------
class TransformParams(Strict):
    set: dict[str, str] = Field(default_factory=dict, description="output key -> expression over the context")

    @field_validator("set")
    @classmethod
    def _valid_expressions(cls, value: dict[str, str]) -> dict[str, str]:
        for key, expr in value.items():
            if _reserved(key):
                raise ValueError(f"'{key}' is a reserved context key (test_mode, owner, account, event, _*)")
            expressions.validate(expr)
        return value


def _reserved(key: str) -> bool:
    return is_reserved(key)


def transform(ctx: StepContext) -> dict:
    # Reserved keys are refused with the params (at save and at run time) and by the engine's output check.
    try:
        return {key: expressions.evaluate(expr, ctx.context) for key, expr in ctx.params.set.items()}
    except expressions.ExpressionError as exc:  # e.g. a value over the size bounds
        raise PermanentStepError(str(exc), "invalid_expression") from None


def _ceiling(name: str) -> float:
    return float(conf.get(name))


class WaitParams(Strict):
    seconds: float | None = Field(None, ge=0, description="How long (s), up to NEXUS_WAIT_MAX_SECONDS (7 days by "
                                                          "default); 1 s when neither seconds nor until is given.")
    exchange: str = Field("XNYS", max_length=10, description="The exchange calendar of a market `until` "
                                                             "(an ISO MIC: XNYS, XLON, XTKS, ...).")
    until: str | None = Field(None, max_length=100, description="When to wake: an ISO 8601 timestamp with a "
                              "timezone (2026-12-02T14:30:00Z), or a moment of the exchange's calendar: next_open, "
                              "next_close, open+5m, close-10m, HH:MM (exchange time; the first one after now).")

    @field_validator("seconds")
    @classmethod
    def _bounded(cls, value: float | None) -> float | None:
        if value is not None and value > _ceiling("NEXUS_WAIT_MAX_SECONDS"):
            raise ValueError(f"at most NEXUS_WAIT_MAX_SECONDS={_ceiling('NEXUS_WAIT_MAX_SECONDS'):g}")
        return value

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, value: str) -> str:
        if value not in market_calendar.exchange_names():
            raise ValueError(f"unknown exchange calendar {value!r} (an ISO MIC such as XNYS, XLON, XTKS)")
        return value

    @field_validator("until")
    @classmethod
    def _resolvable(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:  # `exchange` is validated first (declared before)
            resolve_until(value, exchange=info.data.get("exchange") or "XNYS")
        return value

    @model_validator(mode="after")
    def _one_of(self):
        if self.seconds is not None and self.until is not None:
            raise ValueError("give seconds or until, not both")
        return self


def wait(ctx: StepContext) -> Suspension:
    """Suspend the execution until the wait is over: no worker holds it meanwhile (engine.suspend)."""
    p: WaitParams = ctx.params
    now = timezone.now()
    if p.until is None:
        seconds = 1.0 if p.seconds is None else p.seconds
        return Suspension(wake_at=now + timedelta(seconds=seconds), output={"waited": seconds})
    wake_at = resolve_until(p.until, now, p.exchange)
    seconds = max((wake_at - now).total_seconds(), 0.0)
    if seconds > _ceiling("NEXUS_WAIT_MAX_SECONDS"):
        raise PermanentStepError(f"until {p.until} is more than NEXUS_WAIT_MAX_SECONDS="
                                 f"{_ceiling('NEXUS_WAIT_MAX_SECONDS'):g} s ahead", "invalid_params")
    return Suspension(wake_at=max(wake_at, now), output={"waited": round(seconds, 3), "until": wake_at.isoformat()})


# --- approval -----------------------------------------------------------------------------------
class ApprovalParams(Strict):
    summary: str = Field("Approve the next step?", max_length=2000,
                         description="What the approver reads; {placeholders} are filled from the context.")
    expires_in: float = Field(3600, gt=0, description="Seconds until the request expires, rejected by default "
                                                      "(at most NEXUS_APPROVAL_MAX_SECONDS, 7 days by default).")
    show: dict[str, str] = Field(default_factory=dict, max_length=20,
                                 description="label -> expression over the context: values shown to the approver.")

    @field_validator("expires_in")
    @classmethod
    def _bounded(cls, value: float) -> float:
        if value > _ceiling("NEXUS_APPROVAL_MAX_SECONDS"):
            raise ValueError(f"at most NEXUS_APPROVAL_MAX_SECONDS={_ceiling('NEXUS_APPROVAL_MAX_SECONDS'):g}")
        return value

    @field_validator("show")
    @classmethod
    def _valid_expressions(cls, value: dict[str, str]) -> dict[str, str]:
        for expr in value.values():
            expressions.validate(expr)
        return value


def _fill(value: Any, context: dict) -> Any:
    """A step's params with the {placeholders} of their strings filled from the context."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: _render(context, m.group(1)), value)
    if isinstance(value, dict):
        return {k: _fill(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, context) for v in value]
    return value


def approval_subject(ctx: StepContext) -> dict:
    """What is to be approved: the next step (its params rendered with the context) and the `show` values."""
    names = [s["name"] for s in ctx.steps]
    index = names.index(ctx.step_name) if ctx.step_name in names else len(names)
    subject: dict[str, Any] = {}
    if index + 1 < len(names):
        step = ctx.steps[index + 1]
        subject["next_step"] = {"name": step["name"], "type": step_type_name(step),
                                "params": _fill(step.get("params") or {}, ctx.context)}
    try:
        subject["values"] = {label: expressions.evaluate(expr, ctx.context) for label, expr in ctx.params.show.items()}
    except expressions.ExpressionError as exc:
        raise PermanentStepError(str(exc), "invalid_expression") from None
    return subject


def approval(ctx: StepContext) -> Suspension:
    """Suspend until a person approves or rejects (operations execution_approve / execution_reject),
    or the request expires (rejected by default)."""
    p: ApprovalParams = ctx.params
    summary = _fill(p.summary, ctx.context)[:2000]
    return Suspension(wake_at=timezone.now() + timedelta(seconds=p.expires_in), output={},
                      approval={"summary": summary, "subject": approval_subject(ctx)}, on_open=announce_approval)


class NotifyParams(Strict):
    message: str = Field("workflow notification", max_length=2000)
    level: str = Field("info", pattern="^(info|warning|critical)$")
    channel: str = Field("audit", pattern="^(audit|log)$")
    channels: list[str] | None = Field(None, max_length=20, description="Outbound channels (NEXUS_NOTIFY_CHANNELS) "
                                       "to deliver to; default: every channel taking the kind `notify`; [] for none.")


def notify(ctx: StepContext) -> dict:
    """Deliver a notification to the audit trail (and the log), and to the outbound channels."""
    message = _PLACEHOLDER.sub(lambda m: _render(ctx.context, m.group(1)), ctx.params.message)
    getattr(log, "warning" if ctx.params.level != "info" else "info")("[%s] %s", ctx.workflow_name, message)
    ctx.audit("notification", message=message, level=ctx.params.level)
    payload = {"message": message, "level": ctx.params.level, "workflow": ctx.workflow_name,
               "workflow_id": ctx.workflow_id, "execution_id": ctx.execution_id, "step": ctx.step_name}
    return {"notified": True, "channel": ctx.params.channel, "message": message, "level": ctx.params.level,
            "delivery_ids": deliver_outbound(ctx, "notify", payload, ctx.params.channels)}


def deliver_outbound(ctx: StepContext, kind: str, payload: dict, channels: list[str] | None) -> list[str]:
    """The step's deliveries (keyed by the step: a retried step gets the same ones; test mode sends none)."""
    try:
        return notifications.notify(kind, payload, execution=ctx.execution_id, channels=channels,
                                    key=f"{ctx.idempotency_key}:{kind}")
    except OperationError as exc:  # an unknown channel name, an oversized payload: retrying cannot help
        raise PermanentStepError(exc.message, error_class="invalid_notification") from exc


_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_.]{0,100})\}")


def _render(context: dict, dotted: str) -> str:
    """`{generate_signals.signal}` -> the value; plain dict lookups only (no str.format attributes)."""
    value: Any = context
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "{" + dotted + "}" if value is None else str(value)[:500]


# --- queue_send ---------------------------------------------------------------------------------
class QueueSendParams(Strict):
    queue: str = Field(default_factory=lambda: registry.send_queue or "", max_length=100, validate_default=True,
                       description="The named queue (default: the queue a domain plugin names as send_queue).")
    message: dict = Field(default_factory=dict, description="Sent as is, plus the context keys in `include`.")
    include: list[str] = Field(default_factory=list, max_length=50,
                               description="Context keys copied into the message (e.g. signal, symbol).")
    group_id: str | None = Field(None, max_length=100, description="FIFO message group (default: the symbol).")
    deduplication_id: str | None = Field(None, max_length=200)
    delay: float | None = Field(None, ge=0, le=43_200)

    @field_validator("queue")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value:
            raise ValueError("name a queue (no plugin declares a default send queue)")
        return value


def queue_send(ctx: StepContext) -> dict:
    p: QueueSendParams = ctx.params
    message = dict(p.message)
    for key in p.include:
        if key in ctx.context:
            message[key] = ctx.context[key]
    message.setdefault("execution_id", ctx.execution_id)
    message.setdefault("workflow_id", ctx.workflow_id)
    group = p.group_id or message.get("symbol") or ctx.context.get("symbol") or "default"
    try:
        reply = queues.send(p.queue, message, group_id=str(group), delay=p.delay,
                            dedup_id=p.deduplication_id or f"{ctx.idempotency_key}:queue_send")
    except OperationError as exc:
        if exc.code == "QUEUE_FULL":
            raise TransientStepError(exc.message, error_class="queue_full") from exc
        raise PermanentStepError(exc.message, error_class=exc.code.lower()) from exc
    return {"queued": True, "queue": p.queue, "message_id": reply["message_id"],
            "deduplicated": reply["deduplicated"], "message": message}


NO_RETRY = RetryPolicy(max_retries=0)
STEP_TYPES = (
    StepType(name="conditional", handler=conditional, params_model=ConditionalParams, retry=NO_RETRY,
             description="Run actions when the step's condition holds."),
    StepType(name="classify", handler=classify, params_model=ClassifyParams, retry=NO_RETRY, quick=True,
             description="Pick a category by the first matching rule."),
    StepType(name="circuit_breaker", handler=circuit_breaker, params_model=CircuitParams, retry=NO_RETRY,
             description="Gate later steps on a breaker shared by all executions."),
    StepType(name="subprocess", handler=subprocess, params_model=NoParams, retry=NO_RETRY,
             description="Run another workflow as a child execution and wait for it."),
    StepType(name="transform", handler=transform, params_model=TransformParams, retry=NO_RETRY, quick=True,
             description="Compute new context values from expressions."),
    StepType(name="wait", handler=wait, params_model=WaitParams,
             description="Pause for seconds (up to days) or until a time, holding no worker (durable timer)."),
    StepType(name="approval", handler=approval, params_model=ApprovalParams, retry=NO_RETRY,
             description="Wait for a person to approve (continue) or reject (on_reject, else fail); "
                         "rejected by default at expires_in."),
    StepType(name="notify", handler=notify, params_model=NotifyParams, action=True,
             description="Write a notification to the audit trail and the log; deliver it to outbound channels."),
    StepType(name="queue_send", handler=queue_send, params_model=QueueSendParams, action=True,
             retry=RetryPolicy(max_retries=3, backoff=1.0, backoff_max=30.0),
             description="Send a message (plus context keys) to a named queue."),
)
