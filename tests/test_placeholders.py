"""A template's placeholders: filled in the zone given, by the calendar there; anything but a
bare known name refused with the known ones listed; nothing ever evaluated."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from agents import placeholders
from agents.placeholders import check, fill, widest

# A Monday, 06:30 in Berlin (winter: UTC+1).
AT = datetime(2026, 12, 7, 5, 30, tzinfo=UTC)


def test_every_placeholder_is_filled_in_the_zone():
    text = "{date} {time} {datetime} {weekday} {year} {month} {day} {yesterday} {week}"
    assert fill(text, AT, "Europe/Berlin") == (
        "2026-12-07 06:30 2026-12-07 06:30 CET Monday 2026 12 07 2026-12-06 2026-W50"
    )


def test_the_zone_decides_the_day():
    late = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)
    assert fill("{date} {weekday}", late, "UTC") == "2026-12-07 Monday"
    assert fill("{date} {weekday}", late, "Asia/Tokyo") == "2026-12-08 Tuesday"
    assert fill("{date} {weekday}", late, "America/New_York") == "2026-12-07 Monday"


def test_yesterday_is_the_calendar_day_before_across_a_dst_change():
    # 00:30 CEST on 2026-03-30, the day after clocks went forward: the day before is the
    # 29th, which had 23 hours (UTC+1 arithmetic would say 23:30 on the 29th is "today").
    after_spring = datetime(2026, 3, 29, 22, 30, tzinfo=UTC)
    assert fill("{date} {yesterday} {time}", after_spring, "Europe/Berlin") == (
        "2026-03-30 2026-03-29 00:30"
    )
    # The night clocks go back (2026-10-25): 01:30 UTC is 02:30 CET, after the change.
    assert fill("{datetime}", datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "Europe/Berlin") == (
        "2026-10-25 02:30 CEST"
    )
    assert fill("{datetime}", datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "Europe/Berlin") == (
        "2026-10-25 02:30 CET"
    )


def test_the_iso_week_belongs_to_its_iso_year():
    assert fill("{week}", datetime(2027, 1, 1, 12, tzinfo=UTC), "UTC") == "2026-W53"


def test_doubled_braces_are_braces():
    check('JSON like {{"a": 1}} on {date}')
    assert fill('JSON like {{"a": 1}} on {date}', AT, "UTC") == 'JSON like {"a": 1} on 2026-12-07'


def test_an_unknown_zone_fills_in_utc_rather_than_failing():
    assert fill("{time}", AT, "Mars/Olympus") == "05:30"


@pytest.mark.parametrize(
    "text",
    [
        "{dat}",
        "{}",
        "{0}",
        "{date.__class__}",
        "{date.__class__.__init__.__globals__}",
        "{date[0]}",
        "{date:>40}",
        "{date!r}",
        "{time:{date}}",
    ],
)
def test_anything_but_a_bare_known_name_is_refused_and_the_known_ones_listed(text):
    with pytest.raises(ValidationError) as refused:
        check(f"Report {text}")
    message = refused.value.messages[0]
    assert message.startswith("Unknown placeholder")
    assert "{date}" in message and "{week}" in message


@pytest.mark.parametrize("text", ["{date", "date}", "{", "}", "a } b", "{{date}"])
def test_an_unbalanced_brace_is_refused(text):
    with pytest.raises(ValidationError, match="brace"):
        check(text)


def test_many_unknown_ones_are_named_a_few_at_a_time():
    with pytest.raises(ValidationError) as refused:
        check(" ".join(f"{{n{i}}}" for i in range(40)) + " {" + "x" * 5000 + "}")
    message = refused.value.messages[0]
    assert "{n0}, {n1}, {n2}, {n3}, {n4} and 36 more" in message
    assert len(message) < 400


def test_fill_never_evaluates_and_never_raises_on_text_it_was_not_given_checked():
    for text in ["{date.__class__}", "{0[x]}", "{", "}", "{date:%Y}", "{date!r}"]:
        assert "class" not in fill(text, AT, "UTC").replace("{date.__class__}", "")
    assert fill("{date.__class__} {date}", AT, "UTC") == "{date.__class__} 2026-12-07"
    assert fill("{ unbalanced {date}", AT, "UTC") == "{ unbalanced {date}"


def test_the_widest_filling_bounds_every_zone_and_day():
    text = " ".join("{" + name + "}" for name in placeholders.PLACEHOLDERS)
    bound = widest(text)
    zones = ["UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham"]
    days = [datetime(2026, month, 28, 12, tzinfo=UTC) for month in range(1, 13)]
    assert max(len(fill(text, at, zone)) for zone in zones for at in days) <= bound
    assert widest("plain") == 5


def test_every_placeholder_says_what_it_becomes():
    assert set(placeholders.PLACEHOLDERS) == set(placeholders.WIDTHS)
    assert all(placeholders.PLACEHOLDERS.values())
