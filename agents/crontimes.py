"""When a schedule runs: cron expressions evaluated in a time zone, or fixed intervals.

Cron is evaluated on the zone's wall clock by cronsim, with cron's DST rules: a fixed time in
the skipped hour runs right after the change, a fixed time in the repeated hour runs once, and
wildcard hours or minutes run in both repeated hours. Never UTC arithmetic on wall times.
An interval is physical seconds (a DST change does not stretch it). Every time handed out is
an aware UTC datetime.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

from cronsim import CronSim, CronSimError
from django.core.exceptions import ValidationError

CRON_CHARS = 100  # Schedule.cron's max_length
ZONE_CHARS = 64  # Schedule.timezone's max_length
FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")


def validate_cron(expr: str) -> str:
    """The expression with its five fields separated by single spaces; ValidationError saying
    which field is bad."""
    text = (expr or "").replace("\x00", "").strip()
    if not text:
        raise ValidationError("Give a cron expression.")
    if len(text) > CRON_CHARS:
        raise ValidationError(f"A cron expression has at most {CRON_CHARS} characters.")
    fields = text.split()
    if len(fields) != 5:
        raise ValidationError(
            f"A cron expression has five fields ({', '.join(FIELD_NAMES)}); this one has "
            f"{len(fields)}."
        )
    normalised = " ".join(fields)
    try:
        next(CronSim(normalised, datetime.now(UTC)))
    except CronSimError as error:  # "Bad minute", "Bad day-of-month"...
        raise ValidationError(f"{error} in {normalised!r}.") from None
    except StopIteration:
        raise ValidationError(f"{normalised!r} never runs.") from None
    return normalised


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone_names() -> list[str]:
    return sorted(_zones())


def validate_timezone(name: str) -> str:
    """An IANA zone name ("Europe/Berlin", "UTC"); ValidationError otherwise."""
    text = (name or "").replace("\x00", "").strip()
    if not text:
        raise ValidationError("Give a time zone, such as UTC or Europe/Berlin.")
    if len(text) > ZONE_CHARS or text not in _zones():
        raise ValidationError(
            f"Unknown time zone {text[:ZONE_CHARS]!r}: use an IANA name such as Europe/Berlin."
        )
    return text


_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def describe(cron: str | None, interval_s: int | None) -> str:
    """In words: "At 02:30 every day", "Every 90 seconds", "Every 2 hours"."""
    if cron:
        try:
            return CronSim(cron, datetime.now(UTC)).explain()
        except CronSimError:
            return cron
    if not interval_s:
        return "Never"
    for unit, seconds in _UNITS:
        if interval_s % seconds == 0:
            n = interval_s // seconds
            return f"Every {unit}" if n == 1 else f"Every {n} {unit}s"
    return f"Every {interval_s} seconds"  # unreachable: every number divides by 1


def runs_after(
    cron: str | None,
    interval_s: int | None,
    tz_name: str,
    after: datetime,
    count: int,
    anchor: datetime | None = None,
) -> list[datetime]:
    """The next `count` run times strictly after `after`, as aware UTC datetimes.

    Cron: evaluated in `tz_name`. Interval: the times anchor + k × interval_s (seconds),
    `anchor` defaulting to `after` (so the first is `after` + interval).
    """
    if count <= 0:
        return []
    if cron:
        return _cron_runs(cron, ZoneInfo(tz_name), after, count)
    if not interval_s or interval_s <= 0:
        return []
    step = timedelta(seconds=interval_s)
    anchor = anchor or after
    k = (after - anchor) // step + 1  # the first k with anchor + k*step > after
    return [(anchor + (k + i) * step).astimezone(UTC) for i in range(count)]


def _cron_runs(cron: str, zone: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    found: list[datetime] = []
    times = CronSim(cron, after.astimezone(zone))
    # cronsim walks fixed times on naive wall clock: from a moment in the repeated hour's
    # second pass it may give that hour's first pass again (already past, at most one per
    # minute of that hour): skipped here.
    for _ in range(count + 61):
        try:
            at = next(times).astimezone(UTC)
        except StopIteration:  # no run in cronsim's 50 years
            break
        if at > after:
            found.append(at)
            if len(found) == count:
                break
    return found
