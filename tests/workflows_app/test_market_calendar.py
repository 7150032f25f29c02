"""The exchange calendar resolver (workflows_app.market_calendar): pure functions of (spec, time)."""
from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from workflows_app import market_calendar as mc

NY = ZoneInfo("America/New_York")


def ny(*args) -> datetime:
    return datetime(*args, tzinfo=NY)


@pytest.mark.parametrize(("spec", "after", "expected"), [
    ("next_open", ny(2026, 11, 25, 10, 0), ny(2026, 11, 27, 9, 30)),  # Thanksgiving (Thu 26th) skipped
    ("next_close", ny(2026, 11, 26, 12, 0), ny(2026, 11, 27, 13, 0)),  # the day after closes early
    ("close-15m", ny(2026, 11, 27, 9, 0), ny(2026, 11, 27, 12, 45)),
    ("close-10m", ny(2026, 11, 27, 12, 50), ny(2026, 11, 30, 15, 50)),
    ("open+5m", ny(2026, 3, 6, 10, 0), ny(2026, 3, 9, 9, 35)),  # across the DST start (8 March)
    ("open", ny(2026, 11, 27, 9, 30), ny(2026, 11, 30, 9, 30)),  # strictly after
    ("15:30", ny(2026, 11, 27, 0, 0), ny(2026, 11, 30, 15, 30)),  # past the early close: skipped
    ("open+1h", ny(2026, 7, 2, 11, 0), ny(2026, 7, 6, 10, 30)),  # Independence Day observed Fri 3 July
])
def test_next_market_moment(spec, after, expected):
    got = mc.next_market_moment("XNYS", spec, after)
    assert got == expected and got.tzinfo is not None


def test_next_market_moment_outside_the_session_when_asked():
    # a wait for "five minutes before the open" is not a trigger: it may lie outside the session
    assert mc.next_market_moment("XNYS", "open-5m", ny(2026, 11, 27, 8, 0), session_only=False) == ny(2026, 11, 27, 9, 25)
    assert mc.next_market_moment("XLON", "open", datetime(2026, 12, 24, 12, 0, tzinfo=UTC)) == \
        datetime(2026, 12, 29, 8, 0, tzinfo=UTC)  # London: Christmas, Boxing Day (observed Mon 28)


@pytest.mark.parametrize(("exchange", "spec", "message"), [
    ("XNYS", "open+391m", "open offset must be within the session"),
    ("XNYS", "close+5m", "close offset must be within the session"),
    ("XNYS", "open-5m", "open offset must be within the session"),
    ("XNYS", "08:00", "outside XNYS's session (09:30-16:00 America/New_York)"),
    ("XNYS", "noon", "invalid moment"),
    ("XNYS", "25:00", "invalid moment"),
    ("NOPE", "open", "unknown exchange calendar"),
])
def test_bad_moments_are_refused(exchange, spec, message):
    with pytest.raises(mc.CalendarError, match=message.replace("(", r"\(").replace(")", r"\)")):
        mc.validate_in_session(exchange, spec)


def test_calendar_cron_skips_closed_days_and_outside_the_session():
    nine = {"cron": "0 9 * * 1-5", "timezone": "America/New_York", "calendar": "XNYS"}
    fired = mc.next_firings(nine, ny(2026, 11, 25, 0, 0), 3)
    assert [f.astimezone(NY).strftime("%a %d %H:%M") for f in fired] == ["Wed 25 09:00", "Fri 27 09:00", "Mon 30 09:00"]
    late = {"cron": "30 15 * * 1-5", "timezone": "America/New_York", "calendar": "XNYS", "session_only": True}
    fired = mc.next_firings(late, ny(2026, 11, 25, 0, 0), 2)
    assert [f.astimezone(NY).strftime("%a %d %H:%M") for f in fired] == ["Wed 25 15:30", "Mon 30 15:30"]
    assert mc.cron_allowed(late, ny(2026, 11, 27, 15, 30)) == "outside the session (early close)"
    assert mc.cron_allowed(late, ny(2026, 11, 26, 15, 30)) == "XNYS holiday"
    assert mc.cron_allowed(late, ny(2026, 11, 28, 15, 30)) == "weekend"
    plain = {"cron": "0 9 * * *", "timezone": "America/New_York"}  # no calendar: every day, as before
    assert len(mc.next_firings(plain, ny(2026, 11, 25, 0, 0), 7)) == 7


def test_is_firing_to_the_minute():
    params = {"exchange": "XNYS", "at": "close-15m"}
    assert mc.is_firing(params, ny(2026, 11, 27, 12, 45, 20)) is None
    assert mc.is_firing(params, ny(2026, 11, 27, 15, 45)) == "not close-15m on 2026-11-27"
    assert mc.is_firing(params, ny(2026, 11, 26, 15, 45)) == "XNYS holiday"
    assert mc.is_early_close("XNYS", date(2026, 11, 27)) and not mc.is_early_close("XNYS", date(2026, 11, 25))
    assert mc.wall_clock(params, datetime(2026, 11, 27, 17, 45, tzinfo=UTC)) == "2026-11-27T12:45"


def test_an_offset_of_four_digits_reaches_late_in_a_long_session():
    """The 24/7 calendar's session is 1,440 minutes: open+1013m (16:53 UTC) is a valid moment."""
    from datetime import UTC

    mc.validate_in_session("24/7", "open+1013m")
    assert mc.next_market_moment("24/7", "open+1013m", datetime(2026, 12, 1, 12, 0, tzinfo=UTC)) == \
        datetime(2026, 12, 1, 16, 53, tzinfo=UTC)
