"""Per-agent latency and throughput over the last hour, per 5-minute bucket."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from .models import LLMCall

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
