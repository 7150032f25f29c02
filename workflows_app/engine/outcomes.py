"""How an engine call ends when it does not return: the tasks translate these for Celery."""
from __future__ import annotations

from dataclasses import dataclass


class StaleMessage(Exception):
    """The message belongs to an older dispatch or a finished execution: drop it."""


class StepFailed(Exception):
    """The step failed for good; the execution was failed or compensation started."""


@dataclass
class RetryStep(Exception):
    """Send the message again after `delay` seconds (the step's own backoff or the infrastructure's)."""

    delay: float
    error: BaseException
