"""Bulk actions' reads: which jobs a filter selects, and a preview of what an action would do
to them (how many, which it would skip and why), in a few bounded queries whatever their
number. The action itself is agents.actions.bulk.bulk_act."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, QuerySet

from .models import JOB_TERMINAL, Job, JobStatus

ACTIONS = ("cancel", "retry", "rerun")
PREVIEW_JOBS = 50
# A bulk retry or re-run releases its jobs RELEASE_BATCH at a time, RELEASE_SPACING_S apart
# (the first batch at once): work submitted meanwhile at the same priority waits behind the
# batches released before it, not behind all of them (dispatch is FIFO within a priority).
RELEASE_BATCH = 50
RELEASE_SPACING_S = 5.0
_OPEN = tuple(s for s in JobStatus.values if s not in JOB_TERMINAL)
# For each action: the statuses it applies to, and why it skips the others.
ELIGIBLE: dict[str, tuple[str, ...]] = {
    "cancel": _OPEN,
    "retry": (JobStatus.FAILED, JobStatus.CANCELLED),
    "rerun": JOB_TERMINAL,
}
REASONS = {
    "cancel": "already finished",
    "retry": "not failed or cancelled",
    "rerun": "not finished yet",
}


def refusal(action: str, status: str) -> str:
    """Why `action` skips a job in `status`, or "" when it applies."""
    return "" if status in ELIGIBLE[action] else REASONS[action]


def release_delay(index: int) -> float:
    """Seconds before the `index`-th job (0-based, oldest first) of a bulk retry is released."""
    return (index // RELEASE_BATCH) * RELEASE_SPACING_S


def id_ranges(ids: list[int]) -> str:
    """Job ids as "#12–#58, #61": runs of consecutive ids folded, every id listed."""
    parts: list[str] = []
    ordered = sorted(set(ids))
    start = previous = None
    for pk in [*ordered, None]:
        if pk is not None and previous is not None and pk == previous + 1:
            previous = pk
            continue
        if start is not None:
            parts.append(f"#{start}" if start == previous else f"#{start}–#{previous}")
        start = previous = pk
    return ", ".join(parts)


def select(
    *,
    q: str = "",
    status: str = "",
    priority: int | None = None,
    submitter: str = "",
    tag: str = "",
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Job]:
    """The jobs the board's filters and a time range (after ≤ created < before) select,
    newest first: a BulkFilterForm's cleaned data."""
    jobs = Job.objects.filtered(q=q, status=status, priority=priority, submitter=submitter, tag=tag)
    if created_after is not None:
        jobs = jobs.filter(created_at__gte=created_after)
    if created_before is not None:
        jobs = jobs.filter(created_at__lt=created_before)
    return jobs.order_by("-created_at", "-pk")


@dataclass
class Preview:
    action: str
    count: int
    eligible: int
    refused: dict[str, int] = field(default_factory=dict)  # reason → how many
    # The first PREVIEW_JOBS, newest first; each with `eligible` (bool) and `skip_reason`.
    jobs: list[Job] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.count - self.eligible


def preview(jobs: QuerySet[Job], action: str) -> Preview:
    """What `action` would do to `jobs`: two queries, the counts and the first few rows."""
    if action not in ACTIONS:
        raise ValueError(f"No bulk action {action!r}: choose one of {', '.join(ACTIONS)}.")
    by_status = dict(jobs.order_by().values_list("status").annotate(n=Count("pk")))
    refused: dict[str, int] = {}
    for status, n in by_status.items():
        if reason := refusal(action, status):
            refused[reason] = refused.get(reason, 0) + n
    count = sum(by_status.values())
    first = list(jobs.only("title", "status", "priority", "tags", "created_at")[:PREVIEW_JOBS])
    for job in first:
        job.skip_reason = refusal(action, job.status)
        job.eligible = not job.skip_reason
    return Preview(
        action=action,
        count=count,
        eligible=count - sum(refused.values()),
        refused=refused,
        jobs=first,
    )
