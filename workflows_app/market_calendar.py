"""Exchange calendars for schedules: trading sessions (holidays, early closes, DST) from
``exchange_calendars``, and the firings of ``schedule`` / ``market_schedule`` triggers.

Pure functions of (parameters, time): the beat scheduler (``workflows_app.beat``), the schedule
firing (``services.events.fire_schedule``), ``workflow_status`` and ``wait`` all resolve moments here,
so they agree on what "the next firing" is.

A market moment (``at``) is ``open`` / ``close`` with an optional offset (``open+5m``, ``close-15m``,
``open+1h``) or a wall-clock ``HH:MM`` in the exchange's timezone; ``next_open`` / ``next_close`` are
aliases of ``open`` / ``close`` (the ``wait`` spelling). A trigger's moment must lie within its
session (open <= moment <= close): on an early close a ``close-15m`` follows the close (12:45 in New
York the day after Thanksgiving), a ``15:30`` is skipped.
"""
from __future__ import annotations

import re
import warnings
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

import pandas as pd
from croniter import croniter

# offsets of up to 4 digits: a 24-hour session (the 24/7 calendar) has 1,440 minutes
AT_PATTERN = re.compile(r"^(?:(?:next_)?(open|close)(?:([+-])(\d{1,4})([mh]))?|([01]\d|2[0-3]):([0-5]\d))$")
SCAN_DAYS = 400  # how far ahead a next firing is looked for (a calendar covers about a year ahead)
SCAN_CANDIDATES = 20_000  # cron candidates examined at most (a per-minute cron over a long weekend)


class CalendarError(ValueError):
    """An unknown exchange or a malformed / out-of-session moment."""


@lru_cache(maxsize=1)
def exchange_names() -> frozenset[str]:
    import exchange_calendars as xcals  # heavy: loaded on first use

    return frozenset(xcals.get_calendar_names(include_aliases=False))


@lru_cache(maxsize=8)
def calendar(exchange: str):
    """The exchange's calendar (cached: building one takes a moment)."""
    import exchange_calendars as xcals

    if exchange not in exchange_names():
        raise CalendarError(f"unknown exchange calendar {exchange!r} (an ISO MIC such as XNYS, XLON, XTKS)")
    with warnings.catch_warnings():  # exchange_calendars on pandas 3 warns about its own code
        warnings.simplefilter("ignore")
        return xcals.get_calendar(exchange)


