"""Steps paused for an operator's approval, as a worker's gate pauses them."""

from django.utils import timezone

from agents import approvals, steps
from agents.models import (
    Agent,
    Approval,
    Job,
    JobStatus,
    SharedState,
    Subtask,
    SubtaskStatus,
    ToolCall,
)


def paused(description: str = "Write a haiku about the sea", *, title: str = "Haiku") -> Approval:
    """A step of a needs-approval agent, paused by the gate as a worker pauses it."""
    agent = Agent.objects.get_or_create(
        slug="writer",
        defaults={"name": "Writer", "specialties": ["writing"], "needs_approval": True},
    )[0]
    job = Job.objects.create(
        title=title,
        description="About the sea.",
        status=JobStatus.WORKING,
        planned_at=timezone.now(),
    )
    SharedState.objects.create(job=job)
    sub = Subtask.objects.create(
        job=job,
        key="poem",
        type="writing",
        payload={"description": description},
        agent=agent,
        status=SubtaskStatus.QUEUED,
    )
    sub = steps._claim_subtask(sub.pk)
    assert approvals.gate(sub, steps._prompt(sub)) is None
    return Approval.objects.get(subtask=sub)


def paused_tool_call() -> Approval:
    approval = paused()
    sub = approval.subtask
    # The model call was approved and asked for a tool that needs approval in turn.
    Approval.objects.filter(pk=approval.pk).update(decision="approved")
    Subtask.objects.filter(pk=sub.pk).update(status=SubtaskStatus.WORKING)
    sub.refresh_from_db()
    row = ToolCall.objects.create(
        job_id=sub.job_id, subtask=sub, name="write_state", arguments='{"key": "poem"}'
    )
    return approvals.request(sub, proposed={"key": "poem"}, why="tool write_state", tool_call=row)


def decide_url(approval: Approval) -> str:
    return f"/approvals/{approval.pk}/decide/"
