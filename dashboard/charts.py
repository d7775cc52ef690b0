"""Server-side SVG charts over time (the overview page): lines and stacked bars, each with a
title, axes, units, a legend and the numbers as a table for screen readers.

Colours are classes (`s0`…`s7`, `cap`) styled in baton.css: no inline style, under the CSP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 30, 40
PALETTE = 8  # s0…s7 in baton.css
X_LABELS = 6
X_LABELS_LONG = 4  # labels with a date take more room
WHOLE_UNITS = {"jobs", "calls", "tokens", "errors"}
EMPTY = "No data in this range."


@dataclass
class Chart:
    """One chart: `series` maps a label to one value per bucket start (None: nothing known);
    `dashed` names series drawn as a dashed reference line (a cap) rather than data."""

    slug: str
    title: str
    unit: str  # "jobs", "calls", "tokens", "USD", "s"
    kind: str  # "line" | "bars" (stacked)
    starts: list[datetime]
    bucket: str  # "minute" | "hour" | "day"
    series: dict[str, list[float | None]]
    dashed: set[str] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return not any(
            v for name, values in self.series.items() if name not in self.dashed for v in values
        )


def number(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if value else "0"


def format_value(value: float | None, unit: str) -> str:
    """A value as the axis and the table show it."""
    if value is None:
        return "–"
    if unit == "USD":
        return f"${value:,.4f}".rstrip("0").rstrip(".") if value else "$0"
    if unit == "s":
        return f"{number(round(value, 3))} s"
    return f"{number(round(value, 2))}"


def nice_ticks(top: float, count: int = 4, *, whole: bool = False) -> list[float]:
    """Round ticks from 0 to at least `top` (steps of 1, 2 or 5 × 10ⁿ; whole numbers for
    counts)."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if whole:
        step = max(step, 1)
    ticks = [0.0]
    while ticks[-1] < top - 1e-12:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def time_label(when: datetime, bucket: str, span_s: float) -> str:
    """UTC: dates for days, HH:MM for minutes and hours (with the date past one day)."""
    if bucket == "day":
        return when.strftime("%b %d")
    if span_s > 86400:
        return when.strftime("%b %d %H:%M")
    return when.strftime("%H:%M")


def _top(chart: Chart) -> float:
    if chart.kind == "bars":
        sums = [
            sum(values[i] or 0 for values in chart.series.values())
            for i in range(len(chart.starts))
        ]
        return max(sums, default=0)
    return max((v for values in chart.series.values() for v in values if v is not None), default=0)


def chart_svg(chart: Chart) -> SafeString:
    """The chart as an SVG (role img, labelled by its title and described), or a line that
    says there is nothing to draw."""
    if chart.empty or not chart.starts:
        return format_html('<p class="chart-empty">{}</p>', EMPTY)
    ticks = nice_ticks(_top(chart), whole=chart.unit in WHOLE_UNITS)
    top = ticks[-1]
    n = len(chart.starts)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / n

    def y(value: float) -> str:
        return number(round(TOP + plot_h - value / top * plot_h, 2))

    def x(index: int) -> str:
        return number(round(LEFT + slot * (index + 0.5), 2))

    grid = format_html_join(
        "",
        '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
        '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
        (
            (LEFT, WIDTH - RIGHT, y(t), y(t), LEFT - 6, number(float(y(t)) + 4), _tick(t, chart))
            for t in ticks
        ),
    )
    span = (chart.starts[-1] - chart.starts[0]).total_seconds() if n > 1 else 0
    long = span > 86400 and chart.bucket != "day"
    every = max(1, math.ceil(n / (X_LABELS_LONG if long else X_LABELS)))
    x_labels = format_html_join(
        "",
        '<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
        (
            (x(i), HEIGHT - BOTTOM + 16, time_label(chart.starts[i], chart.bucket, span))
            for i in range(0, n, every)
        ),
    )
    marks = _bars(chart, y, x, slot) if chart.kind == "bars" else _lines(chart, y, x)
    title_id, desc_id = f"chart-{chart.slug}-title", f"chart-{chart.slug}-desc"
    return format_html(
        '<svg class="chart" role="img" aria-labelledby="{} {}" viewBox="0 0 {} {}" '
        'xmlns="http://www.w3.org/2000/svg"><title id="{}">{}</title><desc id="{}">{}</desc>'
        '<g aria-hidden="true">{}<line class="axis" x1="{}" x2="{}" y1="{}" y2="{}"/>{}{}'
        '<text class="axis-label" x="{}" y="{}" text-anchor="middle">Time (UTC)</text>'
        '<text class="axis-label" x="2" y="14">{}</text></g></svg>',
        title_id,
        desc_id,
        WIDTH,
        HEIGHT,
        title_id,
        chart.title,
        desc_id,
        describe(chart),
        grid,
        LEFT,
        WIDTH - RIGHT,
        TOP + plot_h,
        TOP + plot_h,
        marks,
        x_labels,
        LEFT + plot_w / 2,
        HEIGHT - 6,
        chart.unit,
    )


