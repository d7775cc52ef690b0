"""Placeholders in a job template's title and description, filled when it is submitted:
`{date}`, `{time}`… in a time zone (a schedule's own, or settings.TIME_ZONE for a click).
`{{` and `}}` stand for braces.

The text is parsed, never formatted: `str.format` would follow `{date.__class__}` or
`{0[x]}` into the objects it is given. Only bare known names are accepted (`check`), and
`fill` substitutes them from a table of strings.
"""

from __future__ import annotations

import string
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError

PLACEHOLDERS: dict[str, str] = {
    "date": "the date, as 2026-12-07",
    "time": "the time, as 06:30",
    "datetime": "the date and time with the zone, as 2026-12-07 06:30 CET",
    "weekday": "the day of the week, as Monday",
    "year": "the year, as 2026",
    "month": "the month, as 12",
    "day": "the day of the month, as 07",
    "yesterday": "the day before, as 2026-12-06",
    "week": "the ISO week, as 2026-W50",
}
ZONE_CHARS = 6  # a zone's abbreviation in {datetime} ("CET", "+0530"), cut to this
# The most characters each one becomes, so a template's filled length can be bounded.
WIDTHS = {
    "date": 10,
    "time": 5,
    "datetime": 17 + ZONE_CHARS,
    "weekday": 9,
    "year": 4,
    "month": 2,
    "day": 2,
    "yesterday": 10,
    "week": 8,
}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_KNOWN = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)


def _parts(text: str) -> list[tuple[str, str | None, str, str | None]]:
    """(literal, name, format spec, conversion) pieces; ValueError on unbalanced braces."""
    return list(string.Formatter().parse(text))


def _written(name: str, spec: str, conversion: str | None) -> str:
    return (
        "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
    )


def check(text: str) -> None:
    """ValidationError naming every placeholder `text` may not hold (unknown, or with an
    attribute, an index, a format or a conversion), or its unbalanced brace."""
    try:
        parts = _parts(text)
    except ValueError:
        raise ValidationError(
            "A brace is not closed or not opened: placeholders are written {date}; "
            "write {{ and }} for a brace itself."
        ) from None
    wrong: list[str] = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            written = _written(name, spec, conversion)
            written = written if len(written) <= 42 else written[:40] + "…}"
            if written not in wrong:
                wrong.append(written)
    if wrong:
        listed = ", ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        raise ValidationError(
            f"Unknown placeholder{'s' if len(wrong) > 1 else ''} {listed}: the known ones are "
            f"{_KNOWN} (write {{{{ and }}}} for a brace itself)."
        )


def widest(text: str) -> int:
    """The most characters `text` (checked) can become once filled, in any zone, any day."""
    return sum(len(literal) + (WIDTHS[name] if name else 0) for literal, name, _, _ in _parts(text))


def values(at: datetime, tz_name: str) -> dict[str, str]:
    """What each placeholder becomes at `at` (aware) in the zone `tz_name` (UTC if unknown)."""
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        zone = ZoneInfo("UTC")
    local = at.astimezone(zone)
    year, week, _ = local.isocalendar()
    # The calendar day before, in the zone: not 24 hours before, which a DST change skews.
    yesterday = local.date() - timedelta(days=1)
    return {
        "date": local.strftime("%Y-%m-%d"),
        "time": local.strftime("%H:%M"),
        "datetime": f"{local:%Y-%m-%d %H:%M} {(local.tzname() or 'UTC')[:ZONE_CHARS]}",
        "weekday": _WEEKDAYS[local.weekday()],
        "year": f"{local.year:04d}",
        "month": f"{local.month:02d}",
        "day": f"{local.day:02d}",
        "yesterday": yesterday.isoformat(),
        "week": f"{year:04d}-W{week:02d}",
    }


def fill(text: str, at: datetime, tz_name: str) -> str:
    """`text` with its placeholders filled at `at` in `tz_name`. Never raises: text that
    `check` would refuse is given back as it is."""
    try:
        parts = _parts(text)
    except ValueError:
        return text
    table = values(at, tz_name)
    out: list[str] = []
    for literal, name, spec, conversion in parts:
        out.append(literal)
        if name is None:
            continue
        if name in table and not spec and not conversion:
            out.append(table[name])
        else:  # unchecked text: the placeholder as written
            out.append(_written(name, spec, conversion))
    return "".join(out)
