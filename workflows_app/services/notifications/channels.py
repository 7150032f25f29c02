"""Channels (settings), request bodies per format, and the signature a receiver verifies.

``NEXUS_NOTIFY_CHANNELS`` is a JSON list (or, in settings, a Python list) of channels::

    [{"name": "ops", "url": "https://hooks.example/nexus", "secret": "...", "format": "json",
      "kinds": ["failure_alert", "notification"], "timeout": 5}]

``format``: ``json`` (the generic envelope), ``slack`` (an incoming webhook: ``{"text": ...}``) or
``telegram`` (a bot relay: ``{"chat_id": ..., "text": ...}``; ``chat_id`` is required). ``kinds``
lists the notification kinds the channel takes (``["*"]``, the default, takes every kind).

Signature: ``X-Nexus-Timestamp: <unix seconds>`` and ``X-Nexus-Signature: sha256=<hex>``, the
HMAC-SHA256 with the channel's secret of ``"<timestamp>.<body>"``. A receiver recomputes it over the
raw body, compares in constant time, and refuses a timestamp far from its clock (a replay).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Literal

from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

from workflows_app import conf

SIGNATURE_HEADER, TIMESTAMP_HEADER = "X-Nexus-Signature", "X-Nexus-Timestamp"
TEXT_LIMIT = 3000  # characters of a chat message (Slack's section limit; Telegram takes 4096)


class Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    url: HttpUrl
    secret: str = Field(min_length=16, max_length=512, repr=False)
    format: Literal["json", "slack", "telegram"] = "json"
    kinds: tuple[str, ...] = ("*",)
    timeout: float = Field(5.0, gt=0, le=30)
    max_attempts: int | None = Field(None, ge=1, le=50, description="Lower than NEXUS_NOTIFY_MAX_ATTEMPTS only.")
    chat_id: str | int | None = None

    @model_validator(mode="after")
    def _telegram_needs_chat(self):
        if self.format == "telegram" and self.chat_id in (None, ""):
            raise ValueError("a telegram channel needs chat_id")
        return self

    def takes(self, kind: str) -> bool:
        return "*" in self.kinds or kind in self.kinds

    def attempts(self) -> int:
        ceiling = int(conf.get("NEXUS_NOTIFY_MAX_ATTEMPTS"))
        return min(self.max_attempts or ceiling, ceiling)  # a channel can only lower the operator's ceiling


_parsed: tuple[str, dict[str, Channel]] | None = None


def configured() -> dict[str, Channel]:
    """The channels by name, parsed once per value of the setting; a bad entry is refused naming its field."""
    global _parsed
    raw = conf.get("NEXUS_NOTIFY_CHANNELS")
    marker = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=str)
    if _parsed is not None and _parsed[0] == marker:
        return _parsed[1]
    items = json.loads(raw) if isinstance(raw, str) and raw.strip() else (raw or [])
    if not isinstance(items, list):
        raise ImproperlyConfigured("NEXUS_NOTIFY_CHANNELS must be a JSON list of channels")
    channels: dict[str, Channel] = {}
    for index, item in enumerate(items):
        try:
            channel = Channel.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ImproperlyConfigured(f"NEXUS_NOTIFY_CHANNELS[{index}].{where}: {first['msg']}") from None
        if channel.name in channels:
            raise ImproperlyConfigured(f"NEXUS_NOTIFY_CHANNELS[{index}].name: '{channel.name}' is taken")
        channels[channel.name] = channel
    _parsed = (marker, channels)
    return channels


def _text(kind: str, payload: dict) -> str:
    headline = next((payload[k] for k in ("text", "message", "subject") if isinstance(payload.get(k), str)
                     and payload[k]), None)
    text = f"[{kind}] " + (headline or json.dumps(payload, sort_keys=True, default=str))
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT - 1] + "…"


def render(channel: Channel, kind: str, payload: dict, envelope: dict) -> str:
    """The request body for this channel's format (``envelope``: delivery id, time, execution)."""
    if channel.format == "slack":
        body: dict = {"text": _text(kind, payload)}
    elif channel.format == "telegram":
        body = {"chat_id": channel.chat_id, "text": _text(kind, payload)}
    else:
        body = {**envelope, "kind": kind, "payload": payload}
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str)


def signature(secret: str, timestamp: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(channel: Channel, body: str, delivery_id: str, kind: str, now: float | None = None) -> dict:
    timestamp = str(int(now if now is not None else time.time()))
    return {"Content-Type": "application/json", "User-Agent": "nexus-notifications/1",
            TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(channel.secret, timestamp, body),
            "X-Nexus-Delivery": delivery_id, "X-Nexus-Kind": kind}


def verify(secret: str, body: str | bytes, timestamp: str, given: str, *, tolerance: float = 300,
           now: float | None = None) -> bool:
    """What a receiver does (also usable by a Python receiver as is)."""
    text = body.decode() if isinstance(body, bytes) else body
    try:
        fresh = abs((now if now is not None else time.time()) - int(timestamp)) <= tolerance
    except (TypeError, ValueError):
        return False
    return fresh and hmac.compare_digest(signature(secret, timestamp, text), given or "")
