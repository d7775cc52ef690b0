"""A busy history made in bulk, for tests that a page reads as many queries for many rows."""

from django.contrib.auth.models import User

from agents import team
from agents.models import (
    Agent,
    AuditEntry,
    Job,
    JobStatus,
    LLMCall,
    SharedState,
    SharedStateVersion,
    Subtask,
)

SUBTASK_STATUSES = ["completed", "working", "queued"]


def make_history(jobs: int) -> None:
    """`jobs` jobs across every status, each submitted by its own user, with three subtasks
    on the team's agents, a call and a state version per subtask, and audit entries."""
    team.seed()
    agents = list(Agent.objects.order_by("pk"))
    start = Job.objects.count()
    users = User.objects.bulk_create(User(username=f"user-{start + i}") for i in range(jobs))
    statuses = JobStatus.values
    made = Job.objects.bulk_create(
        Job(
            title=f"job {start + i} about idempotency",
            description="d" * 40,
            status=statuses[i % len(statuses)],
            submitted_by=user,
        )
        for i, user in enumerate(users)
    )
    subtasks = Subtask.objects.bulk_create(
        Subtask(
            job=job,
            key=f"step-{k}",
            type="research",
            agent=agents[(i + k) % len(agents)],
            status=SUBTASK_STATUSES[k],
            result="The idempotency key was reused.",
        )
        for i, job in enumerate(made)
        for k in range(3)
    )
    LLMCall.objects.bulk_create(
        LLMCall(
            agent=sub.agent,
            job=sub.job,
            subtask=sub,
            purpose="subtask",
            model=sub.agent.model,
            response=sub.result,
            http_status=200,
        )
        for sub in subtasks
    )
    states = SharedState.objects.bulk_create(SharedState(job=job, version=3) for job in made)
    SharedStateVersion.objects.bulk_create(
        SharedStateVersion(state=state, version=v, changes={"v": v}, author="x/y")
        for state in states
        for v in (1, 2, 3)
    )
    AuditEntry.objects.bulk_create(
        AuditEntry(
            actor=sub.job.submitted_by,
            action="retry_subtask",
            job=sub.job,
            subtask=sub,
            agent=sub.agent,
            detail=sub.key,
        )  # fmt: skip
        for sub in subtasks[::3]
    )
