"""Dead-letter operations: list, redrive, and apply the per-error-class policies now."""
from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import Field

from workflows_app import filters, selectors
from workflows_app.errors import OperationError
from workflows_app.models import DeadLetter
from workflows_app.operations.catalogue import Permission, catalogue
from workflows_app.operations.fields import Args, Flag, Int, Timestamp
from workflows_app.services import deadletters


class DeadLettersArgs(Args):
    status: Literal[tuple(DeadLetter.Status.values)] = None
    error_class: str = Field(None, max_length=100)
    queue_name: str = Field(None, max_length=100)
    source: Literal["step", "queue"] = None
    created_after: Timestamp = None
    limit: Int = Field(50, ge=1, le=1000)
    offset: Int = Field(0, ge=0, le=10**9)
    include_traceback: Flag = False


@catalogue.operation(DeadLettersArgs, description="List dead letters.")
def dead_letters(args: DeadLettersArgs, user) -> dict:
    qs = filters.apply(filters.DeadLetterFilter, selectors.visible_dead_letters(user).order_by("-created_at"),
                       args.model_dump(include={"status", "error_class", "queue_name", "source", "created_after"}))
    total = qs.count()
    items = [selectors.dead_letter_row(letter, include_traceback=args.include_traceback)
             for letter in qs[args.offset:args.offset + args.limit]]
    return {"success": True, "dead_letters": items, "count": len(items), "total": total}


class RedriveArgs(Args):
    dead_letter_id: str = Field(None, json_schema_extra={"format": "uuid"})
    dead_letter_ids: list[Any] = Field(None, json_schema_extra={"items": {"type": "string", "format": "uuid"},
                                                                "minItems": 1, "maxItems": 500})


@catalogue.operation(RedriveArgs, description="Send dead letters back (a step resumes; a message goes back on its "
                                              "queue).")
def dead_letter_redrive(args: RedriveArgs, user) -> dict:
    ids = args.dead_letter_ids if args.dead_letter_ids is not None else (
        [args.dead_letter_id] if args.dead_letter_id else [])
    if not ids or len(ids) > 500:
        raise OperationError("INVALID_INPUT_DATA", "give dead_letter_id or a list dead_letter_ids (at most 500)",
                             {"field": "dead_letter_id"})
    results = []
    for raw_id in ids:
        try:
            pk = uuid.UUID(str(raw_id))
        except (ValueError, TypeError, AttributeError):
            raise OperationError("INVALID_INPUT_DATA", "dead_letter_id must be a UUID",
                                 {"field": "dead_letter_id"}) from None
        letter = selectors.visible_dead_letters(user).filter(pk=pk).first()
        if letter is None:
            raise OperationError("INVALID_INPUT_DATA", f"no dead letter {raw_id}", {"field": "dead_letter_id"})
        results.append(deadletters.redrive_letter(letter))
    return {"success": True, "redriven": results, "count": len(results)}


class ProcessArgs(Args):
    limit: Int = Field(100, ge=1, le=5000)


@catalogue.operation(ProcessArgs, permission=Permission.STAFF, denied="process dead letters",
                     description="Apply the dead-letter policies now (rate_limit: retry with backoff; "
                                 "invalid_symbol: discard, audited; otherwise: alert an operator).")
def process_dead_letters(args: ProcessArgs, user) -> dict:
    return {"success": True, **deadletters.process_dead_letters(limit=args.limit)}
