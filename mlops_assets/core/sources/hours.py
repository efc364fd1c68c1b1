"""UTC days and their hours: a partition is one UTC day, always 24 hours."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

HOURS_PER_DAY = 24


def day_hours(day: date) -> list[datetime]:
    """The 24 hours of a UTC day, as aware datetimes."""
    first = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return [first + timedelta(hours=h) for h in range(HOURS_PER_DAY)]


def hour_ranges(hours: list[datetime]) -> str:
    """Hours as compact UTC ranges: "05:00-07:00, 13:00" (a day's gaps in one line)."""
    ordered = sorted(set(hours))
    parts: list[list[datetime]] = []
    for hour in ordered:
        if parts and hour - parts[-1][-1] == timedelta(hours=1):
            parts[-1].append(hour)
        else:
            parts.append([hour])
    label = "%H:%M" if len({h.date() for h in ordered}) <= 1 else "%Y-%m-%dT%H:%M"
    return ", ".join(p[0].strftime(label) if len(p) == 1 else f"{p[0].strftime(label)}-{p[-1].strftime(label)}" for p in parts)


def local_span(day: date, zone: str) -> str:
    """The UTC day on a zone's clock: "2024-03-09 19:00 EST to 2024-03-10 19:00 EDT"."""
    from zoneinfo import ZoneInfo

    hours = day_hours(day)
    first, last = (h.astimezone(ZoneInfo(zone)) for h in (hours[0], hours[-1]))
    return f"{first:%Y-%m-%d %H:%M %Z} to {last:%Y-%m-%d %H:%M %Z}"
