"""Quiet-hours windows in the user's own time zone: days, midnight crossing, DST."""

from datetime import UTC, datetime, time

import pytest

from notifications.models import QuietHours
from notifications.planning.quiet_hours import window_end


def quiet(start, end, days=(), zone="Europe/Paris", enabled=True):
    return QuietHours(timezone=zone, start=time(*start), end=time(*end), days=list(days), enabled=enabled)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_outside_the_window_is_not_quiet():
    # 2026-06-10 is a Wednesday; Paris is UTC+2 in summer.
    assert window_end(quiet((22, 0), (7, 0)), utc(2026, 6, 10, 12, 0)) is None


def test_evening_part_of_a_window_crossing_midnight_ends_next_morning():
    end = window_end(quiet((22, 0), (7, 0)), utc(2026, 6, 10, 21, 30))  # 23:30 in Paris
    assert end == utc(2026, 6, 11, 5, 0)  # 07:00 in Paris


def test_morning_part_belongs_to_the_window_that_started_the_day_before():
    # Thursday 06:00 in Paris; the window started Wednesday evening.
    window = quiet((22, 0), (7, 0), days=[3])
    assert window_end(window, utc(2026, 6, 11, 4, 0)) == utc(2026, 6, 11, 5, 0)
    # Wednesday 06:00: Tuesday's window would hold it, but Tuesday is not a quiet day.
    assert window_end(window, utc(2026, 6, 10, 4, 0)) is None


def test_same_day_window_and_its_days():
    window = quiet((12, 0), (14, 0), days=[1, 2, 3, 4, 5])
    assert window_end(window, utc(2026, 6, 10, 10, 30)) == utc(2026, 6, 10, 12, 0)  # Wednesday 12:30
    assert window_end(window, utc(2026, 6, 13, 10, 30)) is None  # Saturday
    assert window_end(window, utc(2026, 6, 10, 12, 0)) is None  # 14:00 exactly: the end is exclusive


def test_the_window_is_read_in_the_users_time_zone():
    window = quiet((22, 0), (7, 0), zone="America/New_York")
    # 03:00 UTC is 23:00 in New York (UTC-4 in June): quiet until 07:00 there, 11:00 UTC.
    assert window_end(window, utc(2026, 6, 10, 3, 0)) == utc(2026, 6, 10, 11, 0)
    assert window_end(window, utc(2026, 6, 10, 12, 0)) is None


def test_disabled_or_empty_windows_are_never_quiet():
    assert window_end(quiet((22, 0), (7, 0), enabled=False), utc(2026, 6, 10, 21, 30)) is None
    assert window_end(quiet((7, 0), (7, 0)), utc(2026, 6, 10, 5, 0)) is None
    assert window_end(None, utc(2026, 6, 10, 21, 30)) is None


def test_end_inside_the_spring_forward_gap_is_after_the_gap():
    # 2026-03-29: Paris jumps from 02:00 CET to 03:00 CEST; 02:30 does not exist.
    window = quiet((22, 0), (2, 30))
    end = window_end(window, utc(2026, 3, 28, 23, 0))  # 00:00 CET
    assert end == utc(2026, 3, 29, 1, 30)  # 03:30 CEST: past the gap, outside the window
    assert window_end(window, end) is None


def test_end_inside_the_fall_back_repeat_is_never_in_the_past():
    # 2026-10-25: Paris goes from 03:00 CEST back to 02:00 CET; 02:00-03:00 happens twice.
    window = quiet((1, 0), (2, 30))
    first = window_end(window, utc(2026, 10, 24, 23, 30))  # 01:30 CEST
    assert first == utc(2026, 10, 25, 0, 30)  # the first 02:30 (CEST)
    second_pass = utc(2026, 10, 25, 1, 15)  # 02:15 CET, the second time round
    end = window_end(window, second_pass)
    assert end == utc(2026, 10, 25, 1, 30) and end > second_pass


@pytest.mark.parametrize("hour", range(24))
def test_a_deferred_notification_is_never_deferred_again_at_its_window_end(hour):
    window = quiet((22, 0), (7, 0))
    now = utc(2026, 3, 28, hour, 17)
    end = window_end(window, now)
    if end is not None:
        assert end > now and window_end(window, end) is None
