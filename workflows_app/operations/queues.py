"""Named-queue operations: configure, list, send, receive, acknowledge, and live status.

Queues are shared by every workflow: any user reads their status; only staff configure, send to,
receive from or acknowledge on them (a send to ``events`` can fire anyone's triggers).
"""
from __future__ import annotations

import re
from typing import Any

from django.utils import timezone
from pydantic import Field, field_validator

from workflows_app import queues, selectors
from workflows_app.errors import OperationError
from workflows_app.models.queues import QUEUE_NAME_PATTERN
from workflows_app.operations.access import sees_everything, workflow_for
from workflows_app.operations.catalogue import Permission, catalogue
from workflows_app.operations.fields import Args, Flag, Int, NoArgs, Number, WholeNumber, refuse, workflow_ref
from workflows_app.services import queue_config

_CONSUMER = r"^[A-Za-z0-9_.:\-]{1,100}$"


def _required_name(value):
    if not isinstance(value, str) or not value.strip():
        raise refuse("is required")
    return value.strip()


def _short(limit: int):
    def check(value):
        if value is not None and (not isinstance(value, str | int) or isinstance(value, bool) or len(str(value)) > limit):
            raise refuse("must be a short string")
        return value
    return check


class QueueArgs(Args):
    queue_name: str = Field(..., max_length=100)
    check_queue_name = field_validator("queue_name", mode="before")(_required_name)


class QueueSendArgs(QueueArgs):
    message: Any = Field(..., description="The message payload (any JSON value).")
    group_id: str | int = Field(None, description="FIFO ordering group.", json_schema_extra={"maxLength": 100})
    message_group_id: str | int = Field(None, description="Another name of group_id.",
                                        json_schema_extra={"maxLength": 100})
    deduplication_id: str | int = Field(None, json_schema_extra={"maxLength": 200})
    delay: Number = Field(None, ge=0, le=86_400, description="Seconds.")

    check_group = field_validator("group_id", "message_group_id", mode="before")(_short(100))
    check_dedup = field_validator("deduplication_id", mode="before")(_short(200))

    @field_validator("message", mode="before")
    @classmethod
    def _json(cls, value):
        if not isinstance(value, dict | list | str | int | float | bool):
            raise refuse("must be JSON")
        return value

    @field_validator("delay", mode="before")
    @classmethod
    def _seconds(cls, value):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise refuse("must be a number of seconds") from None


@catalogue.operation(QueueSendArgs, permission=Permission.STAFF, denied="send to a queue",
                     description="Send a message to a named queue (FIFO per group_id, deduplicated in the window).")
def queue_send(args: QueueSendArgs, user) -> dict:
    group = args.group_id if args.group_id is not None else args.message_group_id
    reply = queues.send(args.queue_name, args.message, group_id=group, dedup_id=args.deduplication_id,
                        delay=args.delay or None)
    return {"success": True, **reply}


class QueueStatusArgs(Args):
    queue_name: str | None = Field(None, max_length=100, description="One queue (default: all).")
    include_messages: Flag = Field(None, description="List the messages. Default: true for dead-letter-queue (the "
                                   "specification's dead-letter loop reads them from a plain status call), false "
                                   "otherwise.")
    limit: Int = Field(100, ge=1, le=1000, description="At most this many messages per queue with include_messages.")

    @field_validator("queue_name", mode="before")
    @classmethod
    def _name(cls, value):
        return None if value == "" else _required_name(value)


@catalogue.operation(QueueStatusArgs, description="Named queues: depth, in flight, oldest message age, rate, "
                                                  "dead letters.")
def workflow_queue_status(args: QueueStatusArgs, user) -> dict:
    """Live figures per named queue: messages_available, messages_in_flight, oldest_message_age,
    processing_rate (messages/minute over the last minute), dead_lettered, config."""
    include = args.include_messages if args.include_messages is not None else args.queue_name == queues.DEAD_LETTER_QUEUE
    owner_id = None if sees_everything(user) else getattr(user, "id", -1)
    return {"success": True,
            **queues.status(args.queue_name, include_messages=include, limit=args.limit, owner_id=owner_id),
            "measured_at": selectors.iso(timezone.now())}


