"""The overview's SVG charts: scaling, ticks, time labels, gaps, empty data and escaping."""

import re
from datetime import UTC, datetime, timedelta

from dashboard.charts import (
    BOTTOM,
    EMPTY,
    HEIGHT,
    TOP,
    Chart,
    chart_svg,
    data_table,
    format_value,
    legend,
    nice_ticks,
    time_label,
)

START = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)


def starts(n: int, step: timedelta = timedelta(minutes=1)) -> list[datetime]:
    return [START + i * step for i in range(n)]


def chart(series, kind="line", unit="calls", n=None, **kw) -> Chart:
    n = n if n is not None else len(next(iter(series.values()), []))
    return Chart("c", "Calls", unit, kind, starts(n), "minute", series, **kw)


def ys(svg: str, element: str) -> list[float]:
    if element == "polyline":
        points = re.findall(r'points="([^"]+)"', svg)
        return [float(p.split(",")[1]) for run in points for p in run.split()]
    return [float(v) for v in re.findall(r'<rect [^>]*y="([\d.]+)"', svg)]


def test_ticks_are_round_and_reach_the_top():
    assert nice_ticks(10) == [0, 5, 10]
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(0.03) == [0, 0.01, 0.02, 0.03]
    assert nice_ticks(1234)[-1] >= 1234 and len(nice_ticks(1234)) <= 6
    assert nice_ticks(0) == [0, 1]
    assert nice_ticks(1, whole=True) == [0, 1] and nice_ticks(1) == [0, 0.5, 1]


def test_a_line_is_scaled_from_zero_to_the_top_tick():
    svg = str(chart({"calls": [0, 5, 10]}))
    svg = chart_svg(chart({"calls": [0, 5, 10]}))
    low, mid, high = ys(svg, "polyline")
    bottom = HEIGHT - BOTTOM
    assert low == bottom and high == TOP and mid == (TOP + bottom) / 2
    assert '<text class="tick" x="58" y="34" text-anchor="end">10</text>' in svg


def test_none_leaves_a_gap_and_a_lone_point_is_a_dot():
    svg = chart_svg(chart({"p95": [1.0, 2.0, None, 3.0, None, 2.0, 1.0]}, unit="s"))
    assert svg.count("<polyline") == 2
    assert svg.count("<circle") == 1
    assert "–" in data_table(chart({"p95": [1.0, None]}, unit="s"))


def test_bars_stack_per_bucket_and_scale_to_the_largest_sum():
    svg = chart_svg(chart({"completed": [2, 0], "failed": [2, 1]}, kind="bars"))
    assert svg.count("<rect") == 3  # a zero is not drawn
    tops = ys(svg, "rect")
    assert min(tops) == TOP  # 2 + 2 reaches the top tick (4)


def test_empty_data_says_so():
    assert EMPTY in chart_svg(chart({"calls": [0, 0, 0]}))
    assert EMPTY in chart_svg(chart({}, n=0))
    assert EMPTY in chart_svg(chart({"calls": [None, None]}))
    # A cap alone is no data.
    assert EMPTY in chart_svg(chart({"in flight": [0, 0], "cap": [8, 8]}, dashed={"cap"}))


def test_the_cap_is_dashed_and_in_the_legend():
    c = chart({"in flight": [1.5, 3], "cap": [8, 8]}, dashed={"cap"})
    assert 'class="line cap"' in chart_svg(c)
    assert "swatch cap" in legend(c)


def test_accessible_name_description_and_table():
    c = chart({"calls": [1, 2]})
    svg = chart_svg(c)
    assert 'role="img" aria-labelledby="chart-c-title chart-c-desc"' in svg
    assert '<title id="chart-c-title">Calls</title>' in svg
    assert "From Dec 07 05:00 to Dec 07 05:01 UTC" in svg
    table = data_table(c)
    assert "<caption>Calls (calls), per minute, UTC</caption>" in table
    assert '<th scope="col">Bucket start (UTC)</th><th scope="col">calls (calls)</th>' in table
    assert table.count("<tr>") == 3  # a head row and one per bucket


def test_every_label_is_escaped():
    hostile = '<script>alert("x")</script>'
    c = Chart("c", hostile, "USD", "bars", starts(2), "minute", {hostile: [0.5, 1]})
    for html in (chart_svg(c), legend(c), data_table(c)):
        assert "<script>" not in html and "&lt;script&gt;" in html


def test_time_labels_suit_the_bucket_in_utc():
    when = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)
    assert time_label(when, "minute", 3600) == "14:30"
    assert time_label(when, "hour", 86400) == "14:30"
    assert time_label(when, "hour", 7 * 86400) == "Dec 07 14:30"
    assert time_label(when, "day", 30 * 86400) == "Dec 07"
    svg = chart_svg(
        Chart(
            "d",
            "Jobs",
            "jobs",
            "bars",
            starts(30, timedelta(days=1)),
            "day",
            {"completed": [1] * 30},
        )
    )
    assert "Dec 07" in svg and "Time (UTC)" in svg
    # No more than a handful of x labels, whatever the number of buckets.
    assert svg.count('text-anchor="middle">Dec') <= 6
    week = Chart(
        "w", "Calls", "calls", "line", starts(168, timedelta(hours=1)), "hour", {"calls": [1] * 168}
    )
    assert chart_svg(week).count('text-anchor="middle">Dec') == 4
    assert ">500k<" in chart_svg(chart({"tokens": [0, 1_000_000]}, unit="tokens"))
    assert ">1M<" in chart_svg(chart({"tokens": [0, 1_200_000]}, unit="tokens"))
    assert ">0.5<" not in chart_svg(chart({"calls": [0, 1]}))  # whole ticks for counts


def test_units_on_the_values():
    assert format_value(0.05, "USD") == "$0.05"
    assert format_value(0, "USD") == "$0"
    assert format_value(1.23456, "s") == "1.235 s"
    assert format_value(12, "tokens") == "12"
    assert format_value(None, "s") == "–"
