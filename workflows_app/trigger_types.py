"""The engine's trigger types: schedule, manual, webhook and generic named events.

Market and news triggers (price_change, volume_spike, ...) are registered by the trading app.
"""
from __future__ import annotations

import zoneinfo

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from workflows_app import expressions
from workflows_app.registry import registry


class TriggerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cooldown: int = Field(300, ge=0, le=86_400, description="Seconds before an event trigger may fire again.")
    enabled: bool = True


class ScheduleParams(TriggerParams):
    cron: str = Field(max_length=100)
    timezone: str = Field("UTC", max_length=64)

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


registry.register_trigger_type("schedule", ScheduleParams, description="Cron in an IANA timezone (celery-beat).")
registry.register_trigger_type("manual", ManualParams, description="Started by a person or an API call.")
registry.register_trigger_type("webhook", WebhookParams, event_kinds=("webhook",),
                               description="An HMAC-signed POST to /api/v1/events/.")
registry.register_trigger_type("event", EventParams, event_kinds=("event",),
                               description="A named event whose conditions hold.")
