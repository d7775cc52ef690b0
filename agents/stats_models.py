"""The overview's buckets: what ended in each UTC minute and hour, folded in by agents.stats.

A row is keyed by its `span` ("minute", "hour" or "day") and `start` (UTC, the bucket's
first instant); the hour and day rows are the sums of their minutes, kept up to date as
minutes close.
Latencies and queue waits are kept as counts per bin of one fixed log-scale histogram
(agents.stats.HIST_BINS), so the percentiles of merged buckets can be read.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.db import models

__all__ = ["JobBucket", "LLMBucket", "StatsMark", "ToolErrorBucket"]


class Span(models.TextChoices):
    MINUTE = "minute", "Minute"
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


def _histogram() -> list[int]:
    return []


class HistogramField(models.Field):
    """Counts per bin: an integer array on PostgreSQL (its reads add them bin by bin in SQL),
    JSON text elsewhere (standalone's SQLite, read in Python)."""

    def db_type(self, connection) -> str:
        return "integer[]" if connection.vendor == "postgresql" else "text"

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        counts = [int(count) for count in value]
        return counts if connection.vendor == "postgresql" else json.dumps(counts)

    def from_db_value(self, value, expression, connection) -> list[int] | None:
        if value is None or isinstance(value, list):
            return value
        return json.loads(value)

    def to_python(self, value) -> list[int] | None:
        return json.loads(value) if isinstance(value, str) else value


class LLMBucket(models.Model):
    """LLM calls that ended (were recorded) in the bucket, by model, agent and purpose."""

    span = models.CharField(max_length=6, choices=Span.choices)
    start = models.DateTimeField()
    model = models.CharField(max_length=100)
    agent = models.CharField(max_length=50, blank=True, help_text='The agent\'s slug, "" for none.')
    purpose = models.CharField(max_length=16)
    calls = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    rate_limited = models.PositiveIntegerField(default=0, help_text="HTTP 429.")
    server_errors = models.PositiveIntegerField(default=0, help_text="HTTP 5xx.")
    timeouts = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=16, decimal_places=6, default=Decimal(0))
    # The calls' summed latency: also their call-seconds (mean in flight = this / bucket).
    latency_s = models.FloatField(default=0.0)
    latency_hist = HistogramField(default=_histogram)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["span", "start", "model", "agent", "purpose"], name="llmbucket_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.span} {self.start:%Y-%m-%d %H:%M} {self.model}"


class JobBucket(models.Model):
    """Jobs that ended in the bucket by outcome, and how long their steps waited in the queue."""

    span = models.CharField(max_length=6, choices=Span.choices)
    start = models.DateTimeField()
    status = models.CharField(max_length=16)
    jobs = models.PositiveIntegerField(default=0)
    # Waits of these jobs' subtasks (agents.stats: from ready to claimed).
    waits = models.PositiveIntegerField(default=0)
    wait_hist = HistogramField(default=_histogram)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["span", "start", "status"], name="jobbucket_key")
        ]

    def __str__(self) -> str:
        return f"{self.span} {self.start:%Y-%m-%d %H:%M} {self.status}"


class ToolErrorBucket(models.Model):
    """Tool runs that ended with an error in the bucket."""

    span = models.CharField(max_length=6, choices=Span.choices)
    start = models.DateTimeField()
    errors = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["span", "start"], name="toolerrorbucket_key")
        ]

    def __str__(self) -> str:
        return f"{self.span} {self.start:%Y-%m-%d %H:%M}"


class StatsMark(models.Model):
    """The one watermark row: every minute before `rolled_to` (UTC) is in the buckets."""

    rolled_to = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rolled up to {self.rolled_to}"
