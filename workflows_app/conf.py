"""Engine settings, read from ``django.conf.settings`` at call time (tests override settings).

App modules never read the environment: ``nexus_project/settings`` does, and hands every
``NEXUS_*`` variable on as a setting of the same name (a string); ``AppSettings.get`` converts
it to the type of its default here.

| name | default | meaning |
|---|---|---|
| NEXUS_RECONCILE_EVERY | 30 | beat: the reconciler runs this often (s) |
| NEXUS_QUEUE_SWEEP_SECONDS | 5 | beat: named-queue sweep (visibility timeouts, inbox re-feed) this often |
| NEXUS_DLQ_PROCESS_SECONDS | 60 | beat: dead-letter policies applied this often |
| NEXUS_DLQ_RETRY_CLASSES | (the plugins' retry classes: rate_limit) | error classes retried with backoff |
| NEXUS_DLQ_DISCARD_CLASSES | (the plugins' discard classes) | error classes discarded (audited) |
| NEXUS_DLQ_RETRY_BASE / _MAX | 60 / 3600 | redrive backoff: first delay, cap (s) |
| NEXUS_DLQ_MAX_AUTO_RETRIES | 5 | automatic redrives before an operator is alerted |
| NEXUS_WEBHOOK_SECRETS | "" | ``source:secret,...`` (or a dict) |
| NEXUS_WEBHOOK_TOLERANCE | 300 | a webhook's timestamp must be this close to now (s) |
| NEXUS_BEAT_LOCK_TTL | 30 | a stand-by beat takes over within this (s) |
| NEXUS_NOTIFY_CHANNELS | "" | outbound channels, JSON list of {name, url, secret, format, kinds, timeout, chat_id} |
| NEXUS_NOTIFY_MAX_ATTEMPTS | 5 | tries per delivery before it is marked failed (a channel may lower it) |
| NEXUS_NOTIFY_BACKOFF / _MAX | 2 / 300 | delay before the second try, doubling per try, capped (s) |
| NEXUS_NOTIFY_MAX_PAYLOAD_BYTES | 16384 | ceiling of one rendered request body |
| NEXUS_NOTIFY_RESPONSE_EXCERPT | 1000 | characters of a receiver's reply kept per attempt |
| NEXUS_NOTIFY_SWEEP_SECONDS | 30 | beat: due deliveries whose message was lost are re-enqueued this often |
| NEXUS_NOTIFY_STALE_SECONDS | 60 | a due delivery untouched this long after its time counts as lost |
| NEXUS_TIMER_EVERY | 5 | beat: the timer resumes due waits and expires approvals this often (s) |
| NEXUS_WAIT_MAX_SECONDS | 604800 | ceiling of a `wait` (seconds or until), 7 days |
| NEXUS_APPROVAL_MAX_SECONDS | 604800 | ceiling of an approval's `expires_in`, 7 days |
| NEXUS_WAIT_NUDGE_SECONDS | 300 | a wait this short also gets a delayed wake message (prompt; the timer stays the truth) |
| NEXUS_SCHEDULE_GRACE | 300 | a schedule firing this late still fires under ``catch_up: skip`` (s) |
| NEXUS_SCHEDULE_CATCH_UP_MAX | 86400 | ceiling on a schedule's ``catch_up_window`` (s) |
| NEXUS_ADMIN_USER / NEXUS_ADMIN_PASSWORD | admin / "" (generated) | ``ensure_admin``'s user |
"""
from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

log = logging.getLogger("nexus.conf")

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


class AppSettings:
    """An app's settings: names with typed defaults; a value is the Django setting of that name,
    converted to its default's type (bool, int, float, str, frozenset of a comma list), else the
    default."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.defaults = defaults

    def is_set(self, name: str) -> bool:
        return settings.configured and getattr(settings, name, None) is not None

    def get(self, name: str, default: Any = None) -> Any:
        fallback = self.defaults.get(name, default)
        value = getattr(settings, name, None) if settings.configured else None
        if value is None:
            return fallback
        return coerce(name, value, fallback)


def coerce(name: str, value: Any, fallback: Any) -> Any:
    if isinstance(fallback, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        log.warning("setting %s=%r is not a boolean; using %r", name, value, fallback)
        return fallback
    if isinstance(fallback, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(fallback, float):
        return float(value)
    if isinstance(fallback, frozenset):
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(str(v) for v in value)
        return frozenset(v.strip() for v in str(value).split(",") if v.strip())
    return value


DEFAULTS: dict[str, Any] = {
    "NEXUS_RECONCILE_EVERY": 30.0,
    "NEXUS_QUEUE_SWEEP_SECONDS": 5.0,
    "NEXUS_DLQ_PROCESS_SECONDS": 60.0,
    "NEXUS_DLQ_RETRY_CLASSES": frozenset(),
    "NEXUS_DLQ_DISCARD_CLASSES": frozenset(),
    "NEXUS_DLQ_RETRY_BASE": 60.0,
    "NEXUS_DLQ_RETRY_MAX": 3600.0,
    "NEXUS_DLQ_MAX_AUTO_RETRIES": 5,
    "NEXUS_WEBHOOK_SECRETS": "",
    "NEXUS_WEBHOOK_TOLERANCE": 300,
    "NEXUS_BEAT_LOCK_TTL": 30,
    "NEXUS_NOTIFY_CHANNELS": "",
    "NEXUS_NOTIFY_MAX_ATTEMPTS": 5,
    "NEXUS_NOTIFY_BACKOFF": 2.0,
    "NEXUS_NOTIFY_BACKOFF_MAX": 300.0,
    "NEXUS_NOTIFY_MAX_PAYLOAD_BYTES": 16384,
    "NEXUS_NOTIFY_RESPONSE_EXCERPT": 1000,
    "NEXUS_NOTIFY_SWEEP_SECONDS": 30.0,
    "NEXUS_NOTIFY_STALE_SECONDS": 60.0,
    "NEXUS_TIMER_EVERY": 5.0,
    "NEXUS_WAIT_MAX_SECONDS": 604800.0,
    "NEXUS_APPROVAL_MAX_SECONDS": 604800.0,
    "NEXUS_WAIT_NUDGE_SECONDS": 300.0,
    "NEXUS_SCHEDULE_GRACE": 300,
    "NEXUS_SCHEDULE_CATCH_UP_MAX": 86_400,
    "NEXUS_ADMIN_USER": "admin",
    "NEXUS_ADMIN_PASSWORD": "",
}

engine_settings = AppSettings(DEFAULTS)
get = engine_settings.get
is_set = engine_settings.is_set
