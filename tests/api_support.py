"""API clients with a user's token, and jobs to find, for the tests of the JSON API."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import (
    Agent,
    ApiToken,
    Job,
    JobStatus,
    LLMCall,
    SharedState,
    Subtask,
    SubtaskStatus,
)

PROBLEM = "application/problem+json"


def token_client(user: User, name: str = "tests") -> APIClient:
    """A client that sends `user`'s new token, as a script would."""
    _, secret = ApiToken.objects.issue(user, name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.secret = secret
    return client


def make_job(status: str = JobStatus.WORKING, **fields) -> Job:
    fields.setdefault("title", "Write a haiku")
    fields.setdefault("description", "About the sea, in English.")
    job = Job.objects.create(status=status, **fields)
    SharedState.objects.create(job=job)
    return job


def planned_job(status: str = JobStatus.WORKING, review: bool = False, **fields) -> Job:
    """A planned job with two subtasks, `draft` done by the coder and `check` after it."""
    job = make_job(status, review_plan=review, planned_at=timezone.now(), **fields)
    coder = Agent.objects.get_or_create(
        slug="coder", defaults={"name": "Coder", "specialties": ["coding"]}
    )[0]
    draft = Subtask.objects.create(
        job=job,
        key="draft",
        type="coding",
        payload={"description": "Draft it"},
        agent=None if review else coder,
        status=SubtaskStatus.WAITING if review else SubtaskStatus.COMPLETED,
        allocation={}
        if review
        else {
            "type": "coding",
            "hint": "",
            "chosen": "coder",
            "by": "score",
            "candidates": [
                {
                    "agent": "coder",
                    "success_rate": 1.0,
                    "avg_latency_s": 0.5,
                    "load": 0,
                    "max_concurrency": 10,
                    "score": 99.95,
                }
            ],
        },
        tokens=0 if review else 120,
        cost=0 if review else "0.001200",
        result="" if review else "Waves.",
    )
    check = Subtask.objects.create(
        job=job, key="check", type="review", payload={"description": "Check it"}
    )
    check.depends_on.add(draft)
    if not review:
        LLMCall.objects.create(
            job=job,
            subtask=draft,
            agent=coder,
            purpose="subtask",
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": "Draft it"}],
            response="Waves.",
            prompt_tokens=100,
            completion_tokens=20,
            cost="0.001200",
            http_status=200,
        )
    return job
