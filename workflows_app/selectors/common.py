"""What every read shares: windows, timestamps, percentiles, who sees what."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model

from workflows_app.errors import OperationError

_WINDOW = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_window(window: str | None, field: str = "window") -> timedelta:
    match = _WINDOW.match(str(window or "24h").strip())
    if not match:
        raise OperationError("INVALID_INPUT_DATA", f"{field} must look like 30m, 24h or 7d", {"field": field})
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))  # ceil
    return sorted_values[min(rank, len(sorted_values)) - 1]


def sees_everything(user) -> bool:
    """Staff and trusted local callers (None) read every workflow's rows; a user only their own."""
    return user is None or bool(getattr(user, "is_staff", False))


def user_by_id(user_id):
    try:
        return get_user_model().objects.filter(pk=int(user_id)).first()
    except (TypeError, ValueError):
        return None
