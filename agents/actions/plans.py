"""Editing a plan under review, and approving it."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from .. import dispatch, events, state
from ..audit import audit
from ..models import Agent, Job, JobStatus, Subtask


def edit_subtask(
    sub: Subtask, *, description: str, type: str, agent: Agent | None, user=None
) -> bool:
    """Change a planned subtask before approval; `agent` None leaves the choice to the score."""
    with transaction.atomic():
        sub = _under_review(sub)
        if sub is None:
            return False
        sub.payload = {**sub.payload, "description": description}
        sub.type = type
        sub.assign_hint = agent.slug if agent else ""
        sub.save(update_fields=["payload", "type", "assign_hint", "updated_at"])
        detail = f"{type}: {description}"
        audit("edit_subtask", actor=user, job=sub.job, subtask=sub, detail=detail)
    return True


def delete_subtask(sub: Subtask, *, user=None) -> bool:
    with transaction.atomic():
        sub = _under_review(sub)
        if sub is None:
            return False
        audit("delete_subtask", actor=user, job=sub.job, detail=sub.key)
        sub.delete()
    return True


def _under_review(sub: Subtask) -> Subtask | None:
    """The subtask as it is now, its job locked (an approval waits for the edit), or None
    when the plan is no longer under review or the subtask is gone."""
    job = Job.objects.select_for_update().get(pk=sub.job_id)
    if not job.awaiting_review:
        return None
    sub = Subtask.objects.filter(pk=sub.pk).first()
    if sub is not None:
        sub.job = job
    return sub


def add_subtask(
    job: Job,
    *,
    key: str,
    type: str,
    description: str,
    depends_on: list[Subtask],
    agent: Agent | None,
    user=None,
) -> Subtask | None:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)  # one addition at a time
        if not job.awaiting_review or job.subtasks.count() >= settings.PLAN_MAX_SUBTASKS:
            return None
        sub = Subtask.objects.create(
            job=job,
            key=key,
            type=type,
            payload={"description": description},
            assign_hint=agent.slug if agent else "",
            priority=job.priority,
        )
        sub.depends_on.set(depends_on)
        audit("add_subtask", actor=user, job=job, subtask=sub, detail=f"{type}: {description}")
    return sub


def approve_plan(job: Job, *, user=None) -> bool:
    """Send the reviewed plan to the specialists: nothing ran before this."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if not job.awaiting_review or not job.subtasks.exists():
            return False
        job.transition(JobStatus.WAITING, JobStatus.WORKING, status_reason="")
        pending = [
            {
                "id": s.key,
                "type": s.type,
                "description": s.description,
                "depends_on": [d.key for d in s.depends_on.all()],
            }
            for s in job.subtasks.prefetch_related("depends_on").order_by("pk")
        ]
        author = f"{user.username if user else 'operator'}/review"
        state.write(job.pk, {"pending_tasks": pending}, author=author)
        audit("approve_plan", actor=user, job=job)
        events.job_changed(job.pk, moved=True)
    dispatch.dispatch_ready()
    return True
