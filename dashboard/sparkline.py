"""Per-agent latency and throughput over the last hour, and the small SVG lines that show them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

Series = dict[str, list]


def _window(now: datetime, minutes: int) -> tuple[datetime, datetime]:
    """Whole minutes ending with the current one, so per-minute rows fall into one bucket."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return end - timedelta(minutes=minutes), end


def agent_series(
    agent_ids: Iterable[int], now: datetime | None = None, minutes: int = 60, buckets: int = 12
) -> dict[int, Series]:
    """For each agent, per bucket: mean latency of successful calls (None if none) and calls.

    One query for all agents: calls are counted per agent and minute in the database.
    """
    from agents.models import LLMCall

    if minutes % buckets:
        raise ValueError("minutes must divide into whole-minute buckets")
    agent_ids = list(agent_ids)
    series: dict[int, Series] = {
        agent_id: {"latency": [None] * buckets, "calls": [0] * buckets} for agent_id in agent_ids
    }
    if not agent_ids:
        return series
    start, end = _window(now or timezone.now(), minutes)
    bucket_minutes = minutes // buckets
    ok = Q(error="")
    rows = (
        LLMCall.objects.filter(agent_id__in=agent_ids, created_at__gte=start, created_at__lt=end)
        .annotate(minute=TruncMinute("created_at"))
        .values("agent_id", "minute")
        .annotate(
            calls=Count("id"),
            ok_calls=Count("id", filter=ok),
            ok_latency=Sum("latency_s", filter=ok),
        )
        .order_by()
    )
    sums: dict[tuple[int, int], list[float]] = {}
    for row in rows:
        index = int((row["minute"] - start).total_seconds() // 60) // bucket_minutes
        if not 0 <= index < buckets:
            continue
        series[row["agent_id"]]["calls"][index] += row["calls"]
        total = sums.setdefault((row["agent_id"], index), [0.0, 0])
        total[0] += row["ok_latency"] or 0.0
        total[1] += row["ok_calls"]
    for (agent_id, index), (latency, count) in sums.items():
        if count:
            series[agent_id]["latency"][index] = round(latency / count, 3)
    return series


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def sparkline_svg(
    values: list[float | None], width: int = 120, height: int = 28, label: str = ""
) -> SafeString:
    """A polyline scaled from 0 to the largest value; None leaves a gap in the line."""
    known = [v for v in values if v is not None]
    latest = f"latest {_number(known[-1])}" if known else "no data"
    description = f"{label}: {latest}" if label else latest
    pad = 2
    top = max(known, default=0) or 1
    step = (width - 2 * pad) / (len(values) - 1) if len(values) > 1 else 0

    def point(index: int, value: float) -> tuple[str, str]:
        x = pad + index * step if len(values) > 1 else width / 2
        y = height - pad - value / top * (height - 2 * pad)
        return _number(x), _number(y)

    runs: list[list[tuple[str, str]]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            runs.append([])
        else:
            runs[-1].append(point(index, value))
    lines = format_html_join(
        "",
        '<polyline points="{}"/>',
        ((" ".join(f"{x},{y}" for x, y in run),) for run in runs if len(run) > 1),
    )
    dots = format_html_join(
        "", '<circle cx="{}" cy="{}" r="1.5"/>', (run[0] for run in runs if len(run) == 1)
    )
    return format_html(
        '<svg class="sparkline" role="img" aria-label="{}" width="{}" height="{}" '
        'viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}{}</svg>',
        description,
        width,
        height,
        width,
        height,
        description,
        lines,
        dots,
    )
