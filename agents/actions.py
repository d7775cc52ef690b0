"""Operator actions: one plain function each, which changes the rows, writes the audit
entry and sends the events after commit (as Zulip's `do_*` actions)."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.db.models import Q

from . import events, pipeline, tasks
from .models import (
    JOB_TERMINAL,
    Agent,
    AuditEntry,
    Job,
    JobStatus,
    SharedState,
    Subtask,
    SubtaskStatus,
)

RETRYABLE = (SubtaskStatus.FAILED, SubtaskStatus.CANCELLED)


def audit(action: str, *, actor=None, job=None, subtask=None, agent=None, detail="") -> None:
    AuditEntry.objects.create(
        action=action, actor=actor, job=job, subtask=subtask, agent=agent, detail=detail[:2000]
    )


def submit_job(
    *,
    title: str,
    description: str,
    priority: int = 5,
    user=None,
    budget_tokens: int | None = None,
    budget_cost: Decimal | None = None,
) -> Job:
    with transaction.atomic():
        job = Job.objects.create(
            title=title,
            description=description,
            priority=priority,
            submitted_by=user,
            budget_tokens=budget_tokens,
            budget_cost=budget_cost,
        )
        SharedState.objects.create(job=job)
        audit("submit", actor=user, job=job, detail=title)
        events.job_changed(job.pk, moved=True)
        transaction.on_commit(lambda: tasks.plan_job.delay(job.pk))
    return job


def cancel_job(job: Job, *, user=None) -> bool:
    """Running calls finish; nothing new starts; the job ends cancelled."""
    with transaction.atomic():
        if not pipeline.end_job(job.pk, JobStatus.CANCELLED, "Cancelled by an operator."):
            return False
        audit("cancel", actor=user, job=job)
    return True


def _downstream(sub: Subtask) -> set[int]:
    """The subtask and every subtask that depends on it, transitively."""
    found, frontier = {sub.pk}, {sub.pk}
    while frontier:
        frontier = (
            set(Subtask.objects.filter(depends_on__in=frontier).values_list("pk", flat=True))
            - found
        )
        found |= frontier
    return found


def _reopen(job: Job, subtask_ids: set[int]) -> int:
    """Failed or cancelled subtasks back to waiting, with their retries restored."""
    reopened = list(
        Subtask.objects.filter(pk__in=subtask_ids, status__in=RETRYABLE).values_list(
            "pk", flat=True
        )
    )
    Subtask.objects.filter(pk__in=reopened).update(
        status=SubtaskStatus.WAITING,
        retry_count=0,
        error="",
        next_attempt_at=None,
        finished_at=None,
    )
    for pk in reopened:
        events.subtask_changed(pk)
    if job.status in JOB_TERMINAL:
        job.transition(job.status, JobStatus.WORKING, error="", status_reason="", finished_at=None)
    events.job_changed(job.pk, moved=True)
    return len(reopened)


def retry_subtask(sub: Subtask, *, user=None) -> bool:
    """Run a failed subtask again, and what failed because of it; completed work stays."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=sub.job_id)
        if job.status == JobStatus.COMPLETED or job.planned_at is None:
            return False
        if not Subtask.objects.filter(pk=sub.pk, status__in=RETRYABLE).exists():
            return False
        _reopen(job, _downstream(sub))
        audit("retry_subtask", actor=user, job=job, subtask=sub, detail=sub.key)
    pipeline.dispatch_ready()
    return True


def retry_job(job: Job, *, user=None) -> bool:
    """Resume a failed or cancelled job from where it stopped."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            return False
        open_subtasks = job.subtasks.filter(~Q(status=SubtaskStatus.COMPLETED))
        if job.planned_at is None:
            job.transition(job.status, JobStatus.QUEUED, error="", finished_at=None)
            transaction.on_commit(lambda: tasks.plan_job.delay(job.pk))
        elif not open_subtasks.exists():
            job.transition(
                job.status, JobStatus.SYNTHESIZING, error="", finished_at=None, claimed_at=None
            )
            transaction.on_commit(lambda: tasks.synthesize_job.delay(job.pk))
        else:
            _reopen(job, set(open_subtasks.values_list("pk", flat=True)))
            transaction.on_commit(tasks.dispatch.delay)
        audit("retry_job", actor=user, job=job)
        events.job_changed(job.pk, moved=True)
    return True


def set_agent_enabled(agent: Agent, enabled: bool, *, user=None) -> None:
    with transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(enabled=enabled)
        agent.enabled = enabled
        audit("enable_agent" if enabled else "disable_agent", actor=user, agent=agent)
        if enabled:
            # Work may have been waiting for exactly this agent.
            transaction.on_commit(tasks.dispatch.delay)