def tz(exchange: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(str(calendar(exchange).tz))


def parse_at(spec: str) -> tuple[str, timedelta | time]:
    """``("open"|"close", offset)`` or ``("time", HH:MM)``; a CalendarError names what is wrong."""
    match = AT_PATTERN.match(str(spec or "").strip())
    if not match:
        raise CalendarError(f"invalid moment {spec!r} (want open, close, open+5m, close-15m, open+1h or HH:MM)")
    anchor, sign, amount, unit, hour, minute = match.groups()
    if hour is not None:
        return "time", time(int(hour), int(minute))
    offset = timedelta(**{"minutes" if unit == "m" else "hours": int(amount or 0)})
    return anchor, -offset if sign == "-" else offset


def validate_in_session(exchange: str, spec: str) -> None:
    """A trigger's moment must fall within a regular session: an offset at most the session's length
    (open+ forward, close- backward), a wall-clock time between the regular open and close."""
    anchor, value = parse_at(spec)
    cal = calendar(exchange)
    opens, closes = cal.schedule["open"].iloc[-260:], cal.schedule["close"].iloc[-260:]
    longest = (closes - opens).max().to_pytimedelta()
    if anchor == "open" and not timedelta(0) <= value <= longest:
        raise CalendarError(f"open offset must be within the session (0 to +{_span(longest)})")
    if anchor == "close" and not -longest <= value <= timedelta(0):
        raise CalendarError(f"close offset must be within the session (-{_span(longest)} to 0)")
    if anchor == "time":
        zone = tz(exchange)
        first = min(o.astimezone(zone).time() for o in opens.dt.to_pydatetime())
        last = max(c.astimezone(zone).time() for c in closes.dt.to_pydatetime())
        if not first <= value <= last:
            raise CalendarError(f"{spec} is outside {exchange}'s session ({first:%H:%M}-{last:%H:%M} {zone.key})")


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def session(exchange: str, day: date) -> tuple[datetime, datetime] | None:
    """(open, close) in UTC of the session on that date, or None when the exchange is closed."""
    sched = calendar(exchange).schedule
    key = pd.Timestamp(day)
    if key not in sched.index:
        return None
    row = sched.loc[key]
    return row["open"].to_pydatetime(), row["close"].to_pydatetime()


def regular_close(exchange: str, day: date) -> datetime | None:
    """The close the exchange usually has on that weekday (to tell an early close)."""
    cal = calendar(exchange)
    local = cal.close_times[-1][1] if cal.close_times else None
    return datetime.combine(day, local, tz(exchange)).astimezone(UTC) if local else None


def moment_on(exchange: str, spec: str, day: date, *, session_only: bool = True) -> datetime | None:
    """The moment (UTC) of `spec` in the session on `day`; None when closed or (session_only)
    when the moment falls outside that day's session (an early close)."""
    hours = session(exchange, day)
    if hours is None:
        return None
    anchor, value = parse_at(spec)
    if anchor == "time":
        at = datetime.combine(day, value, tz(exchange)).astimezone(UTC)
    else:
        at = (hours[0] if anchor == "open" else hours[1]) + value
    if session_only and not hours[0] <= at <= hours[1]:
        return None
    return at


def next_market_moment(exchange: str, spec: str, after: datetime, *, session_only: bool = True) -> datetime:
    """The first moment of `spec` strictly after `after` (aware): ``next_open``, ``next_close``,
    ``open+5m``, ``close-10m``, ``HH:MM`` (exchange time). Raises CalendarError past the calendar."""
    parse_at(spec)
    after = after.astimezone(UTC)
    day = after.astimezone(tz(exchange)).date() - timedelta(days=1)  # a moment may sit on the previous local date
    for _ in range(SCAN_DAYS):
        at = moment_on(exchange, spec, day, session_only=session_only)
        if at is not None and at > after:
            return at
        day += timedelta(days=1)
    raise CalendarError(f"no {spec} of {exchange} within {SCAN_DAYS} days after {after.isoformat()}")


# --- trigger firings ------------------------------------------------------------------------------
def trigger_zone(params: dict) -> zoneinfo.ZoneInfo:
    """The wall clock a trigger's firings are recorded in (its timezone, or the exchange's)."""
    if params.get("exchange"):
        return tz(params["exchange"])
    return zoneinfo.ZoneInfo(params.get("timezone") or "UTC")


def wall_clock(params: dict, at: datetime) -> str:
    """The local minute a firing is remembered by (a repeated DST hour shares it: fires once)."""
    return at.astimezone(trigger_zone(params)).strftime("%Y-%m-%dT%H:%M")


def is_calendar_aware(params: dict) -> bool:
    return bool(params.get("exchange") or params.get("calendar"))


def cron_allowed(params: dict, at: datetime) -> str | None:
    """Why a cron firing at `at` is skipped by its ``calendar`` (None: it fires)."""
    exchange = params.get("calendar")
    if not exchange:
        return None
    day = at.astimezone(tz(exchange)).date()
    hours = session(exchange, day)
    if hours is None:
        return closed_reason(exchange, day)
    if params.get("session_only") and not hours[0] <= at <= hours[1]:
        return "outside the session" + (" (early close)" if is_early_close(exchange, day) else "")
    return None


def closed_reason(exchange: str, day: date) -> str:
    return "weekend" if day.weekday() >= 5 else f"{exchange} holiday"


def is_early_close(exchange: str, day: date) -> bool:
    hours, usual = session(exchange, day), regular_close(exchange, day)
    return bool(hours and usual and hours[1] < usual)


def firings(params: dict, after: datetime) -> Iterator[datetime]:
    """The trigger's firings strictly after `after`, in order (UTC): a market moment of each
    session, or the cron's times in its timezone less those its calendar skips."""
    if params.get("exchange"):
        at = after
        while True:
            try:
                at = next_market_moment(params["exchange"], params["at"], at)
            except CalendarError:
                return
            yield at
    zone = zoneinfo.ZoneInfo(params.get("timezone") or "UTC")
    cron = croniter(params["cron"], after.astimezone(zone))
    for _ in range(SCAN_CANDIDATES):
        at = cron.get_next(datetime).astimezone(UTC)
        if cron_allowed(params, at) is None:
            yield at
        elif at - after > timedelta(days=SCAN_DAYS):
            return


def next_firings(params: dict, after: datetime, count: int = 5) -> list[datetime]:
    out = []
    for at in firings(params, after):
        out.append(at)
        if len(out) >= count:
            break
    return out


def firings_between(params: dict, start: datetime, end: datetime, limit: int = 500) -> list[datetime]:
    """Firings in (start, end], at most `limit` (the most recent kept)."""
    out = []
    for at in firings(params, start):
        if at > end:
            break
        out.append(at)
    return out[-limit:]


def is_firing(params: dict, at: datetime) -> str | None:
    """Why `at` is not one of the trigger's firings, to the minute (None: it is)."""
    minute = at.astimezone(UTC).replace(second=0, microsecond=0)
    if params.get("exchange"):
        day = at.astimezone(tz(params["exchange"])).date()
        if session(params["exchange"], day) is None:
            return closed_reason(params["exchange"], day)
        moment = moment_on(params["exchange"], params["at"], day)
        if moment is None:
            return "outside the session (early close)"
        return None if moment.replace(second=0, microsecond=0) == minute else f"not {params['at']} on {day}"
    return cron_allowed(params, at)