def _tick(value: float, chart: Chart) -> str:
    if chart.unit in ("USD", "s"):
        return format_value(value, chart.unit)
    for size, suffix in ((1e6, "M"), (1e4, "k")):  # short enough for the axis's margin
        if value >= size:
            return number(round(value / (size if suffix == "M" else 1e3), 2)) + suffix
    return number(value)


def _class(chart: Chart, index: int, name: str) -> str:
    return "cap" if name in chart.dashed else f"s{index % PALETTE}"


def _lines(chart: Chart, y, x) -> SafeString:
    parts = []
    for index, (name, values) in enumerate(chart.series.items()):
        runs: list[list[str]] = [[]]
        for i, value in enumerate(values):
            if value is None:
                runs.append([])
            else:
                runs[-1].append(f"{x(i)},{y(value)}")
        css = _class(chart, index, name)
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline class="line {css}" points="{" ".join(run)}"/>')
            elif run:
                cx, cy = run[0].split(",")
                parts.append(f'<circle class="dot {css}" cx="{cx}" cy="{cy}" r="2"/>')
    return mark_safe("".join(parts))  # numbers and class names only (see _bars)


def _bars(chart: Chart, y, x, slot: float) -> SafeString:
    width = number(round(max(slot * 0.8, 0.5), 2))
    rows = []
    for i in range(len(chart.starts)):
        base = 0.0
        left = number(round(LEFT + slot * i + slot * 0.1, 2))
        for index, (name, values) in enumerate(chart.series.items()):
            value = values[i] or 0
            if value <= 0:
                continue
            top_y, base_y = y(base + value), y(base)
            height = number(round(float(base_y) - float(top_y), 2))
            css = _class(chart, index, name)
            rows.append(
                f'<rect class="bar {css}" x="{left}" y="{top_y}" width="{width}" '
                f'height="{height}"/>'
            )
            base += value
    # Numbers and class names only: built as plain strings, since format_html for each of
    # a 7-day chart's thousands of marks was most of the page's time.
    return mark_safe("".join(rows))


def describe(chart: Chart) -> str:
    """One sentence for a screen reader: the range, and each series' total or peak."""
    if not chart.starts:
        return EMPTY
    first = time_label(chart.starts[0], "minute", 2 * 86400)
    last = time_label(chart.starts[-1], "minute", 2 * 86400)
    summaries = []
    for name, values in chart.series.items():
        known = [v for v in values if v is not None]
        if name in chart.dashed:
            summaries.append(f"{name} {format_value(known[-1] if known else None, chart.unit)}")
        elif chart.kind == "bars":
            summaries.append(f"{name} total {format_value(sum(known), chart.unit)}")
        else:
            summaries.append(f"{name} peak {format_value(max(known, default=None), chart.unit)}")
    return f"From {first} to {last} UTC, per {chart.bucket}, in {chart.unit}: " + (
        "; ".join(summaries) or "no series"
    )


def legend(chart: Chart) -> SafeString:
    return format_html(
        '<ul class="legend">{}</ul>',
        format_html_join(
            "",
            '<li><span class="swatch {}" aria-hidden="true"></span>{}</li>',
            ((_class(chart, index, name), name) for index, name in enumerate(chart.series)),
        ),
    )


def data_table(chart: Chart) -> SafeString:
    """The numbers behind the chart: one row per bucket."""
    head = format_html_join(
        "", '<th scope="col">{} ({})</th>', ((n, chart.unit) for n in chart.series)
    )
    span = (chart.starts[-1] - chart.starts[0]).total_seconds() if len(chart.starts) > 1 else 0
    columns = list(chart.series.values())
    # Time labels and formatted numbers only (no text from outside): plain strings, as in _bars.
    rows = mark_safe(
        "".join(
            f'<tr><th scope="row">{time_label(when, chart.bucket, max(span, 86400 + 1))}</th>'
            + "".join(f"<td>{format_value(values[i], chart.unit)}</td>" for values in columns)
            + "</tr>"
            for i, when in enumerate(chart.starts)
        )
    )
    return format_html(
        '<table class="chart-data"><caption>{} ({}), per {}, UTC</caption>'
        '<thead><tr><th scope="col">Bucket start (UTC)</th>{}</tr></thead>'
        "<tbody>{}</tbody></table>",
        chart.title,
        chart.unit,
        chart.bucket,
        head,
        rows,
    )


def figure_parts(chart: Chart) -> dict[str, SafeString]:
    """The chart's SVG, legend and data table, for a template."""
    return {"svg": chart_svg(chart), "legend": legend(chart), "table": data_table(chart)}
