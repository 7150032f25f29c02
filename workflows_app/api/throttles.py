"""Throttles: writes per user, the public webhook per client address.

Rates come from settings at request time (``NEXUS_API_WRITE_RATE``, ``NEXUS_API_WEBHOOK_RATE``,
e.g. ``"120/min"``; empty or None turns a throttle off) and counts live in the default cache
(Redis), so every web process shares them.
"""
from __future__ import annotations

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle


class WriteRateThrottle(SimpleRateThrottle):
    """Unsafe methods only, keyed by user (or address when anonymous)."""

    scope = "writes"
    setting = "NEXUS_API_WRITE_RATE"
    default = "120/min"

    def get_rate(self):
        return getattr(settings, self.setting, self.default) or None

    def get_cache_key(self, request, view):
        if request.method in SAFE_METHODS:
            return None
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class WebhookRateThrottle(WriteRateThrottle):
    scope = "webhook"
    setting = "NEXUS_API_WEBHOOK_RATE"
    default = "600/min"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginRateThrottle(WebhookRateThrottle):
    """Token requests per client address (password guessing)."""

    scope = "login"
    setting = "NEXUS_API_LOGIN_RATE"
    default = "10/min"
