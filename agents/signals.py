"""What the transitions do not announce: a job's creation and each recorded LLM call,
announced by the domain itself whatever faces (the event stream, webhooks) listen; and an
agent's first version, however the agent was created (an action, the default team, admin,
a test's `objects.create`).

A call is recorded by `agents.calls.call_llm` (one row per attempt, never saved twice as a
new row), so its creation is the moment the call finished.
"""

from __future__ import annotations

from . import events, versions
from .models import Agent, Job, LLMCall


def agent_created(
    sender: type, instance: Agent, created: bool, raw: bool, **kwargs: object
) -> None:
    if created and not raw:  # a fixture being loaded brings its own versions
        versions.first(instance)


def job_created(sender: type, instance: Job, created: bool, **kwargs: object) -> None:
    if created:
        data = {"job_id": instance.pk, "status": str(instance.status)}
        events.announce("job.status", instance.pk, data)


def call_recorded(sender: type, instance: LLMCall, created: bool, **kwargs: object) -> None:
    if created:
        events.announce(
            "call.finished",
            instance.job_id,
            {
                "job_id": instance.job_id,
                "call_id": instance.pk,
                "subtask_id": instance.subtask_id,
                "agent_id": instance.agent_id,
                "purpose": str(instance.purpose),
                "model": instance.model,
                "ok": not instance.error,
                "http_status": instance.http_status,
                "tokens": instance.total_tokens,
                "cost": str(instance.cost),
                "latency_s": round(instance.latency_s, 3),
            },
        )
