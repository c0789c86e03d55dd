"""Quiet hours: is a moment inside a user's window, and when does that window end?

Windows are wall-clock times in the user's own time zone. A window whose end is before its start
crosses midnight; its days are the ISO weekdays (1 = Monday) on which it starts, empty for all.
"""

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones


@functools.cache
def known_time_zones():
    return frozenset(available_timezones())


def is_known_time_zone(name):
    return isinstance(name, str) and name in known_time_zones()


def window_end(quiet_hours, now):
    """The aware moment the window holding `now` ends, or None when `now` is not inside one."""
    if quiet_hours is None or not quiet_hours.enabled or quiet_hours.start == quiet_hours.end:
        return None
    zone = ZoneInfo(quiet_hours.timezone) if is_known_time_zone(quiet_hours.timezone) else ZoneInfo("UTC")
    wall = now.astimezone(zone).replace(tzinfo=None)
    days = set(quiet_hours.days or range(1, 8))
    start, end, today = quiet_hours.start, quiet_hours.end, wall.date()
    if start < end:
        if start <= wall.time() < end and today.isoweekday() in days:
            return aware_after(datetime.combine(today, end), zone, now)
        return None
    # Crossing midnight: either the evening part of a window starting today,
    # or the morning part of one that started yesterday.
    if wall.time() >= start and today.isoweekday() in days:
        return aware_after(datetime.combine(today + timedelta(days=1), end), zone, now)
    yesterday = today - timedelta(days=1)
    if wall.time() < end and yesterday.isoweekday() in days:
        return aware_after(datetime.combine(today, end), zone, now)
    return None


def aware_after(wall_end, zone, now):
    """The wall-clock end as an aware moment strictly after `now`.

    DST: an end inside a spring-forward gap resolves (fold=0) past the gap, so a re-dispatch then
    is outside the window; an end inside a fall-back repeat is its first occurrence unless `now`
    is already in the second one.
    """
    # Compared in UTC: aware datetimes sharing a tzinfo compare by wall time, ignoring fold.
    for fold in (0, 1):
        candidate = wall_end.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if candidate > now.astimezone(UTC):
            return candidate
    return None