class QueueCreateArgs(Args):
    """The specification's queue_config."""

    name: str = Field(..., json_schema_extra={"pattern": QUEUE_NAME_PATTERN, "maxLength": 100})
    max_retries: WholeNumber = Field(3, ge=0, le=100)
    visibility_timeout: Number = Field(30, ge=0.1, le=43_200, description="Seconds a received message stays invisible.")
    message_retention: WholeNumber = Field(86_400, ge=1, le=30 * 86_400)
    batch_size: WholeNumber = Field(10, ge=1, le=1000)
    ordering: str = Field("FIFO", json_schema_extra={"enum": ["FIFO", "standard"]})
    deduplication: Flag = True
    deduplication_window: WholeNumber = Field(300, ge=1, le=7 * 86_400)
    max_messages: WholeNumber = Field(100_000, ge=1, le=10_000_000)
    description: str = Field("", max_length=300)
    workflow_id: str = workflow_ref(required=False)

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value):
        name = _required_name(value)
        if not re.match(QUEUE_NAME_PATTERN, name):
            raise refuse("may hold letters, digits, '.', '_' and '-' (max 100)")
        return name

    @field_validator("ordering", mode="before")
    @classmethod
    def _ordering(cls, value):
        if str(value).upper() == "FIFO":
            return "FIFO"
        if str(value).lower() == "standard":
            return "standard"
        raise refuse("must be FIFO or standard")


@catalogue.operation(QueueCreateArgs, permission=Permission.STAFF, denied="configure a queue",
                     description="Create or reconfigure a named queue (the specification's queue_config).")
def queue_create(args: QueueCreateArgs, user) -> dict:
    workflow = workflow_for(args.workflow_id, user) if args.workflow_id else None
    values = args.model_dump(exclude={"name", "workflow_id"})
    queue, created = queue_config.configure_queue(args.name, values, workflow)
    return {"success": True, "created": created, "queue": queue.config()}


@catalogue.operation(NoArgs, description="The named queues and their settings.")
def queue_list(args: NoArgs, user) -> dict:
    items = selectors.queue_configs()
    return {"success": True, "queues": items, "count": len(items)}


class QueueReceiveArgs(QueueArgs):
    max_messages: Int = Field(None, ge=0, le=1000, description="Default: the queue's batch_size.")
    consumer: str = Field("api", json_schema_extra={"pattern": _CONSUMER})

    @field_validator("consumer", mode="before")
    @classmethod
    def _consumer(cls, value):
        if not isinstance(value, str) or not re.fullmatch(_CONSUMER, value):
            raise refuse("must be a short name")
        return value


@catalogue.operation(QueueReceiveArgs, permission=Permission.STAFF, denied="receive from a queue",
                     description="Pull messages; each stays invisible for the queue's visibility_timeout until acked.")
def queue_receive(args: QueueReceiveArgs, user) -> dict:
    messages = [m.as_dict() for m in queues.receive(args.queue_name, consumer=args.consumer,
                                                    count=args.max_messages or None)]
    return {"success": True, "queue": args.queue_name, "messages": messages, "count": len(messages)}


class QueueAckArgs(QueueArgs):
    message_id: str = Field(None, max_length=100)
    message_ids: list[Any] = Field(None, json_schema_extra={"items": {"type": "string", "maxLength": 100},
                                                            "minItems": 1, "maxItems": 1000})


@catalogue.operation(QueueAckArgs, permission=Permission.STAFF, denied="acknowledge queue messages",
                     description="Acknowledge received messages.")
def queue_ack(args: QueueAckArgs, user) -> dict:
    ids = args.message_ids if args.message_ids is not None else ([args.message_id] if args.message_id else [])
    if not ids or len(ids) > 1000 or not all(isinstance(i, str) for i in ids):
        raise OperationError("INVALID_INPUT_DATA", "give message_id or a list message_ids", {"field": "message_ids"})
    acked = queues.ack(queues.get_queue(args.queue_name).name, ids)
    return {"success": True, "queue": args.queue_name, "acknowledged": acked}
