"""The engine's trigger types: schedule, manual, webhook and generic named events, with the
evaluators of the event ones. ``TRIGGER_TYPES`` declares them for the engine's plugin
(``workflows_app.plugin``); market and news triggers (price_change, ...) are trading's.
"""
from __future__ import annotations

import zoneinfo
from typing import Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from workflows_app import expressions, market_calendar
from workflows_app.registry import TriggerType


class TriggerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cooldown: int = Field(300, ge=0, le=86_400, description="Seconds before an event trigger may fire again.")
    enabled: bool = True


def _known_exchange(value: str | None) -> str | None:
    if value is not None and value not in market_calendar.exchange_names():
        raise ValueError(f"unknown exchange calendar {value!r} (an ISO MIC such as XNYS, XLON, XTKS)")
    return value


class CatchUpParams(TriggerParams):
    catch_up: Literal["skip", "latest", "all"] = Field(
        "skip", description="Firings missed while beat was down: skip them, fire the latest once, or fire each.")
    catch_up_window: int = Field(3600, ge=60, le=7 * 86_400, description=(
        "Seconds back a catch-up looks (bounded by the NEXUS_SCHEDULE_CATCH_UP_MAX setting)."))


class ScheduleParams(CatchUpParams):
    cron: str = Field(max_length=100)
    timezone: str = Field("UTC", max_length=64)
    calendar: str | None = Field(None, max_length=16, description=(
        "An exchange calendar (XNYS, ...): no firing on days the exchange is closed."))
    session_only: bool = Field(False, description="With calendar: no firing outside the day's session either.")

    _valid_calendar = field_validator("calendar")(classmethod(lambda cls, value: _known_exchange(value)))

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"invalid cron expression {value!r} (want 5 fields: minute hour day month weekday)")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {value!r}") from None
        return value


class MarketScheduleParams(CatchUpParams):
    exchange: str = Field(max_length=16, description="The exchange calendar (an ISO MIC: XNYS, XLON, ...).")
    at: str = Field(max_length=16, description=(
        "open, close, open+5m, close-15m, open+1h or HH:MM (exchange time), within the session."))
    days: Literal["trading"] = Field("trading", description="Every trading session (holidays never fire).")

    _valid_exchange = field_validator("exchange")(classmethod(lambda cls, value: _known_exchange(value)))

    @field_validator("at")
    @classmethod
    def _valid_at(cls, value: str, info: ValidationInfo) -> str:
        exchange = info.data.get("exchange")
        if exchange is None:
            market_calendar.parse_at(value)  # the exchange's own error is reported; check the form only
        else:
            market_calendar.validate_in_session(exchange, value)
        return value


class ManualParams(TriggerParams):
    pass


class WebhookParams(TriggerParams):
    source: str = Field("default", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    event: str | None = Field(None, max_length=100)


class EventParams(TriggerParams):
    name: str = Field(max_length=100)
    conditions: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("conditions")
    @classmethod
    def _valid_conditions(cls, value: list[str]) -> list[str]:
        for expr in value:
            expressions.validate(expr)
        return value


def webhook_evaluator(params: WebhookParams, event: dict, state: dict) -> tuple[bool, dict]:
    if (event.get("ingest_source") or event.get("source")) != params.source:  # who signed it, not the body's claim
        return False, {}
    if params.event and event.get("event") != params.event:
        return False, {}
    return True, {"source": params.source, "event": event.get("event")}


def event_evaluator(params: EventParams, event: dict, state: dict) -> tuple[bool, dict]:
    name = event.get("name") or event.get("event")
    if name != params.name:
        return False, {}
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    context = {**event, **data, "event": event}
    for condition in params.conditions:
        if not expressions.evaluate(condition, context):
            return False, {}
    return True, {"name": params.name, "conditions": params.conditions}


TRIGGER_TYPES = (
    TriggerType(name="schedule", params_model=ScheduleParams, description="Cron in an IANA timezone (celery-beat)."),
    TriggerType(name="market_schedule", params_model=MarketScheduleParams, description=(
        "A moment of each trading session of an exchange (open+5m, close-15m, HH:MM): follows early "
        "closes and DST, never fires on a holiday (celery-beat).")),
    TriggerType(name="manual", params_model=ManualParams, description="Started by a person or an API call."),
    TriggerType(name="webhook", params_model=WebhookParams, event_kinds=("webhook",), evaluator=webhook_evaluator,
                description="An HMAC-signed POST to /api/v1/events/."),
    TriggerType(name="event", params_model=EventParams, event_kinds=("event",), evaluator=event_evaluator,
                description="A named event whose conditions hold."),
)
