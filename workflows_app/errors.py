"""Errors the engine understands.

Step handlers raise ``TransientStepError`` (retried with the step's backoff) or
``PermanentStepError`` (no retry: dead letter, then failure or compensation). Other exceptions
are classified by the registered classifiers (see ``registry.classify_error``).
"""
from __future__ import annotations

import functools

from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class OperationError(Exception):
    """A refused operation: every face turns this into its own error reply."""

    def __init__(self, code: str, message: str, details: dict | list | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

    def as_dict(self) -> dict:
        return {"success": False, "error": {"code": self.code, "message": self.message, "details": self.details}}


class StepError(Exception):
    transient = False
    default_class = "step_error"

    def __init__(self, message: str, error_class: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.error_class = error_class or self.default_class
        self.retry_after = retry_after


class TransientStepError(StepError):
    """Worth retrying: rate limits, timeouts, 5xx."""

    transient = True
    default_class = "transient"


class PermanentStepError(StepError):
    """Retrying cannot help: bad symbol, broker rejection, invalid input."""

    default_class = "permanent"


@functools.cache
def infrastructure_errors() -> tuple[type[BaseException], ...]:
    """Database and Redis failures: the platform, not the step, is at fault (retried as transient).

    Only connection-level errors: an IntegrityError or a Redis ResponseError is a bug, not an outage."""
    found: list[type[BaseException]] = [OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError]
    try:  # raw driver errors, when code talks to the connection below Django's wrapper
        import psycopg  # local: the driver is optional (any database Django supports)

        found += [psycopg.OperationalError, psycopg.InterfaceError]
    except ImportError:
        pass
    return tuple(found)


def is_infrastructure(exc: BaseException) -> bool:
    return isinstance(exc, infrastructure_errors())
