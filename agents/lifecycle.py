"""A job's roll-up from its subtasks and its end, and the one retry rule its steps follow.

The steps (agents.steps, agents.dispatch, agents.recovery, agents.approvals) and operator
actions call these; they call only the models and the leaf modules below them. A step's
model calls are recorded by agents.calls.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count

from . import enqueue, events, llm, metrics
from .models import SUBTASK_OPEN, Job, JobStatus, Subtask, SubtaskStatus

AWAITS_REVIEW = "The plan awaits an operator's review."
# 429s pause a step without using up its retries, but not forever.
MAX_RATE_LIMIT_PAUSES = 20


def settle_job(job_id: int) -> bool:
    """Roll a working job up from its subtasks; True when it is now ready for synthesis.

    Call inside a transaction that holds the job's row lock (calls.add_usage or
    select_for_update), so two subtasks finishing at once cannot both miss the other. The
    caller starts the synthesis: at once in its own thread, or by message.
    """
    counts = dict(
        Subtask.objects.filter(job_id=job_id).values_list("status").annotate(n=Count("id"))
    )
    total = sum(counts.values())
    completed = counts.get(SubtaskStatus.COMPLETED, 0)
    still_open = sum(counts.get(s, 0) for s in SUBTASK_OPEN)
    failed = counts.get(SubtaskStatus.FAILED, 0) + counts.get(SubtaskStatus.CANCELLED, 0)
    job = Job(pk=job_id)
    events.job_changed(job_id)  # its progress
    if total and completed == total:
        return job.transition(JobStatus.WORKING, JobStatus.SYNTHESIZING, claimed_at=None)
    if failed and not still_open:
        job.transition(
            JobStatus.WORKING, JobStatus.FAILED, error=f"{failed} of {total} subtasks failed."
        )
    return False


def settle_job_locked(job_id: int) -> None:
    """settle_job in a transaction of its own, under the job's row lock."""
    with transaction.atomic():
        if Job.objects.select_for_update().filter(pk=job_id).exists() and settle_job(job_id):
            enqueue.synthesize_job(job_id)


def fail_job(job_id: int, expected: str, error: str) -> bool:
    return Job(pk=job_id).transition(expected, JobStatus.FAILED, error=error, claimed_at=None)


def end_job(job_id: int, status: str, error: str) -> bool:
    """End a job early (cancelled, or failed on its budget), keeping what it has.

    Calls in flight finish and keep their results; nothing new starts: every waiting,
    queued or awaiting approval subtask is cancelled (its approval can no longer be decided),
    and a queued message meets a claim that no longer holds.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.is_terminal or not job.transition(job.status, status, error=error):
            return False
        stopped = (SubtaskStatus.WAITING, SubtaskStatus.QUEUED, SubtaskStatus.AWAITING_APPROVAL)
        job.subtasks.move(stopped, SubtaskStatus.CANCELLED, error=error)
    return True


def next_attempt_in(exc: llm.LLMError, *, failures: int, pauses: int, retries: int) -> float | None:
    """Seconds before another try of a failed step, or None when it fails for good.

    The one retry rule for every step: a 429 pauses for Retry-After without using a retry
    (up to MAX_RATE_LIMIT_PAUSES times); a permanent error never retries; anything else
    waits 2^n s plus jitter while fewer than `retries` earlier `failures` were counted.
    """
    if exc.rate_limited and pauses < MAX_RATE_LIMIT_PAUSES:
        return exc.retry_after or metrics.retry_delay(1)
    if exc.permanent or failures >= retries:
        return None
    return metrics.retry_delay(failures + 1)
