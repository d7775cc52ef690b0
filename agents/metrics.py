"""Agent metrics: plain functions, and the atomic UPDATE that applies them under concurrency."""

import random
from decimal import Decimal

from django.db.models import Case, F, Value, When

MOVING_AVERAGE_KEEP = 0.7


def success_rate(completed: int, failed: int) -> float:
    """completed / (completed + failed); 1.0 before any outcome."""
    total = completed + failed
    return completed / total if total else 1.0


def moving_average(old: float, new: float, samples: int) -> float:
    """0.7 × old + 0.3 × new, seconds; the first sample is taken as it is."""
    if samples == 0:
        return new
    return MOVING_AVERAGE_KEEP * old + (1 - MOVING_AVERAGE_KEEP) * new


def retry_delay(retry_count: int, jitter: float | None = None) -> float:
    """Seconds before attempt `retry_count` + 1: 2^n (2, 4, 8) plus up to 1 s of jitter."""
    if jitter is None:
        jitter = random.random()
    return float(2**retry_count) + jitter


def record_outcome(
    agent_id: int,
    *,
    ok: bool,
    latency_s: float,
    tokens: int = 0,
    cost: Decimal = Decimal(0),
) -> None:
    """Apply one outcome, and its usage, in a single UPDATE: concurrent ones lose nothing."""
    from .models import Agent

    counter = "completed_count" if ok else "failed_count"
    Agent.objects.filter(pk=agent_id).update(
        **{counter: F(counter) + 1},
        avg_latency_s=Case(
            When(latency_samples=0, then=Value(latency_s)),
            default=F("avg_latency_s") * MOVING_AVERAGE_KEEP
            + Value(latency_s * (1 - MOVING_AVERAGE_KEEP)),
        ),
        latency_samples=F("latency_samples") + 1,
        total_tokens=F("total_tokens") + tokens,
        total_cost=F("total_cost") + cost,
    )
