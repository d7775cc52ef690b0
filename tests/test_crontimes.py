"""When a schedule runs: cron in a time zone across DST changes (Europe/Berlin and
America/New_York, 2026), fixed intervals, and clear errors for bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from agents.crontimes import describe, runs_after, validate_cron, validate_timezone

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def local(at: datetime, zone: str) -> str:
    return at.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M %Z")


def test_a_time_in_the_skipped_hour_runs_right_after_the_change_berlin():
    # 2026-03-29: Berlin skips 02:00-03:00 (CET -> CEST).
    runs = runs_after("30 2 * * *", None, BERLIN, utc(2026, 3, 27, 12), 3)
    assert [local(r, BERLIN) for r in runs] == [
        "03-28 02:30 CET",
        "03-29 03:00 CEST",
        "03-30 02:30 CEST",
    ]
    assert runs[1] == utc(2026, 3, 29, 1, 0)


def test_a_time_in_the_skipped_hour_runs_right_after_the_change_new_york():
    # 2026-03-08: New York skips 02:00-03:00 (EST -> EDT).
    runs = runs_after("30 2 * * *", None, NEW_YORK, utc(2026, 3, 7, 12), 2)
    assert [local(r, NEW_YORK) for r in runs] == ["03-08 03:00 EDT", "03-09 02:30 EDT"]
    assert runs == [utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]


def test_a_time_in_the_repeated_hour_runs_once_new_york():
    # 2026-11-01: New York repeats 01:00-02:00 (EDT, then EST).
    runs = runs_after("30 1 * * *", None, NEW_YORK, utc(2026, 10, 31, 12), 2)
    assert [local(r, NEW_YORK) for r in runs] == ["11-01 01:30 EDT", "11-02 01:30 EST"]
    assert runs == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_a_time_in_the_repeated_hour_runs_once_berlin():
    # 2026-10-25: Berlin repeats 02:00-03:00 (CEST, then CET).
    runs = runs_after("30 2 * * *", None, BERLIN, utc(2026, 10, 24, 12), 2)
    assert runs == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


@pytest.mark.parametrize(
    "after",
    [
        utc(2026, 11, 1, 5, 45),  # 01:45 EDT: after the run, still in the first pass
        utc(2026, 11, 1, 6, 10),  # 01:10 EST: the second pass, before 01:30 comes round again
        utc(2026, 11, 1, 6, 30),  # 01:30 EST itself
    ],
)
def test_from_inside_the_repeated_hour_the_run_is_not_repeated(after):
    assert runs_after("30 1 * * *", None, NEW_YORK, after, 1) == [utc(2026, 11, 2, 6, 30)]


def test_a_wildcard_runs_in_both_repeated_hours():
    half_hourly = runs_after("*/30 * * * *", None, NEW_YORK, utc(2026, 11, 1, 4, 50), 5)
    assert half_hourly == [utc(2026, 11, 1, 5, 0) + timedelta(minutes=30 * i) for i in range(5)]
    assert [local(r, NEW_YORK) for r in half_hourly] == [
        "11-01 01:00 EDT",
        "11-01 01:30 EDT",
        "11-01 01:00 EST",
        "11-01 01:30 EST",
        "11-01 02:00 EST",
    ]
    hourly = runs_after("0 * * * *", None, BERLIN, utc(2026, 10, 24, 23, 30), 3)
    assert hourly == [utc(2026, 10, 25, 0), utc(2026, 10, 25, 1), utc(2026, 10, 25, 2)]
    assert [local(r, BERLIN) for r in hourly] == [
        "10-25 02:00 CEST",
        "10-25 02:00 CET",
        "10-25 03:00 CET",
    ]


@pytest.mark.parametrize(
    ("zone", "after", "utc_hours"),
    [
        (BERLIN, utc(2026, 3, 27, 12), [8, 7, 7]),  # CET then CEST
        (BERLIN, utc(2026, 10, 23, 12), [7, 8, 8]),  # CEST then CET
        (NEW_YORK, utc(2026, 3, 6, 16), [14, 13, 13]),  # EST then EDT
        (NEW_YORK, utc(2026, 10, 30, 16), [13, 14, 14]),  # EDT then EST
    ],
)
def test_a_daily_time_stays_on_the_wall_clock_so_its_utc_hour_shifts(zone, after, utc_hours):
    runs = runs_after("0 9 * * *", None, zone, after, 3)
    assert [r.astimezone(ZoneInfo(zone)).strftime("%H:%M") for r in runs] == ["09:00"] * 3
    assert [r.hour for r in runs] == utc_hours
    assert all(r.tzinfo == UTC for r in runs)


def test_cron_runs_are_strictly_after():
    at = utc(2026, 5, 1, 9, 0)
    assert runs_after("0 9 * * *", None, "UTC", at, 1) == [utc(2026, 5, 2, 9, 0)]
    assert runs_after("0 9 * * *", None, "UTC", at - timedelta(microseconds=1), 1) == [at]


def test_an_interval_counts_physical_seconds_from_its_anchor():
    after = utc(2026, 3, 29, 0, 30)  # across Berlin's spring forward: still 3600 s apart
    assert runs_after(None, 3600, BERLIN, after, 3) == [
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 29, 2, 30),
        utc(2026, 3, 29, 3, 30),
    ]
    anchor = utc(2026, 1, 1)
    t = anchor + timedelta(seconds=250)
    assert runs_after(None, 100, "UTC", t, 2, anchor=anchor) == [
        anchor + timedelta(seconds=300),
        anchor + timedelta(seconds=400),
    ]
    on_grid = anchor + timedelta(seconds=300)
    assert runs_after(None, 100, "UTC", on_grid, 1, anchor=anchor) == [
        anchor + timedelta(seconds=400)
    ]
    in_berlin = datetime(2026, 1, 1, 12, tzinfo=ZoneInfo(BERLIN))
    [first] = runs_after(None, 90, BERLIN, in_berlin, 1)
    assert first == utc(2026, 1, 1, 11, 1, 30) and first.tzinfo == UTC
    assert runs_after(None, 90, "UTC", in_berlin, 0) == []


def test_it_normalises_a_cron_expression():
    assert validate_cron("  0   9 * *\t1-5 ") == "0 9 * * 1-5"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", "Bad minute"),
        ("* 24 * * *", "Bad hour"),
        ("* * 32 * *", "Bad day-of-month"),
        ("* * * 13 *", "Bad month"),
        ("* * * * 9", "Bad day-of-week"),
        ("0 0 30 2 *", "Bad day-of-month"),
        ("* * * *", "five fields"),
        ("0 * * * * *", "five fields"),
        ("", "Give a cron expression"),
        ("1," * 60 + "2 * * * *", "at most 100 characters"),
    ],
)
def test_a_bad_cron_expression_is_refused_clearly(expr, message):
    with pytest.raises(ValidationError, match=message):
        validate_cron(expr)


def test_time_zones_are_validated():
    assert validate_timezone(" Europe/Berlin ") == BERLIN
    assert validate_timezone("UTC") == "UTC"
    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", "", "x" * 500, "Europe/Berlin\x00x"):
        with pytest.raises(ValidationError):
            validate_timezone(bad)


def test_it_describes_schedules_in_words():
    assert describe(None, 90) == "Every 90 seconds"
    assert describe(None, 7200) == "Every 2 hours"
    assert describe(None, 60) == "Every minute"
    assert describe(None, 1) == "Every second"
    assert describe(None, 172800) == "Every 2 days"
    assert describe("0 9 * * *", None) == "At 09:00 every day"
