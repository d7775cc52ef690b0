"""Agent metrics: plain functions (the atomic UPDATE that applies them is
`Agent.objects.record_outcome`)."""

import random

# An agent's average latency: 0.7 x old + 0.3 x new, the first sample taken as it is.
# Applied in SQL, one UPDATE per call, by Agent.objects.record_outcome.
MOVING_AVERAGE_KEEP = 0.7


def success_rate(completed: int, failed: int) -> float:
    """completed / (completed + failed); 1.0 before any outcome."""
    total = completed + failed
    return completed / total if total else 1.0


def retry_delay(retry_count: int, jitter: float | None = None) -> float:
    """Seconds before attempt `retry_count` + 1: 2^n (2, 4, 8) plus up to 1 s of jitter."""
    if jitter is None:
        jitter = random.random()
    return float(2**retry_count) + jitter
